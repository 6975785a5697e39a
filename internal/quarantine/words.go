package quarantine

import (
	"fmt"
	"strings"

	"portcullis/internal/evidence"
	"portcullis/internal/policy"
)

// VerdictInWords says in plain sentences what happened to a message and
// why, from its evidence record: what it claimed, what SPF (RFC 7208),
// DKIM (RFC 6376) and DMARC (RFC 9989) found, and the rule that decided.
// It is written for the recipient of a digest and for an operator, not for
// a protocol expert.
func VerdictInWords(rec *evidence.Record) string {
	if rec == nil {
		return "No evidence record was found for this message."
	}
	d := rec.Decision
	var b strings.Builder
	verb := map[evidence.Action]string{
		evidence.Deliver: "Delivered", evidence.Quarantine: "Quarantined", evidence.Reject: "Rejected", evidence.Defer: "Deferred",
	}[d.Action]
	if verb == "" {
		verb = "Decided"
	}
	dm := rec.Auth.DMARC
	from := dm.FromDomain
	if from == "" {
		from = domainOf(rec.HeaderFrom)
	}
	auth := authSummary(rec)
	switch d.Rule {
	case policy.RuleDMARCQuarantine, policy.RuleDMARCReject:
		fmt.Fprintf(&b, "%s: the message claims to come from %s, but %s. %s publishes a DMARC policy asking receivers to %s such mail (p=%s).",
			verb, from, auth, from, policyVerb(dm.Policy), dm.Policy)
	case policy.RuleOwnDomain:
		fmt.Fprintf(&b, "%s: the message claims to come from %s, one of our own protected domains, but %s. Mail from our own domains must pass DMARC.",
			verb, from, auth)
	case policy.RuleSPFFail:
		fmt.Fprintf(&b, "%s: %s has no DMARC policy and the sending server is not authorized by its SPF record (%s).",
			verb, from, spfWords(&rec.Auth.SPF))
	case policy.RuleException:
		fmt.Fprintf(&b, "%s by exception %s: the message claims to come from %s and %s; the exception, owned by %s, lets it through because it came through the partner's verified infrastructure.",
			verb, deref(d.Exception), from, auth, d.Owner)
	case policy.RuleARCSealer:
		fmt.Fprintf(&b, "%s: the message failed DMARC for %s here (%s), but a trusted forwarder's ARC seal records that it passed before forwarding changed it.",
			verb, from, auth)
	case policy.RuleDMARCPass:
		fmt.Fprintf(&b, "%s: the message authenticated as coming from %s (DMARC pass).", verb, from)
	default:
		fmt.Fprintf(&b, "%s: %s", verb, strings.TrimSuffix(d.Reason, "."))
		b.WriteString(".")
	}
	owner := d.Owner
	if owner == "" {
		owner = policy.DefaultOwner
	}
	fmt.Fprintf(&b, " (Rule %s, owner %s.)", d.Rule, owner)
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func policyVerb(p string) string {
	switch p {
	case "reject":
		return "reject"
	case "quarantine":
		return "treat as suspicious"
	}
	return "report on"
}

// authSummary says why DMARC did not pass, or that it did.
func authSummary(rec *evidence.Record) string {
	dm := rec.Auth.DMARC
	from := dm.FromDomain
	if dm.Result == "pass" {
		return "it passed DMARC"
	}
	var parts []string
	parts = append(parts, spfWords(&rec.Auth.SPF))
	if len(rec.Auth.DKIM) == 0 {
		parts = append(parts, "it carries no DKIM signature")
	}
	for _, k := range rec.Auth.DKIM {
		switch {
		case k.Result == "pass" && !strings.EqualFold(k.Domain, from) && !strings.HasSuffix(strings.ToLower(k.Domain), "."+strings.ToLower(from)):
			parts = append(parts, fmt.Sprintf("it is validly DKIM-signed by %s, which is not %s", k.Domain, from))
		case k.Result == "pass":
			parts = append(parts, fmt.Sprintf("it is DKIM-signed by %s", k.Domain))
		default:
			s := fmt.Sprintf("its DKIM signature by %s did not verify (%s)", orUnknown(k.Domain), k.Result)
			if k.BodyDiagnosis != "" {
				s += ", the body was changed in transit: " + k.BodyDiagnosis
			}
			parts = append(parts, s)
		}
	}
	return "neither SPF nor DKIM authenticated " + orUnknown(from) + ": " + strings.Join(parts, "; ")
}

func spfWords(s *evidence.SPF) string {
	d := orUnknown(s.Domain)
	switch s.Result {
	case "pass":
		return fmt.Sprintf("SPF passed for %s", d)
	case "none":
		return fmt.Sprintf("%s has no SPF record", d)
	case "fail":
		return fmt.Sprintf("the sending server is not authorized by the SPF record of %s", d)
	case "softfail":
		return fmt.Sprintf("the SPF record of %s discourages this sending server (softfail)", d)
	case "neutral":
		return fmt.Sprintf("the SPF record of %s says nothing about this server (neutral)", d)
	case "temperror":
		return fmt.Sprintf("SPF for %s could not be checked (temporary DNS error)", d)
	case "permerror":
		return fmt.Sprintf("the SPF record of %s is broken (permerror)", d)
	}
	return fmt.Sprintf("SPF %s for %s", s.Result, d)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// domainOf returns the domain of the last address-like word of a header
// From value.
func domainOf(from string) string {
	from = strings.TrimSpace(strings.Trim(from, "<> "))
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		return strings.ToLower(strings.Trim(from[i+1:], "<> ."))
	}
	return ""
}
