package spf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"portcullis/internal/dns"
)

// Check evaluates the MAIL FROM identity of req (RFC 7208 §2.4), or the
// HELO identity when MailFrom is empty (the null reverse-path: <sender>
// is then "postmaster@" + HELO). opts nil means the RFC defaults.
func Check(ctx context.Context, r dns.Resolver, req Request, opts *Options) Result {
	if req.MailFrom == "" {
		return CheckHELO(ctx, r, req, opts)
	}
	_, domain := splitSender(req.MailFrom)
	res := CheckHost(ctx, r, req, domain, req.MailFrom, opts)
	res.Identity = IdentityMailFrom
	if res.Trace != nil {
		res.Trace.Identity = IdentityMailFrom
	}
	return res
}

// CheckHELO evaluates the HELO identity of req (RFC 7208 §2.3): <domain>
// is the HELO name and <sender> "postmaster@" + HELO. RFC 7208 §2.3
// recommends checking it before MAIL FROM.
func CheckHELO(ctx context.Context, r dns.Resolver, req Request, opts *Options) Result {
	res := CheckHost(ctx, r, req, req.HELO, "postmaster@"+req.HELO, opts)
	res.Identity = IdentityHELO
	if res.Trace != nil {
		res.Trace.Identity = IdentityHELO
	}
	return res
}

// CheckHost is check_host(<ip>, <domain>, <sender>) of RFC 7208 §4, with
// req.IP as <ip> and req's HELO, Receiver and Now for the macros.
// Result.Identity is left empty. It never panics: an internal failure is
// a temperror wrapping ErrInternal, so that callers fail closed.
func CheckHost(ctx context.Context, r dns.Resolver, req Request, domain, sender string, opts *Options) (res Result) {
	c := newChecker(r, req, sender, opts)
	domain = strings.TrimSuffix(domain, ".")
	res.Domain = domain
	res.Sender = c.env.sender
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("%w: panic: %v", ErrInternal, p)
			res = Result{Result: TempError, Domain: domain, Sender: c.env.sender, Reason: err.Error(), Err: err}
		}
	}()
	if c.o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.Timeout)
		defer cancel()
	}
	c.ctx = ctx
	var tr *Trace
	if c.trace {
		tr = &Trace{Sender: c.env.sender, HELO: req.HELO}
		if req.IP.IsValid() {
			tr.IP = req.IP.String()
		}
		res.Trace = tr
	}

	var out outcome
	switch {
	case !c.ip.IsValid():
		out = outcome{v: PermError, err: errors.New("spf: no valid client IP address")}
	case !validDomain(domain, c.o.AllowSingleLabel):
		// RFC 7208 §4.3: a malformed or single-label domain gives none.
		out = outcome{v: None, err: fmt.Errorf("%w: %q", ErrInvalidDomain, domain)}
	default:
		var rt *RecordTrace
		if tr != nil {
			rt = newRecordTrace(domain, ViaCheck)
			tr.Record = rt
		}
		out = c.checkHost(domain, rt)
	}

	res.Result = out.v
	res.Lookups, res.VoidLookups = c.lookups, c.voids
	if out.err != nil {
		res.Err = out.err
		res.Reason = out.err.Error()
	}
	if out.term != nil {
		res.Mechanism = out.term.Text
	} else if out.err == nil && (out.v == Neutral) {
		res.Mechanism = "default"
	}
	if out.v == Fail {
		// RFC 7208 §6.2: the explanation of the record that failed.
		var et *ExplanationTrace
		res.Explanation, et = c.explain(out)
		if tr != nil {
			tr.Explanation = et
		}
	}
	if tr != nil {
		tr.Result = res.Result
		tr.Reason = res.Reason
		tr.Lookups, tr.VoidLookups, tr.Queries = c.lookups, c.voids, c.queries
	}
	return res
}

// options are Options with the defaults filled in.
type options struct {
	Options
}

func resolveOptions(o *Options) options {
	var ro options
	if o != nil {
		ro.Options = *o
	}
	if ro.MaxLookups == 0 {
		ro.MaxLookups = DefaultMaxLookups
	}
	switch {
	case ro.MaxVoidLookups == 0:
		ro.MaxVoidLookups = DefaultMaxVoidLookups
	case ro.MaxVoidLookups < 0:
		ro.MaxVoidLookups = 0
	}
	if ro.MaxMXNames <= 0 {
		ro.MaxMXNames = DefaultMaxMXNames
	}
	if ro.MaxPTRNames <= 0 {
		ro.MaxPTRNames = DefaultMaxPTRNames
	}
	if ro.Timeout == 0 {
		ro.Timeout = DefaultTimeout
	}
	if ro.DefaultExplanation == "" {
		ro.DefaultExplanation = DefaultExplanation
	}
	return ro
}

