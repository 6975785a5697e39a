package posture

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"portcullis/internal/dns"
	"portcullis/internal/spf"
)

// Limits of the SPF tree walk, on top of RFC 7208's: a hostile or broken
// record cannot make the check ask the DNS without end.
const (
	maxSPFRecords = 40
	maxSPFDepth   = 10
	// maxSPFAnswer is the size RFC 7208 §3.4 asks the TXT answer of an SPF
	// record to stay under, so that the DNS response fits in 512 octets
	// of UDP.
	maxSPFAnswer = 450
)

// SPFReport is the SPF area.
type SPFReport struct {
	Area
	// Record is the domain's SPF record ("" when none or several).
	Record string `json:"record,omitempty"`
	// Tree is the record with its include and redirect targets.
	Tree *SPFNode `json:"tree,omitempty"`
	// Lookups counts the terms that query DNS in the whole tree (RFC 7208
	// §4.6.4, limit 10), as an evaluation that matches nothing early
	// would; VoidLookups the lookups that find nothing (limit 2) in an
	// evaluation for an IPv4 client, VoidLookups6 for an IPv6 client
	// (which asks AAAA where an IPv4 client asks A, RFC 7208 §5.3).
	Lookups      int `json:"lookups"`
	VoidLookups  int `json:"void_lookups"`
	VoidLookups6 int `json:"void_lookups_ipv6"`
	// All is the "all" mechanism that ends the evaluation ("-all", "~all",
	// "?all", "+all"), "" when there is none.
	All string `json:"all,omitempty"`
	// Branches are the include and redirect terms of the top record with
	// the lookups each costs (the term itself and everything below it).
	Branches []SPFBranch `json:"branches"`
	// OverLimit describes the term whose lookup is the 11th, when the tree
	// is over the limit.
	OverLimit string `json:"over_limit,omitempty"`
	// AuthorizesNobody reports "v=spf1 -all" alone: the domain sends no
	// mail.
	AuthorizesNobody bool `json:"authorizes_nobody,omitempty"`
}

// SPFBranch is one include or redirect of the top record.
type SPFBranch struct {
	Term    string `json:"term"`
	Lookups int    `json:"lookups"`
}

// SPFNode is one record of the tree.
type SPFNode struct {
	Domain string `json:"domain"`
	// Via is check_host (the domain itself), include or redirect.
	Via string `json:"via"`
	// Term is the term of the parent record that led here.
	Term   string `json:"term,omitempty"`
	Record string `json:"record,omitempty"`
	// Error says why the record could not be used (none, several, syntax,
	// a loop, a DNS failure, the walk limit).
	Error string `json:"error,omitempty"`
	// Lookups counts this record's terms that query DNS; TreeLookups
	// adds those of every record below.
	Lookups     int `json:"lookups"`
	TreeLookups int `json:"tree_lookups"`
	// Void lists this record's terms whose lookup found nothing.
	Void []string `json:"void,omitempty"`
	// AnswerSize is the total length of the TXT strings at the name.
	AnswerSize int        `json:"answer_size"`
	Children   []*SPFNode `json:"children,omitempty"`
	// Networks are the address ranges this record and its children
	// authorize, as DNS answers them now (for flattening); Flattenable
	// reports that they are the whole meaning of the subtree: only
	// "+"-qualified ip4, ip6, a, mx and include terms without macros.
	Networks    []string `json:"-"`
	Flattenable bool     `json:"-"`
	// temporary is set when a DNS failure kept the record from being
	// read.
	temporary bool
}

type spfWalker struct {
	ctx     context.Context
	r       dns.Resolver
	records int
	count   int // lookups in evaluation order
	void4   int
	void6   int
	voids   []string // void for IPv4 clients (and for IPv6 ones unless listed in voids6only)
	voids6  []string // void for IPv6 clients only (a name with A but no AAAA)
	over    string   // the term of lookup 11
	rep     *SPFReport
	ptr     []string
	macros  []string
	mxOver  []string
	loops   []string
	missing []string
	long    []string
	temp    []string
}

