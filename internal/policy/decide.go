package policy

import (
	"fmt"
	"strconv"
	"strings"

	"portcullis/internal/analysis"
	"portcullis/internal/arc"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/spf"
)

// Rule ids. Every Decision names one; docs/policy.md describes each.
const (
	RuleStructureMalformedHeader = "structure-malformed-header"
	RuleStructureNoFrom          = "structure-no-from"
	RuleStructureSeveralFrom     = "structure-several-from"
	RuleStructureSeveralDomains  = "structure-several-domains"
	RuleStructureNoAuthorDomain  = "structure-no-author-domain"
	RuleDMARCTempError           = "dmarc-temperror"
	RuleAuthTempError            = "auth-temperror"
	RuleOwnDomain                = "own-domain"
	RuleDMARCPass                = "dmarc-pass"
	RuleDMARCReject              = "dmarc-reject"
	RuleDMARCQuarantine          = "dmarc-quarantine"
	RuleDMARCNone                = "dmarc-none"
	RuleDMARCPermError           = "dmarc-permerror"
	RuleNoDMARC                  = "no-dmarc"
	RuleSPFFail                  = "spf-fail-no-dmarc"
	RuleARCSealer                = "arc-trusted-sealer"
	RuleException                = "exception"
)

// Reply is an SMTP reply: the code of RFC 5321 §4.2, the enhanced status
// code of RFC 3463 and the text.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

// String returns the reply as it is sent: "550 5.7.26 text".
func (r Reply) String() string {
	return strconv.Itoa(r.Code) + " " + r.Enhanced + " " + r.Text
}

// Decision is what policy decided about one message.
type Decision struct {
	// Action is deliver, quarantine, reject or defer.
	Action evidence.Action
	// Rule is the id of the rule that decided.
	Rule string
	// Reason says in words why.
	Reason string
	// Owner is the team accountable for the rule (or exception).
	Owner string
	// Reply is the SMTP reply for Action. For deliver and quarantine it is
	// the 250 sent once the message is safely handed on or stored.
	Reply Reply
	// Tag is set when the message is delivered although DMARC did not
	// pass ("delivered-fail"): it names why, e.g. "dmarc=fail but
	// p=none".
	Tag string
	// Exception is the id of the exception that decided, if any.
	Exception string
	// Sealer is the trusted ARC sealer that decided, if any.
	Sealer string
	// Overrides is the rule whose action an exception or a trusted ARC
	// sealer replaced.
	Overrides string
}

// Evidence returns the decision part of the evidence record.
func (d Decision) Evidence() evidence.Decision {
	e := evidence.Decision{Action: d.Action, Rule: d.Rule, Reason: d.Reason, Owner: d.Owner,
		SMTPReply: d.Reply.String(), Tag: d.Tag, Overrides: d.Overrides}
	if d.Exception != "" {
		id := d.Exception
		e.Exception = &id
	}
	return e
}