// checker holds the state of one evaluation, shared by the nested
// check_host() calls of include and redirect.
type checker struct {
	ctx   context.Context
	r     dns.Resolver
	o     options
	ip    netip.Addr // unmapped
	env   macroEnv
	trace bool

	lookups, voids, queries int

	cur *TermTrace // where queries are recorded; nil when not tracing

	ptrDone  bool
	ptrNames []string // validated names of ip, for %{p}

	buf []byte // scratch for macro expansion
}

func newChecker(r dns.Resolver, req Request, sender string, opts *Options) *checker {
	c := &checker{r: r, o: resolveOptions(opts), ip: req.IP.Unmap()}
	c.trace = !c.o.DisableTrace
	local, dom := splitSender(sender)
	if strings.LastIndexByte(sender, '@') <= 0 {
		// RFC 7208 §4.3: an empty local-part becomes "postmaster".
		sender = local + "@" + dom
	}
	c.env = macroEnv{
		sender: sender, local: local, senderDomain: dom,
		helo: req.HELO, receiver: req.Receiver, ip: c.ip, now: req.Now,
		checker: c,
	}
	return c
}

// outcome is the result of one check_host() call.
type outcome struct {
	v   Verdict
	err error
	// For a result decided by a mechanism: the record, its domain and the
	// term, which select the exp= to use (RFC 7208 §6.2).
	rec    *Record
	domain string
	term   *Term
}

// verdictOf maps an evaluation error to temperror (a temporary DNS
// failure, RFC 7208 §5) or permerror.
func verdictOf(err error) Verdict {
	if dns.IsTemporary(err) {
		return TempError
	}
	return PermError
}

// checkHost runs check_host() for domain, which the caller validated.
func (c *checker) checkHost(domain string, rt *RecordTrace) (out outcome) {
	defer func() {
		if rt != nil {
			rt.Result = out.v
			if out.err != nil {
				rt.Reason = out.err.Error()
			}
		}
	}()
	rec, out := c.fetchRecord(domain, rt)
	if rec == nil {
		return out
	}
	if rt != nil {
		rt.Record = rec.Text
		rt.Terms = make([]TermTrace, 0, len(rec.Terms))
	}
	// RFC 7208 §4.6.2: mechanisms are evaluated in order; the first match
	// gives the result.
	for i := range rec.Terms {
		t := &rec.Terms[i]
		if !t.Kind.IsMechanism() {
			continue
		}
		var tt *TermTrace
		if rt != nil {
			rt.Terms = append(rt.Terms, TermTrace{Pos: t.Pos, Text: t.Text, Kind: t.Kind, Qualifier: t.Qualifier})
			tt = &rt.Terms[len(rt.Terms)-1]
		}
		c.cur = tt
		match, err := c.evalMechanism(t, domain, tt)
		if err != nil {
			if tt != nil {
				tt.Note = err.Error()
			}
			return outcome{v: verdictOf(err), err: err}
		}
		if match {
			v := t.Qualifier.Verdict()
			if tt != nil {
				tt.Matched = true
				tt.Result = v
			}
			return outcome{v: v, rec: rec, domain: domain, term: t}
		}
	}
	// RFC 7208 §6.1: redirect applies when no mechanism matched, and is
	// ignored when the record has an "all" mechanism.
	if red := rec.Redirect(); red != nil && !rec.hasAll {
		var tt *TermTrace
		if rt != nil {
			rt.Terms = append(rt.Terms, TermTrace{Pos: red.Pos, Text: red.Text, Kind: red.Kind})
			tt = &rt.Terms[len(rt.Terms)-1]
		}
		c.cur = tt
		return c.redirect(red, domain, tt)
	}
	// RFC 7208 §4.7: no match and no redirect: neutral.
	return outcome{v: Neutral}
}

// newRecordTrace allocates a RecordTrace and its TXT Query at once.
func newRecordTrace(domain string, via Via) *RecordTrace {
	x := &struct {
		rt RecordTrace
		q  Query
	}{rt: RecordTrace{Domain: domain, Via: via}}
	x.rt.Query = &x.q
	return &x.rt
}