func checkSPF(ctx context.Context, r dns.Resolver, domain string) SPFReport {
	rep := SPFReport{Branches: []SPFBranch{}}
	w := &spfWalker{ctx: ctx, r: r, rep: &rep}
	rep.Tree = w.walk(domain, string(spf.ViaCheck), "", "", nil, []string{domain}, 0)
	root := rep.Tree
	rep.Lookups = w.count
	rep.VoidLookups, rep.VoidLookups6 = w.void4, w.void6
	rep.OverLimit = w.over
	if root.Error == "" {
		rep.Record = root.Record
		rec, _ := spf.Parse(root.Record)
		if rec != nil {
			rep.All = allOf(rec)
			rep.AuthorizesNobody = len(rec.Terms) == 1 && rec.Terms[0].Kind == spf.KindAll && rec.Terms[0].Qualifier == spf.QualFail
		}
		for _, c := range root.Children {
			rep.Branches = append(rep.Branches, SPFBranch{Term: c.Term, Lookups: 1 + c.TreeLookups})
		}
		if rep.All == "" {
			// redirect= hands over the "all" of its target (RFC 7208 §6.1).
			for n := lastRedirect(root); n != nil; n = lastRedirect(n) {
				if rec, _ := spf.Parse(n.Record); rec != nil {
					if a := allOf(rec); a != "" {
						rep.All = a
						break
					}
				}
			}
		}
	}
	w.findings(domain)
	return rep
}

func lastRedirect(n *SPFNode) *SPFNode {
	for _, c := range n.Children {
		if c.Via == string(spf.ViaRedirect) {
			return c
		}
	}
	return nil
}

func allOf(rec *spf.Record) string {
	for _, t := range rec.Terms {
		if t.Kind == spf.KindAll {
			return string(t.Qualifier) + "all"
		}
	}
	return ""
}

// lookup counts one DNS-querying term in evaluation order, remembering the
// one that is the 11th (RFC 7208 §4.6.4).
func (w *spfWalker) lookup(n *SPFNode, term string, path []string) {
	n.Lookups++
	w.count++
	if w.count == spf.DefaultMaxLookups+1 {
		where := strings.Join(append(slices.Clone(path), term), " → ")
		w.over = where
	}
}

func (w *spfWalker) walk(domain, via, term, parentDomain string, path, ancestors []string, depth int) *SPFNode {
	n := &SPFNode{Domain: domain, Via: via, Term: term}
	if depth > maxSPFDepth || w.records >= maxSPFRecords {
		n.Error = "not followed: the tree is deeper or larger than this check follows"
		return n
	}
	w.records++
	txts, resp, err := dns.LookupTXT(w.ctx, w.r, domain)
	if err != nil {
		if dns.IsTemporary(err) {
			n.temporary = true
			w.temp = append(w.temp, domain)
			n.Error = "temporary DNS failure: " + err.Error()
		} else {
			n.Error = "invalid name: " + err.Error()
		}
		return n
	}
	var records []string
	for _, t := range txts {
		n.AnswerSize += len(t)
		if spf.IsSPFRecord(t) {
			records = append(records, t)
		}
	}
	switch {
	case len(records) == 0:
		if resp.NXDomain() {
			n.Error = "no SPF record: the name does not exist (NXDOMAIN)"
		} else {
			n.Error = "no SPF record"
		}
		if via != string(spf.ViaCheck) {
			w.void4++
			w.void6++
			w.voids = append(w.voids, term+" (in "+parentDomain+")")
			w.missing = append(w.missing, term+" (in "+parentDomain+")")
		}
		return n
	case len(records) > 1:
		n.Error = fmt.Sprintf("%d SPF records: receivers return permerror (RFC 7208 §4.5)", len(records))
		return n
	}
	n.Record = records[0]
	if n.AnswerSize > maxSPFAnswer {
		w.long = append(w.long, fmt.Sprintf("%s (%d octets)", domain, n.AnswerSize))
	}
	rec, err := spf.Parse(n.Record)
	if err != nil {
		n.Error = err.Error()
		return n
	}
	here := append(slices.Clone(path), term)
	if via == string(spf.ViaCheck) {
		here = nil
	}
	n.Flattenable = true
	hasAll := rec.HasAll()
	for _, t := range rec.Terms {
		if t.Kind.IsMechanism() && t.Kind != spf.KindAll && t.Qualifier != spf.QualPass {
			n.Flattenable = false
		}
		target := t.DomainSpec
		if target == "" {
			target = domain
		}
		macro := strings.Contains(t.DomainSpec, "%")
		switch t.Kind {
		case spf.KindIP4, spf.KindIP6:
			n.Networks = append(n.Networks, t.Network.String())
		case spf.KindAll:
			if t.Qualifier == spf.QualPass {
				n.Flattenable = false
			}
		case spf.KindInclude:
			w.lookup(n, t.Text, here)
			if macro {
				w.macros = append(w.macros, t.Text)
				n.Flattenable = false
				continue
			}
			c := w.child(target, string(spf.ViaInclude), t.Text, domain, here, ancestors, depth)
			if strings.HasPrefix(c.Error, "no SPF record") {
				n.Void = append(n.Void, t.Text)
			}
			n.Children = append(n.Children, c)
		case spf.KindRedirect:
			if hasAll {
				// RFC 7208 §6.1: ignored when the record has "all".
				continue
			}
			w.lookup(n, t.Text, here)
			if macro {
				w.macros = append(w.macros, t.Text)
				n.Flattenable = false
				continue
			}
			c := w.child(target, string(spf.ViaRedirect), t.Text, domain, here, ancestors, depth)
			n.Children = append(n.Children, c)
		case spf.KindA:
			w.lookup(n, t.Text, here)
			if macro {
				w.macros = append(w.macros, t.Text)
				n.Flattenable = false
				continue
			}
			p4, p6 := t.Prefixes()
			v4, v6 := w.addrs(target, p4, p6, n)
			w.voidAddrs(t.Text, domain, v4, v6, n)
		case spf.KindMX:
			w.lookup(n, t.Text, here)
			if macro {
				w.macros = append(w.macros, t.Text)
				n.Flattenable = false
				continue
			}
			w.mx(t, target, domain, n)
		case spf.KindPTR:
			w.lookup(n, t.Text, here)
			w.ptr = append(w.ptr, t.Text+" (in "+domain+")")
			n.Flattenable = false
		case spf.KindExists:
			w.lookup(n, t.Text, here)
			n.Flattenable = false
			if macro {
				w.macros = append(w.macros, t.Text)
				continue
			}
			resp, err := w.r.Query(w.ctx, target, dns.TypeA)
			switch {
			case err != nil:
				w.temp = append(w.temp, target)
			case resp.Void():
				w.void4++
				w.void6++
				w.voids = append(w.voids, t.Text+" (in "+domain+")")
				n.Void = append(n.Void, t.Text)
			}
		}
	}
	n.TreeLookups = n.Lookups
	for _, c := range n.Children {
		n.TreeLookups += c.TreeLookups
		if !c.Flattenable || c.Error != "" {
			n.Flattenable = false
		}
		n.Networks = append(n.Networks, c.Networks...)
	}
	return n
}