// Decide applies p to the verdict v of a message received with env. A nil
// p means Default(). Decide is pure: the same arguments give the same
// Decision.
func Decide(p *Policy, v *analysis.Verdict, env Envelope) Decision {
	if p == nil {
		p = &Policy{}
	}
	q := p.withDefaults()
	author := v.Author.Domain

	// Rule 1: structure (RFC 5322 §3.6; RFC 9989 §5.3.1).
	if v.Author.Fault != analysis.FaultNone {
		id := map[analysis.Fault]string{
			analysis.FaultMalformedHeader: RuleStructureMalformedHeader,
			analysis.FaultNoFrom:          RuleStructureNoFrom,
			analysis.FaultSeveralFrom:     RuleStructureSeveralFrom,
			analysis.FaultSeveralDomains:  RuleStructureSeveralDomains,
		}[v.Author.Fault]
		if id == "" {
			id = RuleStructureNoAuthorDomain
		}
		d := Decision{Action: q.Structure.Action, Rule: id, Owner: q.Structure.Owner,
			Reason: "message structure: " + v.Author.Fault.Describe() + ", so DMARC cannot identify its author (RFC 9989 §5.3.1)"}
		d.Reply = reply(d.Action, "5.7.1", "Message refused: "+v.Author.Fault.Describe(), "4.7.1")
		if d.Action == evidence.Deliver {
			d.Tag = "dmarc not evaluated: " + v.Author.Fault.Describe()
		}
		return d
	}

	// Rule 2: DMARC temperror (RFC 9989 §5.3.6: never none or fail).
	if v.DMARC.Result == dmarc.TempError {
		d := Decision{Action: q.DMARCTempError.Action, Rule: RuleDMARCTempError, Owner: q.DMARCTempError.Owner,
			Reason: fmt.Sprintf("DMARC for %s could not be evaluated for now (a DNS query failed temporarily); the sender retries", author)}
		d.Reply = reply(d.Action, "5.7.1", "DMARC evaluation failed for "+author,
			"4.7.1", "Temporary failure evaluating the DMARC policy of "+author+", try again later")
		if d.Action == evidence.Deliver {
			d.Tag = "dmarc=temperror"
		}
		return d
	}

	d := q.base(v)
	if d.Action == evidence.Reject || d.Action == evidence.Quarantine {
		// Rule 5: a trusted ARC sealer.
		if r, ok := q.arcRescue(v, d); ok {
			return r
		}
		// Rule 6: an exception.
		if r, ok := q.exception(v, env, d); ok {
			d = r
		}
	}
	if d.Action == evidence.Reject || d.Action == evidence.Quarantine {
		if r, ok := q.tempError(v, d); ok {
			return r
		}
	}
	return d
}

// base applies rules 3 and 4, and the SPF rule when there is no DMARC
// policy.
func (q *Policy) base(v *analysis.Verdict) Decision {
	author := v.Author.Domain
	dm := v.DMARC

	// Rule 3: own-domain protection, whatever the published policy.
	if dm.Result != dmarc.Pass && q.protected(author) {
		d := Decision{Action: q.OwnDomain.Action, Rule: RuleOwnDomain, Owner: q.OwnDomain.Owner,
			Reason: fmt.Sprintf("the From domain %s is protected here and its DMARC result is %s, not pass: %s", author, dm.Result, dm.Reason)}
		code, text := "5.7.1", "Message claims to be from "+author+" but did not authenticate"
		if dm.Result == dmarc.Fail {
			code = "5.7.26" // RFC 7372 §3.2: multiple authentication checks failed
		}
		d.Reply = reply(d.Action, code, text, "4.7.1")
		if d.Action == evidence.Deliver {
			d.Tag = fmt.Sprintf("dmarc=%s for protected domain %s", dm.Result, author)
		}
		return d
	}

	switch dm.Result {
	case dmarc.Pass:
		return Decision{Action: evidence.Deliver, Rule: RuleDMARCPass, Owner: q.Owner,
			Reason: "DMARC pass: " + dm.Reason, Reply: accepted}
	case dmarc.Fail:
		return q.dmarcFail(v)
	}

	// DMARC none, or permerror treated as none (rule 2): the SPF rule.
	noPolicy := fmt.Sprintf("%s publishes no DMARC policy", author)
	rule, owner, tag := RuleNoDMARC, q.Owner, "dmarc=none"
	if dm.Result == dmarc.PermError {
		noPolicy = fmt.Sprintf("the DMARC policy of %s is unusable (permerror: %s), treated as no policy", author, dm.Reason)
		rule, owner, tag = RuleDMARCPermError, q.DMARCPermError.Owner, "dmarc=permerror treated as no policy"
	}
	if v.SPF.Result == spf.Fail {
		d := Decision{Rule: RuleSPFFail, Owner: q.SPFWithoutDMARC.Owner,
			Reason: fmt.Sprintf("%s; SPF fails for %s (%s)", noPolicy, v.SPF.Domain, v.SPF.Identity)}
		switch q.SPFWithoutDMARC.OnFail {
		case SPFReject:
			d.Action = evidence.Reject
		case SPFQuarantine:
			d.Action = evidence.Quarantine
		default:
			d.Action = evidence.Deliver
			if q.SPFWithoutDMARC.OnFail == SPFTag {
				d.Tag = tag + ", spf=fail"
			}
		}
		d.Reply = reply(d.Action, "5.7.23", "SPF validation failed", "4.7.1") // RFC 7372 §3.2
		return d
	}
	d := Decision{Action: evidence.Deliver, Rule: rule, Owner: owner, Reason: noPolicy, Tag: tag, Reply: accepted}
	if rule == RuleDMARCPermError && q.DMARCPermError.Action != evidence.Deliver {
		d.Action = q.DMARCPermError.Action
		d.Tag = ""
		d.Reply = reply(d.Action, "5.7.1", "Unusable DMARC policy for "+author, "4.7.1")
	}
	if v.SPF.Result == spf.TempError && (q.SPFWithoutDMARC.OnFail == SPFReject || q.SPFWithoutDMARC.OnFail == SPFQuarantine) {
		// The SPF rule would act on a fail, and SPF could not tell: the
		// auth-temperror rule decides (see tempError).
		d.Rule, d.Action = RuleSPFFail, evidence.Action(q.SPFWithoutDMARC.OnFail)
		d.Owner = q.SPFWithoutDMARC.Owner
		d.Reason = fmt.Sprintf("%s; SPF for %s could not be evaluated for now", noPolicy, v.SPF.Domain)
		d.Tag = ""
		d.Reply = reply(d.Action, "5.7.23", "SPF validation failed", "4.7.1")
		if q.AuthTempError.Action == TempErrorIgnore {
			// Decide as if the temperror were not a fail: deliver.
			d = Decision{Action: evidence.Deliver, Rule: rule, Owner: owner, Reason: noPolicy + "; spf=temperror ignored", Tag: tag + ", spf=temperror", Reply: accepted}
		}
	}
	return d
}