// fetchRecord finds the SPF record of domain (RFC 7208 §4.4, §4.5). When
// it returns a nil record, out is the result (none, temperror, permerror).
func (c *checker) fetchRecord(domain string, rt *RecordTrace) (*Record, outcome) {
	var q *Query
	if rt != nil {
		q = rt.Query
	}
	resp, err := c.query(domain, dns.TypeTXT, q)
	if err != nil {
		if dns.IsTemporary(err) {
			// RFC 7208 §4.4: a server failure or timeout is temperror.
			return nil, outcome{v: TempError, err: err}
		}
		// The name cannot be asked (not a valid domain name): no record.
		return nil, outcome{v: None, err: fmt.Errorf("%w: %v", ErrNoRecord, err)}
	}
	// RFC 7208 §4.5: keep the records that begin with "v=spf1"; none is
	// "none", more than one is permerror.
	var text string
	found := 0
	for i := range resp.Records {
		rec := &resp.Records[i]
		if rec.Type != dns.TypeTXT {
			continue
		}
		var t string
		if len(rec.TXT) == 1 {
			t = rec.TXT[0]
		} else {
			t = rec.Text()
		}
		if IsSPFRecord(t) {
			found++
			text = t
		}
	}
	switch {
	case found == 0:
		return nil, outcome{v: None, err: fmt.Errorf("%w at %s", ErrNoRecord, domain)}
	case found > 1:
		return nil, outcome{v: PermError, err: fmt.Errorf("%w at %s", ErrMultipleRecords, domain)}
	}
	rec, err := c.parse(text)
	if err != nil {
		if rt != nil {
			rt.Record = text
		}
		return nil, outcome{v: PermError, err: err}
	}
	return rec, outcome{}
}

// parse parses a record, through the cache when one is configured.
func (c *checker) parse(text string) (*Record, error) {
	po := ParseOptions{AllowSingleLabel: c.o.AllowSingleLabel}
	cache := c.o.ParsedRecords
	if cache == nil {
		return ParseWith(text, po)
	}
	k := recordKey{text: text, single: po.AllowSingleLabel}
	if r := cache.get(k); r != nil {
		return r, nil
	}
	r, err := ParseWith(text, po)
	if err == nil {
		cache.put(k, r)
	}
	return r, err
}

// query asks the resolver and records the query in q when tracing.
func (c *checker) query(name string, t dns.Type, q *Query) (*dns.Response, error) {
	c.queries++
	resp, err := c.r.Query(c.ctx, name, t)
	if q != nil {
		q.Name, q.Type = name, t.String()
		if err != nil {
			q.Error = err.Error()
		} else {
			q.RCode = resp.RCode.String()
			q.resp = resp
		}
	}
	return resp, err
}

// queryTerm asks on behalf of the current term, recording the query in its
// trace.
func (c *checker) queryTerm(name string, t dns.Type) (*dns.Response, error) {
	if c.cur == nil {
		return c.query(name, t, nil)
	}
	c.cur.Queries = append(c.cur.Queries, Query{})
	return c.query(name, t, &c.cur.Queries[len(c.cur.Queries)-1])
}

// countLookup counts a term that queries DNS (RFC 7208 §4.6.4).
func (c *checker) countLookup(tt *TermTrace) error {
	c.lookups++
	if tt != nil {
		tt.Lookup = true
	}
	if c.lookups > c.o.MaxLookups {
		return fmt.Errorf("%w (more than %d)", ErrTooManyLookups, c.o.MaxLookups)
	}
	return nil
}

// countVoid counts a term whose lookup found nothing (RFC 7208 §4.6.4).
func (c *checker) countVoid(tt *TermTrace) error {
	c.voids++
	if tt != nil {
		tt.Void = true
	}
	if c.voids > c.o.MaxVoidLookups {
		return fmt.Errorf("%w (more than %d)", ErrTooManyVoidLookups, c.o.MaxVoidLookups)
	}
	return nil
}

