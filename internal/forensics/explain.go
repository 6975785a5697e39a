package forensics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/message"
	"portcullis/internal/spf"
)

// Explain reads the message raw (CRLF or bare-LF line endings), verifies
// again what can be verified through opts.Resolver, and returns the
// explanation. The error is non-nil only when the header block cannot be
// read (it wraps ErrMessage) or opts lacks a Resolver; everything else,
// DNS failures included, is reported inside the Report.
func Explain(ctx context.Context, raw []byte, opts *Options) (*Report, error) {
	if opts == nil || opts.Resolver == nil {
		return nil, errors.New("forensics: Options.Resolver is required")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(raw)), opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMessage, err)
	}
	e := &explainer{
		ctx: ctx, o: opts, raw: raw, h: h, now: now().UTC(),
		rep: &Report{
			Schema: Schema, Identities: []Identity{}, Hops: []Hop{}, Recorded: []RecordedField{},
			Authentications: []Authentication{}, DKIM: []DKIMSignature{}, Alignment: []Alignment{},
			Forwarding: []Sign{}, Findings: []Finding{}, Advice: []Advice{},
			ARC: ARCChain{Sets: []ARCSet{}},
		},
	}
	e.rep.CheckedAt = e.now
	e.run()
	return e.rep, nil
}

// arField is one parsed Authentication-Results field.
type arField struct {
	n, field int
	servID   string
	ours     bool
	hdr      *authres.Header
}

type explainer struct {
	ctx context.Context
	o   *Options
	raw []byte
	h   *message.Header
	now time.Time
	rep *Report

	ars      []*arField
	ourID    string // the receiving system's authserv-id in use
	final    []authres.Result
	rspf     []Authentication // Received-SPF, top first
	received []*message.Field

	author     string
	authorErr  error
	mailFrom   string // address, "" when unknown
	mailNull   bool   // the null reverse-path
	mailDomain string
	srs        *SRS
	helo       string
	clientIP   netip.Addr

	sigs     []*dkim.SignatureResult
	sigField []int
	arcRes   *arc.Result
	spfNow   *spf.Result
	fromSPF  *spf.Result
	dmarcNow *dmarc.Result
	org      map[string]string
}

func (e *explainer) run() {
	e.message()
	e.hops()
	e.recorded()
	e.identities()
	e.verifyDKIM()
	e.verifyARC()
	e.verifySPF()
	e.evaluateDMARC()
	e.alignment()
	e.forwarding()
	e.findings()
	e.cause()
}

func (e *explainer) value(name string) string {
	if f := e.h.Get(name); f != nil {
		return f.Unfolded()
	}
	return ""
}

func (e *explainer) message() {
	m := &e.rep.Message
	m.MessageID = e.value("Message-ID")
	m.Subject = e.value("Subject")
	m.Date = e.value("Date")
	m.From = e.value("From")
	m.To = e.value("To")
	m.Fields = len(e.h.Fields)
}

// hops reads the Received fields, oldest first.
func (e *explainer) hops() {
	for i, f := range e.h.Fields {
		if f.Is("Received") {
			e.received = append(e.received, f)
			e.rep.Hops = append(e.rep.Hops, Hop{Received: ParseReceived(f.Unfolded()), Field: i})
		}
	}
	slices.Reverse(e.rep.Hops)
	for i := range e.rep.Hops {
		hp := &e.rep.Hops[i]
		hp.N = i + 1
		if i > 0 {
			prev := e.rep.Hops[i-1].Date
			if !prev.IsZero() && !hp.Date.IsZero() {
				d := int64(hp.Date.Sub(prev) / time.Second)
				hp.DelaySeconds = &d
			}
		}
	}
}