func (w *spfWalker) child(target, via, term, parent string, path, ancestors []string, depth int) *SPFNode {
	target = strings.ToLower(strings.TrimSuffix(target, "."))
	if slices.Contains(ancestors, target) {
		w.loops = append(w.loops, term+" (in "+parent+")")
		return &SPFNode{Domain: target, Via: via, Term: term, Error: "loop: " + target + " is already being evaluated"}
	}
	return w.walk(target, via, term, parent, path, append(slices.Clone(ancestors), target), depth+1)
}

// addrs looks up the A and AAAA records of name and adds the networks they
// make with the term's prefix lengths; it reports whether each family
// found something (for void lookups, RFC 7208 §4.6.4).
func (w *spfWalker) addrs(name string, p4, p6 int, n *SPFNode) (v4, v6 bool) {
	for _, t := range []dns.Type{dns.TypeA, dns.TypeAAAA} {
		resp, err := w.r.Query(w.ctx, name, t)
		if err != nil {
			w.temp = append(w.temp, name)
			// Unknown: not counted as void.
			if t == dns.TypeA {
				v4 = true
			} else {
				v6 = true
			}
			n.Flattenable = false
			continue
		}
		for _, rec := range resp.Records {
			bits := p4
			if t == dns.TypeAAAA {
				bits = p6
			}
			if pfx, err := rec.IP.Prefix(bits); err == nil {
				n.Networks = append(n.Networks, pfx.String())
			}
		}
		if len(resp.Records) > 0 {
			if t == dns.TypeA {
				v4 = true
			} else {
				v6 = true
			}
		}
	}
	return v4, v6
}

func (w *spfWalker) mx(t spf.Term, target, domain string, n *SPFNode) {
	resp, err := w.r.Query(w.ctx, target, dns.TypeMX)
	if err != nil {
		w.temp = append(w.temp, target)
		n.Flattenable = false
		return
	}
	var hosts []string
	for _, rec := range resp.Records {
		if h := strings.TrimSuffix(rec.Host, "."); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		w.void4++
		w.void6++
		w.voids = append(w.voids, t.Text+" (in "+domain+")")
		n.Void = append(n.Void, t.Text)
		return
	}
	if len(hosts) > spf.DefaultMaxMXNames {
		w.mxOver = append(w.mxOver, fmt.Sprintf("%s (in %s: %d MX names)", t.Text, domain, len(hosts)))
		n.Flattenable = false
		return
	}
	p4, p6 := t.Prefixes()
	for _, h := range hosts {
		w.addrs(h, p4, p6, n)
	}
}

