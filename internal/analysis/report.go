package analysis

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/spf"
)

// maxReasonLen bounds the reason texts written into Authentication-Results.
const maxReasonLen = 200

// AuthResults returns this host's Authentication-Results for the message
// (RFC 8601 §2.2), statements in the order spf (MAIL FROM, then HELO),
// dkim (one per signature), arc, dmarc, iprev. iprev is left out when
// there is no client address (RFC 8601 §2.7.3 registers no result for
// that).
// Every value taken from the message or the peer is cleaned of control
// characters, so that the header always formats.
func (v *Verdict) AuthResults() *authres.Header {
	h := &authres.Header{ServID: v.AuthServID}
	h.Results = append(h.Results, v.spfStatement(v.SPF))
	if v.SPFHELO != nil {
		h.Results = append(h.Results, v.spfStatement(*v.SPFHELO))
	}
	h.Results = append(h.Results, v.dkimStatements()...)
	if v.HeaderErr == nil && v.ARC != nil {
		r := v.ARC.AuthResult()
		r.Reason = clean(r.Reason)
		if v.ClientIP.IsValid() {
			// RFC 8617 §6: smtp.remote-ip, the address of the client.
			r.Props = append([]authres.Prop{{Type: "smtp", Name: "remote-ip", Value: v.ClientIP.String()}}, r.Props...)
		}
		h.Results = append(h.Results, r)
	}
	h.Results = append(h.Results, v.dmarcStatement())
	if v.IPRev.Result != IPRevNone && v.IPRev.Result != "" {
		// RFC 8601 §2.7.3, §3: policy.iprev is the address checked; the
		// name, when one was found, goes in a comment.
		r := authres.Result{Method: "iprev", Value: string(v.IPRev.Result),
			Props: []authres.Prop{{Type: "policy", Name: "iprev", Value: v.ClientIP.String()}}}
		if v.IPRev.PTR != "" {
			r.Props[0].Comment = clean(v.IPRev.PTR)
		}
		if v.IPRev.Result != IPRevPass {
			r.Reason = clean(v.IPRev.Reason)
		}
		h.Results = append(h.Results, r)
	}
	return h
}

// AuthResultsValue returns the formatted Authentication-Results value
// (without the field name), folded as it is written into the message.
func (v *Verdict) AuthResultsValue() (string, error) {
	h := v.AuthResults()
	if err := h.Validate(); err != nil {
		return "", err
	}
	return h.FormatAt(len(authres.FieldName) + 2)
}

// spfStatement is the "spf" statement of RFC 8601 §2.7.2, with
// smtp.mailfrom or smtp.helo naming the identity checked.
func (v *Verdict) spfStatement(r spf.Result) authres.Result {
	res := authres.Result{Method: "spf", Value: string(r.Result)}
	if res.Value == "" {
		res.Value = string(spf.None)
	}
	switch r.Result {
	case spf.Pass, spf.Fail, spf.SoftFail, spf.Neutral:
		if v.ClientIP.IsValid() && r.Domain != "" {
			verb := "designates"
			if r.Result != spf.Pass {
				verb = "does not designate"
			}
			res.Comment = clean(fmt.Sprintf("%s %s %s as permitted sender", r.Domain, verb, v.ClientIP))
		}
	default:
		res.Reason = clean(r.Reason)
	}
	if r.Identity == spf.IdentityHELO {
		if v.HELO != "" {
			res.Props = append(res.Props, authres.Prop{Type: "smtp", Name: "helo", Value: clean(v.HELO)})
		}
	} else if v.MailFrom != "" {
		res.Props = append(res.Props, authres.Prop{Type: "smtp", Name: "mailfrom", Value: clean(v.MailFrom)})
	}
	return res
}

// dkimStatements are the "dkim" statements of RFC 8601 §2.7.1, one per
// signature, with header.d, header.i (when the signature has i=),
// header.s, header.a and header.b (RFC 6008).
func (v *Verdict) dkimStatements() []authres.Result {
	if v.HeaderErr != nil {
		return []authres.Result{{Method: "dkim", Value: string(dkim.PermError), Reason: "message header could not be parsed"}}
	}
	if len(v.DKIM) == 0 {
		return []authres.Result{{Method: "dkim", Value: string(dkim.None)}}
	}
	out := make([]authres.Result, 0, len(v.DKIM))
	for _, d := range v.DKIM {
		r := authres.Result{Method: "dkim", Value: string(d.Result)}
		if d.KeyBits > 0 {
			r.Comment = fmt.Sprintf("%d-bit %s key", d.KeyBits, d.KeyType)
		}
		if d.Result != dkim.Pass {
			// The reason of a body hash failure includes the diagnosis
			// (package dkim words it).
			r.Reason = clean(d.Reason)
		}
		add := func(name, value string) {
			if value = clean(value); value != "" {
				r.Props = append(r.Props, authres.Prop{Type: "header", Name: name, Value: value})
			}
		}
		add("d", d.Domain)
		if d.Signature != nil && d.Signature.IdentitySet {
			add("i", d.Identity)
		}
		add("s", d.Selector)
		add("a", d.Algorithm)
		add("b", d.HeaderB)
		out = append(out, r)
	}
	return out
}

