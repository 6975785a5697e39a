package posture

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"portcullis/internal/dmarc"
	"portcullis/internal/spf"
)

// Remediation is what the domain's owner should publish and do.
type Remediation struct {
	Records []RecordSuggestion `json:"records"`
	Advice  []string           `json:"advice"`
	// Stages is the staged path to p=reject, with the current stage
	// marked.
	Stages []Stage `json:"stages"`
}

// Actions of a RecordSuggestion.
const (
	ActionPublish = "publish" // a record that does not exist yet
	ActionReplace = "replace" // replaces the record published now
	ActionAsk     = "ask"     // to be published by someone else (a report destination)
)

// RecordSuggestion is one DNS record to publish.
type RecordSuggestion struct {
	Area   string `json:"area"`
	Action string `json:"action"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Value  string `json:"value"`
	// Current is the record it replaces.
	Current string `json:"current,omitempty"`
	// Zone is the record as an RFC 1035 master-file line (TXT values
	// split into strings of at most 255 octets).
	Zone string `json:"zone"`
	Why  string `json:"why"`
	// Template reports placeholders in <angle brackets> that the owner
	// must fill in: the check does not know those values.
	Template bool `json:"template,omitempty"`
	// Note is a caution that goes with the record.
	Note string `json:"note,omitempty"`
}

// Stage is one step of the path from p=none to p=reject.
type Stage struct {
	N      int    `json:"n"`
	Policy string `json:"policy"`
	Title  string `json:"title"`
	// Record is the DMARC record of the stage, built from the one
	// published now (its rua= kept).
	Record string   `json:"record"`
	Watch  []string `json:"watch"`
	// Current marks the stage the domain is at; Done the stages behind.
	Current bool `json:"current"`
	Done    bool `json:"done"`
}

func zoneLine(name, typ, value string) string {
	if typ != "TXT" {
		return fmt.Sprintf("%s. 3600 IN %s %s", name, typ, value)
	}
	var parts []string
	for len(value) > 255 {
		parts = append(parts, quoteTXT(value[:255]))
		value = value[255:]
	}
	parts = append(parts, quoteTXT(value))
	return fmt.Sprintf("%s. 3600 IN TXT %s", name, strings.Join(parts, " "))
}

func quoteTXT(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (rm *Remediation) record(s RecordSuggestion) {
	s.Zone = zoneLine(s.Name, s.Type, s.Value)
	rm.Records = append(rm.Records, s)
}

func (rm *Remediation) advise(format string, args ...any) {
	rm.Advice = append(rm.Advice, fmt.Sprintf(format, args...))
}

// Remediate derives the records to publish, the advice and the staged path
// from a report. It suggests only what the check learned from the DNS:
// values it cannot know (a provider's include, a mailbox, a public key)
// are left as <placeholders> and the suggestion is marked Template.
func Remediate(r *Report) Remediation {
	rm := Remediation{Records: []RecordSuggestion{}, Advice: []string{}, Stages: []Stage{}}
	if r.Error != "" || r.MX.NXDomain {
		rm.advise("Register and delegate %s before anything else can be checked.", r.Domain)
		return rm
	}
	rm.spf(r)
	rm.dmarc(r)
	rm.dkim(r)
	rm.mx(r)
	rm.stages(r)
	return rm
}

// --- SPF ---

func (rm *Remediation) spf(r *Report) {
	s := &r.SPF
	d := r.Domain
	switch {
	case s.Status == StatusError:
		return
	case s.has("spf-missing"):
		if r.MX.Null || (len(r.DKIM.Keys) == 0 && r.MX.Implicit) {
			rm.record(RecordSuggestion{Area: "spf", Action: ActionPublish, Name: d, Type: "TXT", Value: "v=spf1 -all",
				Why: "Either, if the domain sends no mail (it shows no sign of it: no MX or a null MX, no DKIM key): say that nobody may send as it."})
		}
		rm.record(RecordSuggestion{Area: "spf", Action: ActionPublish, Name: d, Type: "TXT", Template: true,
			Value: "v=spf1 ip4:<address of your outbound mail server> include:<SPF domain your email provider documents> ~all",
			Why:   "If the domain sends mail: list every server and service that sends as it, and nothing else.",
			Note:  "Fill in the addresses and includes of your own senders; the check cannot know them. Keep to 10 DNS lookups (each include, a, mx counts)."})
		return
	case s.has("spf-multiple"):
		rm.advise("Merge the SPF records of %s into one: receivers return permerror when there are several (RFC 7208 §4.5).", d)
		return
	case s.has("spf-syntax"):
		rm.advise("Correct the SPF record of %s: %s", d, s.Tree.Error)
		return
	}
	rec, err := spf.Parse(s.Record)
	if err != nil {
		return
	}
	var why []string
	var notes []string
	terms := make([]string, 0, len(rec.Terms))
	voidTop := map[string]bool{}
	for _, v := range s.Tree.Void {
		voidTop[v] = true
	}
	for _, t := range rec.Terms {
		terms = append(terms, t.Text)
	}
	// Void terms of the top record authorize nothing: drop them.
	if len(s.Tree.Void) > 0 {
		terms = slices.DeleteFunc(terms, func(x string) bool { return voidTop[x] })
		why = append(why, "drops "+strings.Join(s.Tree.Void, ", ")+" (they look up names that do not answer: void lookups)")
	}
	// Flatten the heaviest includes until the tree is within 10 lookups,
	// counting the sub-records a long result is split into.
	var parts []spfPart
	if s.Lookups > spf.DefaultMaxLookups {
		ok := false
		for budget := spf.DefaultMaxLookups; budget >= 0 && !ok; budget-- {
			flat, left, chosen, fits := flatten(s, terms, budget)
			if !fits {
				break
			}
			p := splitLong(d, "v=spf1 "+strings.Join(flat, " "))
			if left+len(p)-1 > spf.DefaultMaxLookups {
				continue
			}
			ok = true
			terms = flat
			why = append(why, fmt.Sprintf("replaces %s by the address ranges they publish today: %d DNS lookups instead of %d", strings.Join(chosen, ", "), left+len(p)-1, s.Lookups))
			notes = append(notes, "Flattened ranges are a snapshot of what those providers publish now: they can change them without notice, and then your mail fails SPF. Re-check often (portcullis check), prefer asking each provider for a narrower include, and first remove includes of services you no longer use.")
		}
		if !ok {
			rm.advise("The SPF tree of %s needs %d lookups and flattening the includes that can be flattened does not bring it under 10: remove the includes of services you no longer use, or move some senders to a subdomain with its own SPF record.", d, s.Lookups)
		}
	}
	// The final "all".
	switch s.All {
	case "+all", "?all", "":
		if rec.Redirect() == nil || s.All == "+all" || s.All == "?all" {
			terms = slices.DeleteFunc(terms, isAllTerm)
			terms = append(terms, "~all")
			why = append(why, fmt.Sprintf("ends with ~all instead of %q so that unlisted servers fail softly (use -all once every sender is listed)", orText(s.All, "no all")))
		}
	}
	if len(why) == 0 {
		if s.has("spf-ptr") {
			rm.advise("Replace the ptr mechanism in the SPF record of %s by ip4:/ip6: terms for the servers it stands for (RFC 7208 §5.5).", d)
		}
		return
	}
	value := "v=spf1 " + strings.Join(terms, " ")
	parts = splitLong(d, value)
	main := parts[0]
	note := strings.Join(notes, " ")
	if len(parts) > 1 {
		note = strings.TrimSpace(note + " The flattened record is too long for one DNS answer (RFC 7208 §3.4), so its ranges are split into sub-records included from the main one (one lookup each).")
	}
	rm.record(RecordSuggestion{Area: "spf", Action: ActionReplace, Name: d, Type: "TXT", Value: main.value, Current: s.Record,
		Why: "This record " + strings.Join(why, "; ") + ".", Note: note})
	for _, p := range parts[1:] {
		rm.record(RecordSuggestion{Area: "spf", Action: ActionPublish, Name: p.name, Type: "TXT", Value: p.value,
			Why: "Part of the flattened ranges, included from " + d + "."})
	}
	if s.has("spf-ptr") {
		rm.advise("Replace the ptr mechanism in the SPF record of %s by ip4:/ip6: terms for the servers it stands for (RFC 7208 §5.5).", d)
	}
}

func isAllTerm(x string) bool {
	x = strings.ToLower(x)
	return strings.TrimLeft(x, "+-~?") == "all" && len(x) <= 4
}

type spfPart struct{ name, value string }

// maxPart is the size a sub-record of flattened ranges is kept under.
const maxPart = 400

// splitLong keeps a record under the size of RFC 7208 §3.4: when it is
// longer, its ip4/ip6 terms move to _spfN.<domain> records, each under
// maxPart octets, included from the main record.
func splitLong(domain, value string) []spfPart {
	if len(value) <= maxSPFAnswer {
		return []spfPart{{domain, value}}
	}
	fields := strings.Fields(value)[1:]
	var ips, rest []string
	for _, f := range fields {
		if strings.HasPrefix(f, "ip4:") || strings.HasPrefix(f, "ip6:") {
			ips = append(ips, f)
		} else {
			rest = append(rest, f)
		}
	}
	var parts []spfPart
	cur := "v=spf1"
	for _, ip := range ips {
		if len(cur)+1+len(ip) > maxPart {
			parts = append(parts, spfPart{fmt.Sprintf("_spf%d.%s", len(parts)+1, domain), cur})
			cur = "v=spf1"
		}
		cur += " " + ip
	}
	if cur != "v=spf1" {
		parts = append(parts, spfPart{fmt.Sprintf("_spf%d.%s", len(parts)+1, domain), cur})
	}
	var incs []string
	for _, p := range parts {
		incs = append(incs, "include:"+p.name)
	}
	// Keep "all" and modifiers last.
	var mech, tail []string
	for _, f := range rest {
		l := strings.ToLower(f)
		if isAllTerm(l) || strings.HasPrefix(l, "redirect=") || strings.HasPrefix(l, "exp=") {
			tail = append(tail, f)
		} else {
			mech = append(mech, f)
		}
	}
	main := "v=spf1 " + strings.Join(append(append(mech, incs...), tail...), " ")
	return append([]spfPart{{domain, main}}, parts...)
}

// flatten replaces the heaviest flattenable includes of the top record by
// their address ranges until the tree needs at most limit lookups. It
// returns the new terms, the lookups left and the includes replaced; fits
// is false when flattening every candidate is not enough.
func flatten(s *SPFReport, terms []string, limit int) (out []string, left int, names []string, fits bool) {
	type cand struct {
		node *SPFNode
		cost int
	}
	var cands []cand
	for _, c := range s.Tree.Children {
		if c.Via == string(spf.ViaInclude) && c.Flattenable && c.Error == "" {
			cands = append(cands, cand{c, 1 + c.TreeLookups})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].cost > cands[j].cost })
	left = s.Lookups
	chosen := map[string]*SPFNode{}
	for _, c := range cands {
		if left <= limit {
			break
		}
		chosen[c.node.Term] = c.node
		names = append(names, c.node.Term)
		left -= c.cost
	}
	if left > limit {
		return nil, 0, nil, false
	}
	var seen []string
	for _, t := range terms {
		n, ok := chosen[t]
		if !ok {
			out = append(out, t)
			continue
		}
		for _, net := range normalizeNetworks(n.Networks) {
			term := "ip4:" + net
			if strings.Contains(net, ":") {
				term = "ip6:" + net
			}
			if !slices.Contains(seen, term) {
				seen = append(seen, term)
				out = append(out, term)
			}
		}
	}
	return out, left, names, true
}

// --- DMARC ---

// tagList is a DMARC record as an ordered tag list.
type tagList [][2]string

func parseTags(raw string) tagList {
	var l tagList
	for part := range strings.SplitSeq(raw, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		l = append(l, [2]string{strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)})
	}
	return l
}

func (l tagList) get(k string) string {
	for _, t := range l {
		if t[0] == k {
			return t[1]
		}
	}
	return ""
}

func (l tagList) set(k, v string) tagList {
	for i, t := range l {
		if t[0] == k {
			l = slices.Clone(l)
			l[i][1] = v
			return l
		}
	}
	return append(slices.Clone(l), [2]string{k, v})
}

func (l tagList) del(k string) tagList {
	return slices.DeleteFunc(slices.Clone(l), func(t [2]string) bool { return t[0] == k })
}

func (l tagList) String() string {
	// v= first, p= second (RFC 9989 §4.7: v must be first).
	order := []string{"v", "p"}
	var parts []string
	for _, k := range order {
		if v := l.get(k); v != "" || k == "v" {
			if k == "v" {
				v = "DMARC1"
			}
			parts = append(parts, k+"="+v)
		}
	}
	for _, t := range l {
		if !slices.Contains(order, t[0]) {
			parts = append(parts, t[0]+"="+t[1])
		}
	}
	return strings.Join(parts, "; ")
}

// baseDMARC is the current record with what the check found fixed, at the
// same policy: removed tags dropped, rua added, sp no weaker than p.
func baseDMARC(r *Report) (tagList, []string) {
	dm := &r.DMARC
	var why []string
	var tags tagList
	if dm.Record != "" && !dm.Inherited {
		tags = parseTags(dm.Record)
	} else {
		tags = tagList{{"v", "DMARC1"}, {"p", "none"}}
	}
	for _, k := range []string{"pct", "rf", "ri"} {
		if tags.get(k) != "" {
			tags = tags.del(k)
			why = append(why, k+"= removed (RFC 9989 dropped it)")
		}
	}
	if dm.Record == "" || dm.Inherited || len(dm.RUA) == 0 && !dm.has("dmarc-rua-unauthorized") {
		if tags.get("rua") == "" {
			tags = tags.set("rua", "mailto:dmarc-reports@"+r.Domain)
			why = append(why, "rua= added so that aggregate reports arrive")
		}
	}
	if p := dmarc.Policy(tags.get("p")); tags.get("sp") != "" && strength(dmarc.Policy(tags.get("sp"))) < strength(p) {
		tags = tags.del("sp")
		why = append(why, "sp= removed so that subdomains get the same policy")
	}
	return tags, why
}

func (rm *Remediation) dmarc(r *Report) {
	dm := &r.DMARC
	d := r.Domain
	if dm.Status == StatusError {
		return
	}
	if dm.has("dmarc-multiple") {
		rm.advise("Keep a single TXT record at _dmarc.%s: with several, receivers ignore them all.", d)
	}
	tags, why := baseDMARC(r)
	name := "_dmarc." + d
	mailboxNote := ""
	if strings.Contains(tags.get("rua"), "mailto:dmarc-reports@"+d) {
		mailboxNote = "Create the mailbox dmarc-reports@" + d + " first (or put the address your DMARC report processor gives you): reports are XML files, a processor makes them readable."
	}
	switch {
	case dm.Record == "" && !dm.has("dmarc-multiple"):
		rm.record(RecordSuggestion{Area: "dmarc", Action: ActionPublish, Name: name, Type: "TXT", Value: tags.String(),
			Why: "Publish DMARC in monitoring mode to collect aggregate reports: the first stage of the path below.", Note: mailboxNote})
	case dm.Inherited:
		if dm.Policy == string(dmarc.PolicyNone) {
			rm.advise("%s inherits p=none-level protection from %s: raise the policy there (sp=), or publish a record of its own.", d, dm.PolicyDomain)
		}
	case len(why) > 0:
		rm.record(RecordSuggestion{Area: "dmarc", Action: ActionReplace, Name: name, Type: "TXT", Value: tags.String(), Current: dm.Record,
			Why: "Same policy, corrected: " + strings.Join(why, "; ") + ".", Note: mailboxNote})
	}
	for _, u := range append(slices.Clone(dm.RUA), dm.RUF...) {
		if u.External && !u.Authorized && u.AuthName != "" {
			rm.record(RecordSuggestion{Area: "dmarc", Action: ActionAsk, Name: u.AuthName, Type: "TXT", Value: "v=DMARC1",
				Why: fmt.Sprintf("%s must publish this record to accept reports for %s (RFC 9990, Verifying External Destinations); until then receivers do not send reports to %s.", u.Host, dm.PolicyDomain, u.URI)})
		}
	}
}

// stages builds the path none → quarantine → reject from the current
// record.
func (rm *Remediation) stages(r *Report) {
	dm := &r.DMARC
	tags, _ := baseDMARC(r)
	cur := 0 // no usable record
	switch {
	case dm.Record == "" || dm.has("dmarc-not-applicable"):
	case dm.Policy == string(dmarc.PolicyNone):
		cur = 1
	case dm.Policy == string(dmarc.PolicyQuarantine) || dm.Testing:
		cur = 2
	case dm.Policy == string(dmarc.PolicyReject):
		cur = 3
	}
	if dm.Inherited && cur > 0 {
		// The owner of the parent record moves the stages.
		tags = tags.del("sp")
	}
	mk := func(p string, extra ...[2]string) string {
		t := tags.set("p", p).del("t")
		if p != "none" && t.get("sp") == "none" {
			t = t.del("sp")
		}
		for _, e := range extra {
			t = t.set(e[0], e[1])
		}
		return t.String()
	}
	d := r.Domain
	rm.Stages = []Stage{
		{N: 1, Policy: "none", Title: "Monitor (p=none)", Record: mk("none"), Watch: []string{
			"Read the aggregate reports for two to four weeks: list every address and service that sends as " + d + ".",
			"Make each legitimate source pass aligned DKIM (a signature with d=" + d + ") or aligned SPF (a bounce domain under " + d + ").",
			"Move on when the reports show no legitimate source failing: what still fails is spoofing or forwarding.",
		}},
		{N: 2, Policy: "quarantine", Title: "Quarantine (p=quarantine)", Record: mk("quarantine"), Watch: []string{
			"Failing mail now goes to spam folders: watch the reports and users' complaints for legitimate mail that still fails.",
			"Forwarded and mailing-list mail fails DMARC by nature; receivers that trust ARC sealers recover part of it.",
			"Optionally start with t=y (receivers apply it as p=none) for a week, then remove t=y.",
			"Move on after two to four weeks without legitimate failures.",
		}},
		{N: 3, Policy: "reject", Title: "Reject (p=reject)", Record: mk("reject", [2]string{"np", "reject"}), Watch: []string{
			"Receivers refuse mail that fails: spoofing of " + d + " is blocked.",
			"Keep reading the reports: a new service must be aligned before it sends as " + d + ".",
			"np=reject (RFC 9989) refuses mail from subdomains that do not exist.",
		}},
	}
	for i := range rm.Stages {
		st := &rm.Stages[i]
		st.Current = st.N == cur
		st.Done = st.N < cur
	}
}

// --- DKIM ---

func (rm *Remediation) dkim(r *Report) {
	k := &r.DKIM
	d := r.Domain
	if k.Status == StatusError || r.sendsNoMail() {
		return
	}
	if len(k.Keys) == 0 {
		rm.record(RecordSuggestion{Area: "dkim", Action: ActionPublish, Name: "<selector>._domainkey." + d, Type: "TXT", Template: true,
			Value: "v=DKIM1; k=rsa; p=<public key your signing service gives you>",
			Why:   "Enable DKIM signing with d=" + d + " in every service that sends as the domain; each gives a selector and a key (or a CNAME) to publish.",
			Note:  "Use RSA keys of 2048 bits. If the keys are already published at selectors this check does not know, run it again with --selector."})
		return
	}
	for _, key := range k.Keys {
		switch {
		case key.Error != "" || key.Type == "rsa" && key.Bits < 2048 && !key.Revoked:
			rm.record(RecordSuggestion{Area: "dkim", Action: ActionPublish, Name: "<new selector>._domainkey." + d, Type: "TXT", Template: true,
				Value: "v=DKIM1; k=rsa; p=<2048-bit public key>",
				Why:   fmt.Sprintf("Replaces the key at %s (%s): publish a 2048-bit key under a new selector, switch the signer to it, keep the old key published a week for mail in transit, then revoke it (p= empty).", key.Name, keyProblem(key))})
		case key.Testing:
			rm.record(RecordSuggestion{Area: "dkim", Action: ActionReplace, Name: key.Name, Type: "TXT", Value: withoutTesting(key.Record), Current: key.Record,
				Why: "The same key without t=y: signing works, so the domain should stop saying it is testing."})
		}
	}
}

func keyProblem(k DKIMKey) string {
	if k.Error != "" {
		return k.Error
	}
	return fmt.Sprintf("RSA of %d bits", k.Bits)
}

// withoutTesting removes the y flag from a key record's t= tag (and the
// tag when nothing remains), keeping every other octet.
func withoutTesting(rec string) string {
	var out []string
	for part := range strings.SplitSeq(rec, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == "t" {
			var flags []string
			for f := range strings.SplitSeq(v, ":") {
				if f = strings.TrimSpace(f); f != "" && f != "y" {
					flags = append(flags, f)
				}
			}
			if len(flags) == 0 {
				continue
			}
			part = k + "=" + strings.Join(flags, ":")
		}
		out = append(out, part)
	}
	return strings.TrimSpace(strings.Join(out, ";"))
}

// --- MX ---

func (rm *Remediation) mx(r *Report) {
	m := &r.MX
	d := r.Domain
	if m.Status == StatusError {
		return
	}
	if m.Implicit {
		rm.record(RecordSuggestion{Area: "mx", Action: ActionPublish, Name: d, Type: "MX", Value: "0 .",
			Why:  "Only if the domain receives no mail: a null MX (RFC 7505) says so, and senders stop trying at once.",
			Note: "If the domain does receive mail, publish MX records naming your mail servers instead."})
	}
	for _, h := range m.Hosts {
		switch {
		case h.CNAME != "":
			rm.record(RecordSuggestion{Area: "mx", Action: ActionReplace, Name: d, Type: "MX", Value: fmt.Sprintf("%d %s.", h.Pref, h.CNAME),
				Current: fmt.Sprintf("%d %s.", h.Pref, h.Host), Why: fmt.Sprintf("%s is an alias; an MX must name the host itself (RFC 2181 §10.3).", h.Host)})
		case h.Problem != "":
			rm.advise("MX %s: %s. Publish its address or remove the MX record.", h.Host, h.Problem)
		}
	}
}