// target expands a term's domain-spec into the name to look up (RFC 7208
// §4.8: without one, the current <domain>). ok is false when the result
// is not a name DNS can be asked (an empty label, a label over 63
// octets).
func (c *checker) target(t *Term, domain string) (name string, ok bool) {
	if t.DomainSpec == "" {
		return domain, true
	}
	if !t.spec.hasMacros() {
		name = t.DomainSpec
	} else {
		c.env.domain = domain
		c.buf = t.spec.expand(c.buf[:0], &c.env)
		name = string(c.buf)
	}
	// RFC 7208 §7.3: drop the trailing dot; truncate to 253 octets by
	// removing labels on the left.
	name = truncateDomain(name)
	return name, dnsName(name)
}

// dnsName reports whether name can be sent as a DNS query: labels of 1 to
// 63 octets, 253 octets in all (RFC 1035 §2.3.4).
func dnsName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if l := i - start; l == 0 || l > 63 {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// validDomain checks the <domain> of check_host() (RFC 7208 §4.3): a
// fully qualified domain name of at least two labels, each of 1 to 63
// octets of visible ASCII, not a bracketed address literal.
func validDomain(name string, single bool) bool {
	if !dnsName(name) || name[0] == '[' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return false
		}
	}
	return single || strings.IndexByte(name, '.') > 0
}

// evalMechanism evaluates one mechanism (RFC 7208 §5). A non-nil error
// ends the evaluation with permerror or temperror.
func (c *checker) evalMechanism(t *Term, domain string, tt *TermTrace) (bool, error) {
	switch t.Kind {
	case KindAll:
		return true, nil // RFC 7208 §5.1
	case KindIP4:
		// RFC 7208 §5.6: ip4 matches IPv4 clients only (IPv4-mapped
		// addresses were unmapped).
		return c.ip.Is4() && t.Network.Contains(c.ip), nil
	case KindIP6:
		return c.ip.Is6() && t.Network.Contains(c.ip), nil
	}
	if err := c.countLookup(tt); err != nil {
		return false, err
	}
	name, ok := c.target(t, domain)
	if tt != nil {
		tt.Target = name
	}
	if !ok {
		// A target that is not a valid DNS name cannot exist: the
		// mechanism does not match (RFC 7208 §4.3 by analogy; §4.8).
		if t.Kind == KindInclude {
			return false, fmt.Errorf("%w: %q is not a valid domain name", ErrIncludeNone, name)
		}
		if tt != nil {
			tt.Note = "target is not a valid domain name: no match"
		}
		return false, nil
	}
	switch t.Kind {
	case KindInclude:
		return c.include(name, tt)
	case KindA:
		return c.matchA(t, name, tt)
	case KindMX:
		return c.matchMX(t, name, tt)
	case KindPTR:
		return c.matchPTR(name, tt)
	case KindExists:
		return c.exists(name, tt)
	}
	return false, fmt.Errorf("%w: unexpected mechanism %q", ErrSyntax, t.Kind)
}