// dmarcFail applies rule 4 with the policy in effect (RFC 9989 §4.7 t=y
// and RFC 7489 §6.6.4 pct= have already lowered it in the Verdict).
func (q *Policy) dmarcFail(v *analysis.Verdict) Decision {
	dm := v.DMARC
	author := v.Author.Domain
	published := fmt.Sprintf("%s=%s", dm.PolicySource, dm.PublishedPolicy)
	if dm.PolicySource == "" {
		published = "p=" + string(dm.PublishedPolicy)
	}
	lowered := ""
	switch {
	case dm.Testing && dm.Policy != dm.PublishedPolicy:
		lowered = fmt.Sprintf(" (t=y: the domain is testing, so %s applies as %s, RFC 9989 §4.7)", published, dm.Policy)
	case dm.SampledOut:
		lowered = fmt.Sprintf(" (pct= sampling left the message out: %s applies as %s, RFC 7489 §6.6.4)", published, dm.Policy)
	}
	// RFC 9989 §4.10.2: fail means no passing identifier is aligned.
	why := fmt.Sprintf("DMARC fail for %s: no SPF or DKIM identifier that passed is aligned with it; %s from the record at _dmarc.%s%s",
		author, published, dm.PolicyDomain, lowered)
	switch dm.Policy {
	case dmarc.PolicyReject:
		d := Decision{Action: q.DMARCReject.Action, Rule: RuleDMARCReject, Owner: q.DMARCReject.Owner, Reason: why}
		d.Reply = reply(d.Action, "5.7.26", "Message rejected by the DMARC policy of "+author+": authentication failed", "4.7.26")
		if d.Action == evidence.Deliver {
			d.Tag = "dmarc=fail, p=reject not enforced by local policy"
		}
		return d
	case dmarc.PolicyQuarantine:
		d := Decision{Action: q.DMARCQuarantine.Action, Rule: RuleDMARCQuarantine, Owner: q.DMARCQuarantine.Owner, Reason: why}
		d.Reply = reply(d.Action, "5.7.26", "Message rejected by the DMARC policy of "+author+": authentication failed", "4.7.26")
		if d.Action == evidence.Deliver {
			d.Tag = "dmarc=fail, p=quarantine not enforced by local policy"
		}
		return d
	}
	d := Decision{Action: q.DMARCNone.Action, Rule: RuleDMARCNone, Owner: q.DMARCNone.Owner, Reason: why}
	d.Reply = reply(d.Action, "5.7.26", "Message rejected: DMARC authentication failed for "+author, "4.7.26")
	if d.Action == evidence.Deliver {
		d.Tag = "dmarc=fail but p=none"
		if lowered != "" {
			d.Tag = "dmarc=fail but " + published + " lowered to none"
		}
	}
	return d
}