// voidAddrs counts the void lookups of an "a" term: an IPv4 client's
// evaluation asks A, an IPv6 client's AAAA (RFC 7208 §5.3), so a name with
// addresses of one family only is a void lookup for clients of the other.
func (w *spfWalker) voidAddrs(term, domain string, v4, v6 bool, n *SPFNode) {
	if !v4 {
		w.void4++
	}
	if !v6 {
		w.void6++
	}
	switch {
	case !v4:
		w.voids = append(w.voids, term+" (in "+domain+")")
		n.Void = append(n.Void, term)
	case !v6:
		w.voids6 = append(w.voids6, term+" (in "+domain+")")
	}
}

// findings turns the walk into the area's findings and verdict.
func (w *spfWalker) findings(domain string) {
	rep := w.rep
	a := &rep.Area
	root := rep.Tree
	if root.temporary {
		a.Error = root.Error
		a.Verdict = "not checked: " + root.Error
		return
	}
	if root.Error != "" {
		switch {
		case strings.HasPrefix(root.Error, "no SPF record"):
			a.add("spf-missing", SeverityProblem, "RFC 7208 §4.5", fmt.Sprintf("%s publishes no SPF record: receivers cannot tell which servers may send as it (SPF result none).", domain))
			a.Verdict = "no SPF record"
		case strings.Contains(root.Error, "SPF records"):
			a.add("spf-multiple", SeverityProblem, "RFC 7208 §4.5", fmt.Sprintf("%s publishes several SPF records: %s. Merge them into one.", domain, root.Error))
			a.Verdict = "several SPF records: permerror everywhere"
		default:
			a.add("spf-syntax", SeverityProblem, "RFC 7208 §4.6, §12", fmt.Sprintf("The SPF record of %s is invalid: %s. Receivers return permerror.", domain, root.Error))
			a.Verdict = "invalid SPF record: permerror everywhere"
		}
		return
	}
	// The tree.
	if len(w.temp) > 0 {
		a.Error = "temporary DNS failure for " + strings.Join(uniq(w.temp), ", ")
	}
	switch {
	case rep.Lookups > spf.DefaultMaxLookups:
		text := fmt.Sprintf("The SPF tree needs %d DNS lookups, over the limit of %d: receivers stop with permerror at the 11th, %s, so senders listed after it fail SPF.",
			rep.Lookups, spf.DefaultMaxLookups, w.over)
		if b := heaviest(rep.Branches); len(b) > 0 {
			text += " Heaviest branches: " + strings.Join(b, ", ") + "."
		}
		a.add("spf-lookups-over-limit", SeverityProblem, "RFC 7208 §4.6.4", text)
	case rep.Lookups >= spf.DefaultMaxLookups-1:
		a.add("spf-lookups-near-limit", SeverityWarning, "RFC 7208 §4.6.4", fmt.Sprintf("The SPF tree needs %d of the %d DNS lookups allowed: one more include will break it.", rep.Lookups, spf.DefaultMaxLookups))
	default:
		a.add("spf-lookups", SeverityInfo, "RFC 7208 §4.6.4", fmt.Sprintf("The SPF tree needs %d of the %d DNS lookups allowed.", rep.Lookups, spf.DefaultMaxLookups))
	}
	switch {
	case rep.VoidLookups > spf.DefaultMaxVoidLookups:
		a.add("spf-void-over-limit", SeverityProblem, "RFC 7208 §4.6.4", fmt.Sprintf("%d lookups of the SPF tree find nothing (%s), over the limit of %d: receivers that enforce it return permerror.",
			rep.VoidLookups, strings.Join(w.voids, ", "), spf.DefaultMaxVoidLookups))
	case len(w.voids) > 0:
		a.add("spf-void", SeverityWarning, "RFC 7208 §4.6.4", fmt.Sprintf("Terms of the SPF tree look up names with no answer (%s): %d void lookup(s) of the %d tolerated; remove them.",
			strings.Join(w.voids, ", "), rep.VoidLookups, spf.DefaultMaxVoidLookups))
	}
	if rep.VoidLookups6 > spf.DefaultMaxVoidLookups && rep.VoidLookups <= spf.DefaultMaxVoidLookups {
		a.add("spf-void-ipv6", SeverityInfo, "RFC 7208 §4.6.4, §5.3", fmt.Sprintf("For a client connecting over IPv6, %d lookups find nothing (names with an A record but no AAAA: %s): its evaluation ends in permerror at the third. This matters only if a sender listed after them sends over IPv6.",
			rep.VoidLookups6, strings.Join(w.voids6, ", ")))
	}
	for _, m := range w.missing {
		a.add("spf-include-missing", SeverityProblem, "RFC 7208 §5.2", fmt.Sprintf("%s points at a name without an SPF record: receivers return permerror when they reach it.", m))
	}
	for _, l := range w.loops {
		a.add("spf-include-loop", SeverityProblem, "RFC 7208 §4.6.4", fmt.Sprintf("%s loops back to a record already being evaluated: receivers return permerror.", l))
	}
	for _, m := range w.mxOver {
		a.add("spf-mx-too-many", SeverityProblem, "RFC 7208 §4.6.4", fmt.Sprintf("%s: more than %d MX names, a permerror.", m, spf.DefaultMaxMXNames))
	}
	switch rep.All {
	case "+all":
		a.add("spf-plus-all", SeverityProblem, "RFC 7208 §5.1", "The record ends with +all: every server on the Internet may send as the domain; SPF protects nothing.")
	case "?all":
		a.add("spf-neutral-all", SeverityWarning, "RFC 7208 §8.2", "The record ends with ?all (neutral): mail from unlisted servers gets no verdict, so SPF protects nothing.")
	case "~all":
		a.add("spf-softfail-all", SeverityInfo, "RFC 7208 §8.5", "The record ends with ~all (softfail): mail from unlisted servers is suspect but not refused by SPF alone; with DMARC enforcing this is fine, -all is stricter.")
	case "-all":
		a.add("spf-fail-all", SeverityInfo, "RFC 7208 §8.4", "The record ends with -all: mail from unlisted servers fails SPF.")
	default:
		a.add("spf-no-all", SeverityWarning, "RFC 7208 §4.7", "The record has no \"all\" mechanism and no redirect: mail from unlisted servers gets neutral, as with ?all.")
	}
	if rec, _ := spf.Parse(root.Record); rec != nil && rec.HasAll() && rec.Redirect() != nil {
		a.add("spf-redirect-ignored", SeverityWarning, "RFC 7208 §6.1", "The record has both \"all\" and redirect=: the redirect is ignored.")
	}
	if len(w.ptr) > 0 {
		a.add("spf-ptr", SeverityWarning, "RFC 7208 §5.5", "The ptr mechanism is used ("+strings.Join(w.ptr, ", ")+"): it is slow, unreliable and \"SHOULD NOT be used\"; list the addresses with ip4:/ip6: instead.")
	}
	if len(w.macros) > 0 {
		a.add("spf-macro", SeverityInfo, "RFC 7208 §7", "Terms with macros depend on the sender and were counted but not followed: "+strings.Join(w.macros, ", ")+".")
	}
	for _, l := range w.long {
		a.add("spf-too-long", SeverityWarning, "RFC 7208 §3.4", fmt.Sprintf("The TXT answer of %s is over %d octets: the DNS response may not fit one 512-octet UDP datagram, and some receivers fail to fetch it over TCP.", l, maxSPFAnswer))
	}
	switch {
	case a.has("spf-lookups-over-limit"):
		a.Verdict = fmt.Sprintf("%d DNS lookups, over the limit of 10: permerror at receivers", rep.Lookups)
	case a.has("spf-void-over-limit"):
		a.Verdict = fmt.Sprintf("%d void lookups, over the limit of 2: permerror at receivers", rep.VoidLookups)
	case a.has("spf-include-missing") || a.has("spf-include-loop") || a.has("spf-mx-too-many"):
		a.Verdict = "the tree has a broken branch: permerror at receivers"
	case rep.All == "+all":
		a.Verdict = "+all authorizes everyone"
	case rep.All == "?all" || rep.All == "":
		a.Verdict = fmt.Sprintf("valid, %d lookups, but unlisted senders get neutral", rep.Lookups)
	default:
		a.Verdict = fmt.Sprintf("valid, %d of 10 lookups, ends with %s", rep.Lookups, rep.All)
	}
}

// heaviest names the branches by lookups, most first (ties in record
// order), those of 2 lookups or more.
func heaviest(bs []SPFBranch) []string {
	s := slices.Clone(bs)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Lookups > s[j].Lookups })
	var out []string
	for _, b := range s {
		if b.Lookups >= 2 {
			out = append(out, fmt.Sprintf("%s (%d)", b.Term, b.Lookups))
		}
	}
	return out
}

func uniq(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// normalizeNetworks sorts and deduplicates networks, IPv4 first.
func normalizeNetworks(nets []string) []string {
	var ps []netip.Prefix
	for _, n := range nets {
		if p, err := netip.ParsePrefix(n); err == nil {
			p = p.Masked()
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if a.Addr().Is4() != b.Addr().Is4() {
			if a.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