// addrType is the address record type for the client: A for IPv4, AAAA
// for IPv6 (RFC 7208 §5).
func (c *checker) addrType() dns.Type {
	if c.ip.Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// matchAddrs reports whether the client is in any address of resp within
// the dual CIDR lengths of t.
func (c *checker) matchAddrs(t *Term, resp *dns.Response) bool {
	v4, v6 := t.Prefixes()
	bits := v6
	if c.ip.Is4() {
		bits = v4
	}
	for i := range resp.Records {
		a := resp.Records[i].IP
		if a.Is4In6() && c.ip.Is4() {
			a = a.Unmap()
		}
		if a.BitLen() != c.ip.BitLen() {
			continue
		}
		if bits == a.BitLen() {
			if a == c.ip {
				return true
			}
			continue
		}
		if p, err := a.Prefix(bits); err == nil && p.Contains(c.ip) {
			return true
		}
	}
	return false
}

// matchA is the "a" mechanism (RFC 7208 §5.3).
func (c *checker) matchA(t *Term, name string, tt *TermTrace) (bool, error) {
	resp, err := c.queryTerm(name, c.addrType())
	if err != nil {
		return false, err
	}
	if resp.Void() {
		return false, c.countVoid(tt)
	}
	return c.matchAddrs(t, resp), nil
}

// matchMX is the "mx" mechanism (RFC 7208 §5.4).
func (c *checker) matchMX(t *Term, name string, tt *TermTrace) (bool, error) {
	resp, err := c.queryTerm(name, dns.TypeMX)
	if err != nil {
		return false, err
	}
	if resp.Void() {
		// RFC 7208 §5.4: no MX records: no match, and no fall back to the
		// name's own addresses.
		return false, c.countVoid(tt)
	}
	n := 0
	for i := range resp.Records {
		if resp.Records[i].Type == dns.TypeMX {
			n++
		}
	}
	// RFC 7208 §4.6.4: more than 10 MX names is a permerror.
	if n > c.o.MaxMXNames {
		return false, fmt.Errorf("%w: %d at %s (limit %d)", ErrTooManyMX, n, name, c.o.MaxMXNames)
	}
	at := c.addrType()
	if c.cur != nil {
		qs := make([]Query, len(c.cur.Queries), len(c.cur.Queries)+n)
		copy(qs, c.cur.Queries)
		c.cur.Queries = qs
	}
	for i := range resp.Records {
		mx := &resp.Records[i]
		if mx.Type != dns.TypeMX || mx.Host == "" || mx.Host == "." {
			continue // a null MX (RFC 7505) names no host
		}
		ar, err := c.queryTerm(mx.Host, at)
		if err != nil {
			if errors.Is(err, dns.ErrPermanent) {
				continue // an exchange name DNS cannot ask
			}
			return false, err
		}
		if c.matchAddrs(t, ar) {
			return true, nil
		}
	}
	return false, nil
}

// exists is the "exists" mechanism (RFC 7208 §5.7): an A query whatever
// the client's address family.
func (c *checker) exists(name string, tt *TermTrace) (bool, error) {
	resp, err := c.queryTerm(name, dns.TypeA)
	if err != nil {
		return false, err
	}
	if resp.Void() {
		return false, c.countVoid(tt)
	}
	return true, nil
}

// ptrNames returns up to MaxPTRNames names of the client's PTR records
// (RFC 7208 §5.5, §4.6.4: the rest are ignored). void reports an empty
// answer; err a failed lookup.
func (c *checker) ptrLookup() (names []string, void bool, err error) {
	resp, err := c.queryTerm(dns.ReverseName(c.ip), dns.TypePTR)
	if err != nil {
		return nil, false, err
	}
	if resp.Void() {
		return nil, true, nil
	}
	names = make([]string, 0, min(len(resp.Records), c.o.MaxPTRNames))
	for i := range resp.Records {
		if resp.Records[i].Type != dns.TypePTR {
			continue
		}
		if len(names) == c.o.MaxPTRNames {
			if c.cur != nil {
				c.cur.Note = fmt.Sprintf("PTR names beyond the first %d ignored", c.o.MaxPTRNames)
			}
			break
		}
		names = append(names, strings.TrimSuffix(resp.Records[i].Host, "."))
	}
	return names, false, nil
}

// validates reports whether name resolves to the client's address (RFC
// 7208 §5.5). A lookup error skips the name.
func (c *checker) validates(name string) bool {
	if !dnsName(name) {
		return false
	}
	resp, err := c.queryTerm(name, c.addrType())
	if err != nil {
		return false
	}
	for i := range resp.Records {
		if resp.Records[i].IP.Unmap() == c.ip {
			return true
		}
	}
	return false
}

// matchPTR is the "ptr" mechanism (RFC 7208 §5.5).
func (c *checker) matchPTR(target string, tt *TermTrace) (bool, error) {
	names, void, err := c.ptrLookup()
	if err != nil {
		// RFC 7208 §5.5: a DNS error on the PTR lookup: no match.
		if tt != nil {
			tt.Note = "PTR lookup failed: no match"
		}
		return false, nil
	}
	if void {
		return false, c.countVoid(tt)
	}
	// Only names equal to or under the target can make the mechanism
	// match, so only those are validated.
	for _, n := range names {
		if isSubdomain(n, target) && c.validates(n) {
			return true, nil
		}
	}
	return false, nil
}

// isSubdomain reports whether name is domain or a subdomain of it,
// ignoring ASCII case.
func isSubdomain(name, domain string) bool {
	name = strings.TrimSuffix(name, ".")
	domain = strings.TrimSuffix(domain, ".")
	if len(name) < len(domain) {
		return false
	}
	if !strings.EqualFold(name[len(name)-len(domain):], domain) {
		return false
	}
	return len(name) == len(domain) || name[len(name)-len(domain)-1] == '.'
}

// validatedName is %{p} (RFC 7208 §7.3): a validated name of the client
// equal to domain, else one under domain, else any, else "unknown".
func (c *checker) validatedName(domain string) string {
	if !c.ptrDone {
		c.ptrDone = true
		names, _, err := c.ptrLookup()
		if err == nil {
			for _, n := range names {
				if c.validates(n) {
					c.ptrNames = append(c.ptrNames, n)
				}
			}
		}
	}
	if len(c.ptrNames) == 0 {
		return "unknown"
	}
	for _, n := range c.ptrNames {
		if strings.EqualFold(n, domain) {
			return n
		}
	}
	for _, n := range c.ptrNames {
		if isSubdomain(n, domain) {
			return n
		}
	}
	return c.ptrNames[0]
}

// include is the "include" mechanism (RFC 7208 §5.2).
func (c *checker) include(name string, tt *TermTrace) (bool, error) {
	var child *RecordTrace
	if tt != nil {
		child = newRecordTrace(name, ViaInclude)
		tt.Child = child
	}
	out := c.checkHost(name, child)
	c.cur = tt
	if tt != nil {
		tt.Result = out.v
	}
	// RFC 7208 §5.2 table.
	switch out.v {
	case Pass:
		return true, nil
	case Fail, SoftFail, Neutral:
		return false, nil
	case None:
		return false, fmt.Errorf("%w: %s", ErrIncludeNone, name)
	}
	return false, out.err
}

// redirect is the "redirect" modifier (RFC 7208 §6.1).
func (c *checker) redirect(t *Term, domain string, tt *TermTrace) outcome {
	if err := c.countLookup(tt); err != nil {
		return outcome{v: PermError, err: err}
	}
	name, ok := c.target(t, domain)
	if tt != nil {
		tt.Target = name
	}
	if !ok || !validDomain(name, c.o.AllowSingleLabel) {
		return outcome{v: PermError, err: fmt.Errorf("%w: %q is not a valid domain name", ErrRedirectNone, name)}
	}
	var child *RecordTrace
	if tt != nil {
		child = newRecordTrace(name, ViaRedirect)
		tt.Child = child
	}
	out := c.checkHost(name, child)
	if tt != nil {
		tt.Result = out.v
		tt.Matched = true
	}
	if out.v == None {
		// RFC 7208 §6.1: no record at the target is a permerror.
		return outcome{v: PermError, err: fmt.Errorf("%w: %s", ErrRedirectNone, name)}
	}
	return out
}

// explain computes the explanation of a fail (RFC 7208 §6.2): the exp=
// of the record that failed, or the default explanation when there is
// none or it cannot be used.
func (c *checker) explain(out outcome) (string, *ExplanationTrace) {
	c.cur = nil
	c.env.domain = out.domain
	var et *ExplanationTrace
	if c.trace {
		et = &ExplanationTrace{Source: "default", Domain: out.domain}
	}
	def := func(note string) (string, *ExplanationTrace) {
		ms, err := parseMacroString(c.o.DefaultExplanation, macroExplain)
		if err != nil {
			ms = macroString{raw: c.o.DefaultExplanation} // used as it is
		}
		text := string(ms.expand(nil, &c.env))
		if et != nil {
			et.Note, et.Text = note, text
		}
		return text, et
	}
	if out.rec == nil {
		return def("")
	}
	exp := out.rec.Exp()
	if exp == nil {
		return def("")
	}
	if et != nil {
		et.Term = exp.Text
	}
	name, ok := c.target(exp, out.domain)
	if et != nil {
		et.Target = name
	}
	if !ok {
		return def("exp= target is not a valid domain name")
	}
	var q *Query
	if et != nil {
		q = &Query{}
		et.Query = q
	}
	// The exp lookup counts against neither limit (RFC 7208 §4.6.4).
	resp, err := c.query(name, dns.TypeTXT, q)
	if err != nil {
		return def("exp= lookup failed")
	}
	texts := 0
	var text string
	for i := range resp.Records {
		if resp.Records[i].Type == dns.TypeTXT {
			texts++
			text = resp.Records[i].Text()
		}
	}
	if texts != 1 {
		return def(fmt.Sprintf("exp= lookup returned %d TXT records, not 1", texts))
	}
	ms, err := parseMacroString(text, macroExplain)
	if err != nil {
		return def("exp= text is not a valid explain-string: " + err.Error())
	}
	expl := string(ms.expand(nil, &c.env))
	if et != nil {
		et.Source, et.Text = "exp", expl
	}
	return expl, et
}