// protected reports whether domain is covered by own-domain protection.
func (q *Policy) protected(domain string) bool {
	if domain == "" {
		return false
	}
	for _, p := range q.OwnDomain.Domains {
		if domain == p || !q.OwnDomain.Exact && strings.HasSuffix(domain, "."+p) {
			return true
		}
	}
	return false
}

// arcRescue applies rule 5: a validating ARC chain (RFC 8617 §5.2) whose
// first hop (instance 1) was sealed by a trusted sealer and recorded, in
// its ARC-Authentication-Results, DMARC pass for the message's From
// domain (RFC 8617 §7.2) turns a DMARC reject or quarantine into deliver.
func (q *Policy) arcRescue(v *analysis.Verdict, d Decision) (Decision, bool) {
	if d.Rule != RuleDMARCReject && d.Rule != RuleDMARCQuarantine {
		return d, false
	}
	if len(q.TrustedARC.Sealers) == 0 || v.ARC == nil || v.ARC.Status != arc.Pass || len(v.ARC.Sets) == 0 {
		return d, false
	}
	first := &v.ARC.Sets[0]
	sealer, ok := q.trustedSealer(first.SealDomain)
	if !ok || !aarDMARCPass(first, v.Author.Domain) {
		return d, false
	}
	if !q.TrustedARC.AllowUntrustedLaterHops {
		for i := range v.ARC.Sets {
			if _, ok := q.trustedSealer(v.ARC.Sets[i].SealDomain); !ok {
				return d, false
			}
		}
	}
	return Decision{
		Action: evidence.Deliver, Rule: RuleARCSealer, Owner: sealer.Owner, Sealer: sealer.Domain, Overrides: d.Rule,
		Reason: fmt.Sprintf("delivered-fail by trusted ARC sealer %s: its ARC set i=1 recorded dmarc=pass for %s before the message changed in transit (the chain validates); without it: %s", sealer.Domain, v.Author.Domain, d.Reason),
		Tag:    "dmarc=fail, delivered by trusted ARC sealer " + sealer.Domain,
		Reply:  accepted,
	}, true
}

func (q *Policy) trustedSealer(domain string) (TrustedSealer, bool) {
	for _, s := range q.TrustedARC.Sealers {
		if strings.EqualFold(s.Domain, strings.TrimSuffix(domain, ".")) {
			return s, true
		}
	}
	return TrustedSealer{}, false
}

// aarDMARCPass reports whether the set's ARC-Authentication-Results hold
// a dmarc=pass whose header.from is domain.
func aarDMARCPass(set *arc.SetResult, domain string) bool {
	if set.AuthResults == nil || domain == "" {
		return false
	}
	for _, r := range set.AuthResults.ResultsFor("dmarc") {
		if !strings.EqualFold(r.Value, "pass") {
			continue
		}
		if from, ok := r.Prop("header", "from"); ok && strings.EqualFold(strings.TrimSuffix(from, "."), domain) {
			return true
		}
	}
	return false
}

// exception applies rule 6: the first exception that matches softens d
// to its Allow action.
func (q *Policy) exception(v *analysis.Verdict, env Envelope, d Decision) (Decision, bool) {
	switch d.Rule {
	case RuleOwnDomain, RuleDMARCReject, RuleDMARCQuarantine, RuleSPFFail:
	default:
		return d, false
	}
	for i := range q.Exceptions {
		e := &q.Exceptions[i]
		if !e.Matches(v, env) {
			continue
		}
		if severity(e.Allow) >= severity(d.Action) {
			continue // it would not soften anything
		}
		out := Decision{Action: e.Allow, Rule: RuleException, Owner: e.Owner, Exception: e.ID, Overrides: d.Rule,
			Reason: fmt.Sprintf("delivered-fail by exception %s (%s, owner %s, expires %s); without it: %s",
				e.ID, e.Justification, e.Owner, e.Expires.UTC().Format("2006-01-02"), d.Reason)}
		if e.Allow == evidence.Quarantine {
			out.Reason = "quarantined by exception " + strings.TrimPrefix(out.Reason, "delivered-fail by exception ")
		}
		out.Reply = accepted
		if out.Action == evidence.Deliver {
			out.Tag = fmt.Sprintf("dmarc=%s, delivered by exception %s", v.DMARC.Result, e.ID)
		}
		return out, true
	}
	return d, false
}