// dmarcStatement is the "dmarc" statement (RFC 9989 §9.2, RFC 7489 §11.2):
// header.from is the Author Domain; policy.dmarc (IANA Email
// Authentication Methods registry) is the policy evaluated for a failing
// message, after t=y or pct= lowered it. A comment gives the published
// policy.
func (v *Verdict) dmarcStatement() authres.Result {
	d := v.DMARC
	r := authres.Result{Method: "dmarc", Value: string(d.Result)}
	if r.Value == "" {
		r.Value = string(dmarc.None)
	}
	var comment []string
	if d.PublishedPolicy != "" {
		comment = append(comment, string(d.PolicySource)+"="+string(d.PublishedPolicy))
	}
	if d.Testing {
		comment = append(comment, "t=y")
	}
	if d.SampledOut {
		comment = append(comment, "sampled out by pct")
	}
	r.Comment = strings.Join(comment, " ")
	switch d.Result {
	case dmarc.None, dmarc.TempError, dmarc.PermError:
		r.Reason = clean(d.Reason)
	}
	if d.FromDomain != "" {
		r.Props = append(r.Props, authres.Prop{Type: "header", Name: "from", Value: clean(d.FromDomain)})
	}
	if d.Result == dmarc.Fail && d.Policy != "" {
		r.Props = append(r.Props, authres.Prop{Type: "policy", Name: "dmarc", Value: string(d.Policy)})
	}
	return r
}

// clean makes s safe to write in a header value: control characters
// become spaces, runs of white space collapse, invalid UTF-8 is replaced,
// and the text is cut at maxReasonLen octets.
func clean(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToValidUTF8(s, "?")
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() >= maxReasonLen {
			break
		}
	}
	out := b.String()
	for len(out) > maxReasonLen || !utf8.ValidString(out) {
		out = out[:len(out)-1]
	}
	return out
}

// Evidence returns the auth part of the evidence record.
func (v *Verdict) Evidence() evidence.Auth {
	a := evidence.Auth{
		SPF:   spfEvidence(v.SPF),
		DKIM:  []evidence.DKIM{},
		ARC:   arcEvidence(v.ARC),
		DMARC: dmarcEvidence(v.DMARC),
		IPRev: evidence.IPRev{Result: string(v.IPRev.Result), PTR: v.IPRev.PTR},
	}
	if v.SPFHELO != nil {
		s := spfEvidence(*v.SPFHELO)
		a.SPFHELO = &s
	}
	for _, d := range v.DKIM {
		a.DKIM = append(a.DKIM, evidence.DKIM{
			Result: string(d.Result), Domain: d.Domain, Selector: d.Selector, Algorithm: d.Algorithm,
			KeyBits: d.KeyBits, Reason: d.Reason, HeaderB: d.HeaderB, Testing: d.Testing,
			BodyDiagnosis: d.BodyDiagnosis,
		})
	}
	return a
}

// FillRecord fills the parts of rec the analysis knows: client, envelope,
// header facts, auth and the Authentication-Results value. The caller sets
// the id, time, listener, configuration version and decision.
func (v *Verdict) FillRecord(rec *evidence.Record) error {
	rec.Client = evidence.Client{HELO: v.HELO, PTR: v.IPRev.PTR, TLS: v.TLS}
	if v.ClientIP.IsValid() {
		rec.Client.IP = v.ClientIP.String()
	}
	rec.Envelope = evidence.Envelope{MailFrom: v.MailFrom, RcptTo: append([]string{}, v.RcptTo...)}
	rec.HeaderFrom = strings.Join(v.Author.Values, ", ")
	rec.MessageID = v.MessageID
	rec.Subject = v.Subject
	rec.Auth = v.Evidence()
	ar, err := v.AuthResultsValue()
	if err != nil {
		return fmt.Errorf("analysis: Authentication-Results: %w", err)
	}
	rec.AuthenticationResults = ar
	return nil
}

func spfEvidence(r spf.Result) evidence.SPF {
	return evidence.SPF{
		Result: string(r.Result), Domain: r.Domain, Identity: string(r.Identity),
		Lookups: r.Lookups, VoidLookups: r.VoidLookups, Explanation: r.Explanation, Reason: r.Reason,
	}
}

func arcEvidence(r *arc.Result) evidence.ARC {
	e := evidence.ARC{Result: string(arc.None), Chain: []evidence.ARCHop{}}
	if r == nil {
		return e
	}
	e.Result, e.Reason = string(r.Status), r.Reason
	if r.Temporary {
		e.Reason = "temporary: " + e.Reason
	}
	for i, s := range r.Sets {
		hop := evidence.ARCHop{Instance: s.Instance, Sealer: s.SealDomain, Result: string(s.Seal)}
		if hop.Instance == 0 {
			hop.Instance = i + 1
		}
		if hop.Result == "" {
			hop.Result = "not validated"
		}
		if r.Chain != nil && i < len(r.Chain.Sets) && r.Chain.Sets[i].AAR != nil && r.Chain.Sets[i].AAR.Field != nil {
			hop.AAR = strings.Join(strings.Fields(r.Chain.Sets[i].AAR.Field.Unfolded()), " ")
		}
		e.Chain = append(e.Chain, hop)
	}
	return e
}

func dmarcEvidence(d dmarc.Result) evidence.DMARC {
	e := evidence.DMARC{
		Result: string(d.Result), FromDomain: d.FromDomain, OrgDomain: d.OrgDomain,
		Policy: string(d.PublishedPolicy), PolicySource: string(d.PolicySource),
		AppliedPolicy: string(d.Policy), PolicyDomain: d.PolicyDomain,
		Testing: d.Testing, SampledOut: d.SampledOut,
		SPFAligned: d.SPFAligned, DKIMAligned: d.DKIMAligned, Record: d.Record, Reason: d.Reason,
	}
	if e.AppliedPolicy == e.Policy {
		e.AppliedPolicy = ""
	}
	return e
}