func normID(s string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")) }

// recorded reads the Authentication-Results and Received-SPF fields.
func (e *explainer) recorded() {
	ours := map[string]bool{}
	for _, id := range e.o.AuthServIDs {
		ours[normID(id)] = true
	}
	n := 0
	for i, f := range e.h.Fields {
		switch {
		case f.Is(authres.FieldName):
			n++
			rf := RecordedField{N: n, Name: authres.FieldName, Field: i}
			hdr, err := authres.Parse(f.Value())
			if err != nil {
				rf.Error = err.Error()
				if w := strings.Fields(f.Unfolded()); len(w) > 0 {
					rf.ServID = strings.TrimSuffix(w[0], ";")
				}
			} else {
				rf.ServID = hdr.ServID
			}
			e.rep.Recorded = append(e.rep.Recorded, rf)
			if hdr != nil {
				e.ars = append(e.ars, &arField{n: n, field: i, servID: hdr.ServID, hdr: hdr})
			}
		case f.Is("Received-SPF"):
			n++
			a, receiver := parseReceivedSPF(f.Unfolded())
			e.rep.Recorded = append(e.rep.Recorded, RecordedField{N: n, Name: "Received-SPF", ServID: receiver, Field: i})
			a.Record = n
			e.rspf = append(e.rspf, a)
		}
	}
	// The receiving system: its own authserv-ids, or else the topmost
	// field's (RFC 8601 §5: a border MTA removes forged fields of its own
	// ids, so only those are known genuine).
	switch {
	case len(ours) > 0:
		for _, a := range e.ars {
			if ours[normID(a.servID)] {
				e.ourID = a.servID
				break
			}
		}
	case len(e.ars) > 0:
		e.ourID = e.ars[0].servID
		ours[normID(e.ourID)] = true
	}
	for _, a := range e.ars {
		if ours[normID(a.servID)] {
			a.ours = true
			e.final = append(e.final, a.hdr.Results...)
		}
	}
	for i := range e.rep.Recorded {
		rf := &e.rep.Recorded[i]
		rf.Ours = rf.ServID != "" && ours[normID(rf.ServID)]
	}
	for _, a := range e.ars {
		for _, r := range a.hdr.Results {
			e.rep.Authentications = append(e.rep.Authentications, recordedAuth(a, r))
		}
	}
	for _, a := range e.rspf {
		a.Ours = a.RecordedBy != "" && ours[normID(a.RecordedBy)]
		e.rep.Authentications = append(e.rep.Authentications, a)
	}
}

func recordedAuth(a *arField, r authres.Result) Authentication {
	au := Authentication{Method: r.Method, Result: r.Value, Source: SourceRecorded, RecordedBy: a.servID, Record: a.n, Ours: a.ours,
		Domain: resultDomain(r), Reason: r.Reason}
	if au.Reason == "" {
		au.Reason = r.Comment
	}
	for _, p := range r.Props {
		au.Properties = append(au.Properties, p.Key()+"="+p.Value)
	}
	return au
}

// resultDomain is the domain an RFC 8601 statement is about.
func resultDomain(r authres.Result) string {
	get := func(t, n string) string { v, _ := r.Prop(t, n); return v }
	switch r.Method {
	case "spf":
		if v := get("smtp", "mailfrom"); v != "" {
			return domainOf(v)
		}
		return domainOf(get("smtp", "helo"))
	case "dkim":
		if v := get("header", "d"); v != "" {
			return strings.ToLower(v)
		}
		return domainOf(get("header", "i"))
	case "dmarc":
		return domainOf(get("header", "from"))
	}
	return ""
}

// domainOf returns the domain of an address, or s itself when it has no
// "@", lower case.
func domainOf(s string) string {
	s = strings.Trim(strings.TrimSpace(s), "<>")
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// parseReceivedSPF reads a Received-SPF field (RFC 7208 §9.1):
// result [comment] [key=value *(";" key=value)].
func parseReceivedSPF(v string) (Authentication, string) {
	a := Authentication{Method: "spf", Source: SourceRecorded}
	toks := tokenize(v)
	if len(toks) == 0 {
		return a, ""
	}
	a.Result = strings.ToLower(toks[0].text)
	var words []string
	for _, t := range toks[1:] {
		if t.comment {
			if a.Reason == "" {
				a.Reason = t.text
			}
			continue
		}
		words = append(words, t.text)
	}
	kv := map[string]string{}
	for _, pair := range strings.Split(strings.Join(words, " "), ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		kv[k] = val
		a.Properties = append(a.Properties, k+"="+val)
	}
	switch {
	case kv["identity"] == "helo":
		a.Domain = domainOf(kv["helo"])
	case kv["envelope-from"] != "":
		a.Domain = domainOf(kv["envelope-from"])
	default:
		a.Domain = domainOf(kv["helo"])
	}
	a.RecordedBy = kv["receiver"]
	return a, kv["receiver"]
}

func (a Authentication) prop(key string) string {
	for _, p := range a.Properties {
		if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// finalResult returns the first result of method the receiving system
// recorded whose domain is domain ("" for any).
func (e *explainer) finalResult(method, domain string) *authres.Result {
	for i := range e.final {
		r := &e.final[i]
		if r.Method == method && (domain == "" || resultDomain(*r) == domain) {
			return r
		}
	}
	return nil
}

// addressOf reads the address of a Return-Path or Sender value:
// "<addr>", "<>", "addr", with comments and an obsolete route dropped.
func addressOf(v string) (addr string, null bool) {
	var b strings.Builder
	for _, t := range tokenize(v) {
		if !t.comment {
			b.WriteString(t.text)
		}
	}
	s := b.String()
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
		if s == "" {
			return "", true
		}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.HasPrefix(s, "@") {
		s = s[i+1:] // RFC 5321 §4.1.2 obsolete source route
	}
	return strings.TrimSpace(s), false
}

func publicAddr(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsPrivate() && !ip.IsLinkLocalUnicast() && !ip.IsUnspecified() && !ip.IsMulticast()
}

func (e *explainer) identities() {
	ids := &e.rep.Identities
	// Header From: the DMARC Author Domain (RFC 9989 §5.3.1).
	var froms []string
	for _, f := range e.h.All("From") {
		froms = append(froms, f.Value())
	}
	author, err := dmarc.ParseAuthor(froms)
	switch {
	case err == nil:
		e.author = author.Domain
		for _, mb := range author.Mailboxes {
			*ids = append(*ids, Identity{Kind: IdentityHeaderFrom, Value: mb.LocalPart + "@" + mb.Domain, Domain: mb.ADomain, Source: "From field"})
		}
	default:
		e.authorErr = err
		*ids = append(*ids, Identity{Kind: IdentityHeaderFrom, Value: e.value("From"), Source: "From field"})
	}

	// MAIL FROM: Return-Path (RFC 5321 §4.4), written at final delivery.
	src := ""
	if f := e.h.Get("Return-Path"); f != nil {
		e.mailFrom, e.mailNull = addressOf(f.Unfolded())
		src = "Return-Path field"
	} else if r := e.finalResult("spf", ""); r != nil {
		if v, ok := r.Prop("smtp", "mailfrom"); ok {
			e.mailFrom = v
			src = "smtp.mailfrom recorded by " + e.ourID
		}
	} else if len(e.rspf) > 0 {
		if v := e.rspf[0].prop("envelope-from"); v != "" {
			e.mailFrom = v
			src = "envelope-from of Received-SPF"
		} else if e.rspf[0].prop("identity") == "helo" {
			e.mailNull = true
			src = "Received-SPF (HELO identity)"
		}
	}
	switch {
	case e.mailNull:
		*ids = append(*ids, Identity{Kind: IdentityMailFrom, Value: "<>", Source: src + " (null reverse-path: SPF checks the HELO name)"})
	case e.mailFrom != "":
		e.mailDomain = domainOf(e.mailFrom)
		id := Identity{Kind: IdentityMailFrom, Value: e.mailFrom, Domain: e.mailDomain, Source: src}
		if s, ok := ParseSRS(e.mailFrom); ok {
			e.srs = &s
			id.SRS = &s
		}
		*ids = append(*ids, id)
	}

	// The SMTP client of the receiving system: Received-SPF client-ip,
	// else the newest hop with a public address.
	c := &e.rep.Client
	for _, a := range e.rspf {
		if ip, err := netip.ParseAddr(a.prop("client-ip")); err == nil {
			c.IP, c.Source = ip.Unmap(), "Received-SPF"
			c.HELO = a.prop("helo")
			break
		}
	}
	for i := len(e.rep.Hops) - 1; i >= 0; i-- {
		hp := e.rep.Hops[i]
		if publicAddr(hp.FromIP) && (!c.IP.IsValid() || c.IP == hp.FromIP) {
			if !c.IP.IsValid() {
				c.IP, c.Source = hp.FromIP, fmt.Sprintf("Received hop %d", hp.N)
			}
			if c.HELO == "" && !strings.HasPrefix(hp.From, "[") {
				c.HELO = hp.From
			}
			break
		}
	}
	if c.HELO == "" {
		if r := e.finalResult("spf", ""); r != nil {
			c.HELO, _ = r.Prop("smtp", "helo")
		}
	}
	e.clientIP, e.helo = c.IP, c.HELO
	if e.helo != "" {
		*ids = append(*ids, Identity{Kind: IdentityHELO, Value: e.helo, Domain: strings.ToLower(e.helo), Source: "HELO of the client, " + c.Source})
	}

	// DKIM d= values, top first.
	n := 0
	for i, f := range e.h.Fields {
		if !f.Is("DKIM-Signature") {
			continue
		}
		n++
		e.sigField = append(e.sigField, i)
		sig, _ := dkim.ParseSignature(f)
		if sig != nil && sig.Domain != "" {
			*ids = append(*ids, Identity{Kind: IdentityDKIM, Value: sig.Domain, Domain: sig.Domain, Source: fmt.Sprintf("DKIM-Signature %d (s=%s)", n, sig.Selector)})
		}
	}
	if v := e.value("Sender"); v != "" {
		addr, _ := addressOf(v)
		*ids = append(*ids, Identity{Kind: IdentitySender, Value: addr, Domain: domainOf(addr), Source: "Sender field"})
	}
}

// orgPSL is the Organizational Domain of host by the Public Suffix List,
// without DNS: used only to group trace host names by organization.
func orgPSL(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if o, err := dmarc.OrganizationalDomainPSL(dmarc.EmbeddedPSL(), host, true); err == nil {
		return o
	}
	return host
}

// receiverHost is the name the receiving system goes by.
func (e *explainer) receiverHost() string {
	if e.ourID != "" {
		return e.ourID
	}
	if n := len(e.rep.Hops); n > 0 {
		return e.rep.Hops[n-1].By
	}
	return ""
}

// relaysAbove returns the Received "by" hosts of the fields above header
// position pos (added later), oldest first, outside the organizations of
// exclude.
func (e *explainer) relaysAbove(pos int, exclude ...string) []string {
	skip := map[string]bool{}
	for _, x := range exclude {
		if x != "" {
			skip[orgPSL(x)] = true
		}
	}
	out := []string{}
	for _, hp := range e.rep.Hops {
		if hp.Field >= pos || hp.By == "" || skip[orgPSL(hp.By)] || slices.Contains(out, hp.By) {
			continue
		}
		out = append(out, hp.By)
	}
	return out
}

func (e *explainer) verifyDKIM() {
	v := &dkim.Verifier{Resolver: e.o.Resolver, Now: func() time.Time { return e.now }}
	res, err := v.Verify(e.ctx, bytes.NewReader(e.raw))
	if err != nil {
		e.addFinding("dkim-unreadable", SeverityWarning, "The DKIM signatures could not be verified: %v", err)
		return
	}
	e.sigs = res
	for i, r := range res {
		s := DKIMSignature{N: i + 1, Domain: r.Domain, Selector: r.Selector, Algorithm: r.Algorithm, Canonicalization: r.Canonicalization,
			HeaderB: r.HeaderB, Timestamp: r.Timestamp, Result: string(r.Result), Reason: r.Reason, BodyDiagnosis: r.BodyDiagnosis,
			KeyType: r.KeyType, KeyBits: r.KeyBits, Testing: r.Testing, RelaysAfter: []string{}}
		if i < len(e.sigField) {
			s.Field = e.sigField[i]
			s.RelaysAfter = e.relaysAbove(s.Field, r.Domain, e.receiverHost())
		}
		e.rep.DKIM = append(e.rep.DKIM, s)
		au := Authentication{Method: "dkim", Result: string(r.Result), Source: SourceNow, Domain: r.Domain, Reason: r.Reason,
			Properties: []string{"header.d=" + r.Domain, "header.s=" + r.Selector}}
		if r.HeaderB != "" {
			au.Properties = append(au.Properties, "header.b="+r.HeaderB)
		}
		e.rep.Authentications = append(e.rep.Authentications, au)
	}
}

func (e *explainer) verifyARC() {
	v := &arc.Verifier{Resolver: e.o.Resolver, Clock: func() time.Time { return e.now }}
	res, err := v.VerifyMessage(e.ctx, bytes.NewReader(e.raw))
	c := &e.rep.ARC
	if err != nil {
		c.Result, c.Reason = "temperror", err.Error()
		return
	}
	e.arcRes = res
	c.Result, c.Reason, c.Instances, c.OldestPass = string(res.Status), res.Reason, res.Instances, res.OldestPass
	trusted := map[string]bool{}
	for _, s := range e.o.TrustedSealers {
		trusted[normID(s)] = true
	}
	for _, sr := range res.Sets {
		set := ARCSet{Instance: sr.Instance, Sealer: sr.SealDomain, Selector: sr.SealSelector, CV: string(sr.CV),
			Seal: string(sr.Seal), Signature: string(sr.Signature), Results: []string{}, Trusted: trusted[normID(sr.SealDomain)]}
		if ar := sr.AuthResults; ar != nil {
			set.AuthServID = ar.ServID
			for _, r := range ar.Results {
				set.Results = append(set.Results, statement(r))
			}
			if d := ar.ResultsFor("dmarc"); len(d) > 0 {
				set.DMARC = d[0].Value
				if from, ok := d[0].Prop("header", "from"); ok && e.author != "" && !strings.EqualFold(from, e.author) {
					set.DMARC += " (for " + strings.ToLower(from) + ")"
				}
			}
		}
		c.Sets = append(c.Sets, set)
	}
	if res.Status == arc.Pass && len(c.Sets) > 0 {
		first, latest := c.Sets[0], c.Sets[len(c.Sets)-1]
		c.Vouched = first.DMARC == "pass" && latest.Trusted
	}
	if res.Status != arc.None {
		au := Authentication{Method: "arc", Result: string(res.Status), Source: SourceNow, Reason: res.Reason}
		if res.Status == arc.Pass {
			au.Properties = []string{fmt.Sprintf("header.oldest-pass=%d", res.OldestPass)}
		}
		e.rep.Authentications = append(e.rep.Authentications, au)
	}
}

// statement writes an RFC 8601 statement on one line, without comments.
func statement(r authres.Result) string {
	var b strings.Builder
	b.WriteString(r.Method + "=" + r.Value)
	for _, p := range r.Props {
		b.WriteString(" " + p.Key() + "=" + p.Value)
	}
	return b.String()
}

func (e *explainer) verifySPF() {
	if !e.clientIP.IsValid() || (e.mailFrom == "" && !e.mailNull) || (e.mailNull && e.helo == "") {
		return
	}
	req := spf.Request{IP: e.clientIP, HELO: e.helo, Now: func() time.Time { return e.now }}
	if !e.mailNull {
		req.MailFrom = e.mailFrom
	}
	res := spf.Check(e.ctx, e.o.Resolver, req, &spf.Options{DisableTrace: true})
	e.spfNow = &res
	au := Authentication{Method: "spf", Result: string(res.Result), Source: SourceNow, Domain: res.Domain,
		Reason: fmt.Sprintf("client %s (%s)", e.clientIP, e.rep.Client.Source)}
	if res.Identity == spf.IdentityHELO {
		au.Properties = []string{"smtp.helo=" + res.Domain}
	} else {
		au.Properties = []string{"smtp.mailfrom=" + res.Domain}
	}
	switch {
	case res.Mechanism != "":
		au.Reason += ", matched " + res.Mechanism
	case res.Reason != "":
		au.Reason += ": " + res.Reason
	}
	e.rep.Authentications = append(e.rep.Authentications, au)
	// Would the From domain's own SPF record have authorized the client?
	// Tells a third party the domain owner lists from an outsider.
	if e.author != "" && res.Domain != e.author {
		fr := spf.CheckHost(e.ctx, e.o.Resolver, req, e.author, "postmaster@"+e.author, &spf.Options{DisableTrace: true})
		e.fromSPF = &fr
	}
}

func (e *explainer) evaluateDMARC() {
	d := &e.rep.DMARC
	d.AuthorDomain = e.author
	if e.author == "" {
		d.Result = "none"
		if e.authorErr != nil {
			d.Reason = "no single Author Domain: " + e.authorErr.Error()
		}
		return
	}
	in := dmarc.Input{FromDomain: e.author}
	if e.spfNow != nil {
		in.SPF = dmarc.SPFResult{Result: dmarc.AuthStatus(e.spfNow.Result), Domain: e.spfNow.Domain}
	}
	for _, s := range e.sigs {
		in.DKIM = append(in.DKIM, dmarc.DKIMResult{Result: dmarc.AuthStatus(s.Result), Domain: s.Domain, Selector: s.Selector})
	}
	res := dmarc.Evaluate(e.ctx, e.o.Resolver, in, nil)
	e.dmarcNow = &res
	d.PolicyDomain, d.OrgDomain, d.Record = res.PolicyDomain, res.OrgDomain, res.Record
	d.Policy, d.PublishedPolicy, d.Source, d.Testing = string(res.Policy), string(res.PublishedPolicy), string(res.PolicySource), res.Testing
	d.Result, d.Reason = string(res.Result), res.Reason
	if p := res.Parsed; p != nil {
		d.ADKIM, d.ASPF = modeName(p.ADKIM), modeName(p.ASPF)
	}
	au := Authentication{Method: "dmarc", Result: d.Result, Source: SourceNow, Domain: e.author, Reason: res.Reason,
		Properties: []string{"header.from=" + e.author}}
	if d.PublishedPolicy != "" {
		au.Properties = append(au.Properties, "policy.dmarc="+d.PublishedPolicy)
	}
	e.rep.Authentications = append(e.rep.Authentications, au)
}

func modeName(a dmarc.Alignment) string {
	if a == dmarc.AlignStrict {
		return "strict"
	}
	return "relaxed"
}

// orgDNS is the Organizational Domain by the DNS Tree Walk (RFC 9989
// §4.10.2), remembered per domain.
func (e *explainer) orgDNS(d string) (string, error) {
	if o, ok := e.org[d]; ok {
		return o, nil
	}
	o, err := dmarc.OrganizationalDomain(e.ctx, e.o.Resolver, d)
	if err != nil {
		return "", err
	}
	if e.org == nil {
		e.org = map[string]string{}
	}
	e.org[d] = o
	return o, nil
}

func (e *explainer) aligned(mode dmarc.Alignment, d string) (bool, error) {
	return dmarc.Aligned(mode, e.author, d, e.orgDNS)
}

func (e *explainer) alignment() {
	if e.author == "" {
		return
	}
	dk, sp := dmarc.AlignRelaxed, dmarc.AlignRelaxed
	if e.dmarcNow != nil && e.dmarcNow.Parsed != nil {
		dk, sp = e.dmarcNow.Parsed.ADKIM, e.dmarcNow.Parsed.ASPF
	}
	seen := map[string]bool{}
	for _, s := range e.rep.DKIM {
		if s.Domain == "" || seen[s.Domain] {
			continue
		}
		seen[s.Domain] = true
		al := Alignment{Identifier: "dkim", Domain: s.Domain, Mode: modeName(dk), Now: e.bestDKIMNow(s.Domain)}
		al.Aligned, _ = e.aligned(dk, s.Domain)
		if r := e.bestDKIMRecorded(s.Domain); r != "" {
			al.Recorded = r
		}
		e.rep.Alignment = append(e.rep.Alignment, al)
	}
	spfDomain := e.mailDomain
	if e.mailNull {
		spfDomain = strings.ToLower(e.helo)
	}
	if spfDomain != "" {
		al := Alignment{Identifier: "spf", Domain: spfDomain, Mode: modeName(sp)}
		al.Aligned, _ = e.aligned(sp, spfDomain)
		if e.spfNow != nil {
			al.Now = string(e.spfNow.Result)
		}
		if r := e.finalResult("spf", spfDomain); r != nil {
			al.Recorded = r.Value
		}
		e.rep.Alignment = append(e.rep.Alignment, al)
	}
}

func (e *explainer) bestDKIMNow(d string) string {
	best := ""
	for _, s := range e.rep.DKIM {
		if s.Domain == d && (best == "" || s.Result == "pass") {
			best = s.Result
		}
	}
	return best
}

func (e *explainer) bestDKIMRecorded(d string) string {
	best := ""
	for _, r := range e.final {
		if r.Method == "dkim" && resultDomain(r) == d && (best == "" || r.Value == "pass") {
			best = r.Value
		}
	}
	return best
}

// listFields are the header fields mailing-list software adds (RFC 2369,
// RFC 2919 List-Id; Mailing-List of ezmlm; X-BeenThere of Mailman 2;
// X-Mailing-List).
var listFields = []string{"List-Id", "List-Unsubscribe", "List-Post", "List-Help", "List-Subscribe", "List-Owner", "List-Archive",
	"Mailing-List", "X-Mailing-List", "X-BeenThere"}

func (e *explainer) listHeaders() []string {
	var out []string
	for _, n := range listFields {
		if e.h.Get(n) != nil {
			out = append(out, n)
		}
	}
	if strings.EqualFold(e.value("Precedence"), "list") {
		out = append(out, "Precedence: list")
	}
	return out
}

func (e *explainer) sign(code, format string, args ...any) {
	e.rep.Forwarding = append(e.rep.Forwarding, Sign{Code: code, Text: fmt.Sprintf(format, args...)})
}

func (e *explainer) forwarding() {
	if e.srs != nil {
		orig := "the original sender"
		if e.srs.OriginalDomain != "" {
			orig = e.srs.OriginalLocal + "@" + e.srs.OriginalDomain
		}
		e.sign("srs", "The MAIL FROM %s is an SRS address: %s forwarded the message and rewrote the envelope sender of %s, so SPF checked %s.",
			e.mailFrom, e.srs.Forwarder, orig, e.srs.Forwarder)
	}
	if l := e.listHeaders(); len(l) > 0 {
		id := e.value("List-Id")
		if id != "" {
			e.sign("mailing-list", "The message came through a mailing list (List-Id %s; fields %s).", id, strings.Join(l, ", "))
		} else {
			e.sign("mailing-list", "The message came through a mailing list (fields %s).", strings.Join(l, ", "))
		}
	}
	if e.h.Get("Resent-From") != nil || e.h.Get("Resent-Sender") != nil {
		e.sign("resent", "Resent-From/Resent-Sender fields: the message was re-sent by %s (RFC 5322 §3.6.6).", e.firstValue("Resent-Sender", "Resent-From"))
	}
	if e.h.Get("X-Forwarded-To") != nil || e.h.Get("X-Forwarded-For") != nil {
		e.sign("forwarded-fields", "X-Forwarded-To/X-Forwarded-For fields: a mailbox forwarded the message automatically.")
	}
	for _, s := range e.rep.DKIM {
		if len(s.RelaysAfter) > 0 {
			e.sign("relayed-after-signature", "After DKIM d=%s signed it, the message passed through %s before reaching %s.",
				s.Domain, strings.Join(s.RelaysAfter, ", "), orDash(e.receiverHost()))
		}
	}
	for _, a := range e.ars {
		if !a.ours && e.ourID != "" {
			e.sign("upstream-authentication", "%s authenticated the message (Authentication-Results %d) before it reached %s: it went through another system first.",
				a.servID, a.n, e.ourID)
			break
		}
	}
	if len(e.rep.ARC.Sets) > 0 {
		var who []string
		for _, s := range e.rep.ARC.Sets {
			who = append(who, fmt.Sprintf("%s (i=%d)", s.Sealer, s.Instance))
		}
		e.sign("arc-sealed", "ARC sets were added by %s: intermediaries that handled the message recorded what they saw (RFC 8617).", strings.Join(who, ", "))
	}
}

func (e *explainer) firstValue(names ...string) string {
	for _, n := range names {
		if v := e.value(n); v != "" {
			return v
		}
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "the receiver"
	}
	return s
}

// recordedPolicy reads the policy a recorded dmarc statement names:
// policy.dmarc=, or "p=" in its comment (the form Gmail and others write).
var commentPolicy = regexp.MustCompile(`(?i)\bp=(none|quarantine|reject)\b`)

func recordedPolicy(r *authres.Result) string {
	if v, ok := r.Prop("policy", "dmarc"); ok {
		return strings.ToLower(v)
	}
	if m := commentPolicy.FindStringSubmatch(r.Comment + " " + r.Reason); m != nil {
		return strings.ToLower(m[1])
	}
	return ""
}