// tempError applies the auth-temperror rule to a reject or quarantine: if
// a temperror of SPF or DKIM for an identifier that could have aligned
// with the From domain, or of an ARC chain a trusted sealer could have
// rescued, stands behind it, the outcome is not certain and the message
// is deferred so that the sender retries (fail closed).
func (q *Policy) tempError(v *analysis.Verdict, d Decision) (Decision, bool) {
	if q.AuthTempError.Action != TempErrorDefer {
		return d, false
	}
	author, org := v.Author.Domain, v.DMARC.OrgDomain
	var causes []string
	spfTemp := false
	// For the SPF rule any SPF temperror counts: that rule needs no
	// alignment.
	if v.SPF.Result == spf.TempError && (d.Rule == RuleSPFFail || related(v.SPF.Domain, author, org)) {
		causes = append(causes, fmt.Sprintf("SPF for %s", v.SPF.Domain))
		spfTemp = true
	}
	for _, s := range v.DKIM {
		if s.Result == dkim.TempError && (s.Domain == "" || related(s.Domain, author, org)) {
			causes = append(causes, fmt.Sprintf("DKIM key %s._domainkey.%s", s.Selector, s.Domain))
		}
	}
	if v.ARC != nil && v.ARC.Status == arc.Fail && v.ARC.Temporary && len(q.TrustedARC.Sealers) > 0 &&
		(d.Rule == RuleDMARCReject || d.Rule == RuleDMARCQuarantine) {
		causes = append(causes, "the ARC chain")
	}
	if len(causes) == 0 {
		return d, false
	}
	out := Decision{Action: evidence.Defer, Rule: RuleAuthTempError, Owner: q.AuthTempError.Owner, Overrides: d.Rule,
		Reason: fmt.Sprintf("would %s (%s), but %s could not be checked for now and could have changed the outcome; the sender retries",
			d.Action, d.Rule, strings.Join(causes, ", "))}
	if spfTemp {
		out.Reply = Reply{451, "4.7.24", "SPF validation error, try again later"} // RFC 7372 §3.2
	} else {
		out.Reply = Reply{451, "4.7.1", "Temporary authentication failure, try again later"}
	}
	return out, true
}

// related reports whether an authenticated identifier could align with
// the author domain (RFC 9989 §3.2.10): it is the author domain, a parent
// or a subdomain of it, or lies under the author's Organizational Domain
// when that is known.
func related(id, author, org string) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if id == "" || author == "" {
		return false
	}
	if id == author || strings.HasSuffix(id, "."+author) || strings.HasSuffix(author, "."+id) {
		return true
	}
	return org != "" && (id == org || strings.HasSuffix(id, "."+org))
}

// severity orders the actions from the most lenient.
func severity(a evidence.Action) int {
	switch a {
	case evidence.Deliver:
		return 0
	case evidence.Quarantine:
		return 1
	case evidence.Defer:
		return 2
	}
	return 3
}

// accepted is the reply of a delivered or quarantined message.
var accepted = Reply{250, "2.0.0", "Message accepted"}

// reply returns the SMTP reply for action: 250 for deliver and quarantine,
// 550 with enhanced code rejectCode and rejectText for reject, 451 with
// deferCode (and deferText, or rejectText) for defer.
func reply(action evidence.Action, rejectCode, rejectText, deferCode string, deferText ...string) Reply {
	switch action {
	case evidence.Reject:
		return Reply{550, rejectCode, rejectText}
	case evidence.Defer:
		text := "Temporarily refused: " + rejectText + ", try again later"
		if len(deferText) > 0 {
			text = deferText[0]
		}
		return Reply{451, deferCode, text}
	}
	return accepted
}
