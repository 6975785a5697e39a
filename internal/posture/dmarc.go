package posture

import (
	"context"
	"fmt"
	"strings"

	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
)

// DMARCReport is the DMARC area.
type DMARCReport struct {
	Area
	// Record is the record that applies to the domain, PolicyDomain where
	// it was found (the domain itself, or a parent by the DNS Tree Walk),
	// OrgDomain the Organizational Domain discovery determined.
	Record       string `json:"record,omitempty"`
	PolicyDomain string `json:"policy_domain,omitempty"`
	OrgDomain    string `json:"org_domain,omitempty"`
	// Inherited reports a record found at a parent: sp= (or p=) of that
	// record applies to the domain.
	Inherited bool `json:"inherited"`
	// Policy is the policy that applies to the domain's own mail (p=, or
	// sp= when inherited); P, SP, NP the tags as published ("" absent).
	Policy string `json:"policy,omitempty"`
	P      string `json:"p,omitempty"`
	SP     string `json:"sp,omitempty"`
	NP     string `json:"np,omitempty"`
	ADKIM  string `json:"adkim,omitempty"`
	ASPF   string `json:"aspf,omitempty"`
	// Testing is t=y.
	Testing bool        `json:"testing,omitempty"`
	RUA     []ReportURI `json:"rua"`
	RUF     []ReportURI `json:"ruf"`
	// Removed lists the tags RFC 9989 removed that the record still has.
	Removed []string `json:"removed,omitempty"`
	// Pct is the pct= value (100 when absent).
	Pct int `json:"pct"`
	// Discovery lists the DNS queries of policy discovery.
	Discovery []string `json:"discovery"`
}

// ReportURI is one rua= or ruf= destination.
type ReportURI struct {
	URI string `json:"uri"`
	// Host is the destination host of a mailto: URI.
	Host string `json:"host,omitempty"`
	// External reports a destination outside the Organizational Domain of
	// the policy domain, which needs the destination's authorization.
	External bool `json:"external"`
	// AuthName is the name queried for that authorization
	// (<policy-domain>._report._dmarc.<host>) and Authorized its outcome.
	AuthName   string `json:"auth_name,omitempty"`
	Authorized bool   `json:"authorized"`
	// AuthRecords counts the TXT records there that start with v=DMARC1.
	AuthRecords int `json:"auth_records,omitempty"`
	// Problem says why the destination is not usable.
	Problem string `json:"problem,omitempty"`
}

func checkDMARC(ctx context.Context, r dns.Resolver, domain string) DMARCReport {
	rep := DMARCReport{RUA: []ReportURI{}, RUF: []ReportURI{}, Discovery: []string{}, Pct: 100}
	a := &rep.Area
	disc, err := dmarc.Discover(ctx, r, domain, nil)
	if disc != nil {
		for _, l := range disc.Lookups {
			rep.Discovery = append(rep.Discovery, fmt.Sprintf("%s %s: %s", l.Name, l.Type, l.Outcome))
		}
	}
	if err != nil {
		a.Error = err.Error()
		a.Verdict = "not checked: " + err.Error()
		return rep
	}
	rep.OrgDomain = disc.OrgDomain
	// Several records at _dmarc.<domain> are all discarded (RFC 9989
	// §4.10 step 2; RFC 7489 §6.6.3 step 5 ends discovery).
	txts, _, err := dns.LookupTXT(ctx, r, "_dmarc."+domain)
	if err == nil {
		n := 0
		for _, t := range txts {
			if dmarc.IsDMARCRecord(t) {
				n++
			}
		}
		if n > 1 {
			a.add("dmarc-multiple", SeverityProblem, "RFC 9989 §4.10", fmt.Sprintf("_dmarc.%s holds %d DMARC records: receivers discard them all (RFC 7489 receivers stop discovery). Keep one.", domain, n))
		}
	}
	rec := disc.Record
	if rec == nil {
		if !a.has("dmarc-multiple") {
			a.add("dmarc-missing", SeverityProblem, "RFC 9989 §4.10", fmt.Sprintf("No DMARC record applies to %s (%s): receivers have no policy for mail that fails authentication, and the owner gets no reports.", domain, orText(disc.Reason, "none found")))
		}
		a.Verdict = "no DMARC record: anyone can send as the domain unnoticed"
		return rep
	}
	rep.Record, rep.PolicyDomain = rec.Raw, disc.PolicyDomain
	rep.Inherited = disc.PolicyDomain != domain
	rep.P, rep.SP, rep.NP = string(rec.P), string(rec.SP), string(rec.NP)
	rep.ADKIM, rep.ASPF = modeName(rec.ADKIM), modeName(rec.ASPF)
	rep.Testing = rec.Testing
	rep.Removed = rec.Removed
	if old, err := dmarc.ParseRecord(rec.Raw, dmarc.RFC7489); err == nil {
		rep.Pct = old.Pct
	}
	p, sp, np, substituted, ok, problem := rec.Applicable()
	if !ok {
		a.add("dmarc-not-applicable", SeverityProblem, "RFC 9989 §4.10.1", fmt.Sprintf("The record at _dmarc.%s cannot be applied: %s.", rep.PolicyDomain, problem))
		a.Verdict = "the DMARC record is unusable"
		return rep
	}
	// Absent tags take their defaults (RFC 9989 §4.7): sp= is p=, np= is
	// sp=.
	if sp == "" {
		sp = p
	}
	if np == "" {
		np = sp
	}
	rep.Policy = string(p)
	if rep.Inherited {
		rep.Policy = string(sp)
		a.add("dmarc-inherited", SeverityInfo, "RFC 9989 §4.10.1", fmt.Sprintf("%s has no record of its own; the record of %s applies to it (found by the DNS Tree Walk), with its subdomain policy sp=%s.", domain, rep.PolicyDomain, sp))
	} else {
		a.add("dmarc-found", SeverityInfo, "RFC 9989 §4.10", fmt.Sprintf("DMARC record found at _dmarc.%s.", domain))
	}
	if substituted {
		a.add("dmarc-policy-substituted", SeverityWarning, "RFC 9989 §4.10.1", "The record's policy tag is missing or invalid; receivers apply it as p=none because rua= is valid.")
	}
	switch dmarc.Policy(rep.Policy) {
	case dmarc.PolicyNone:
		a.add("dmarc-policy-none", SeverityWarning, "RFC 9989 §4.7", "The policy is none: monitoring only. Receivers are not asked to act on mail that fails, so spoofed mail is still delivered — p=none is a stage, not a protection.")
	case dmarc.PolicyQuarantine:
		a.add("dmarc-policy-quarantine", SeverityInfo, "RFC 9989 §4.7", "The policy is quarantine: failing mail goes to spam folders. p=reject is the end state.")
	case dmarc.PolicyReject:
		a.add("dmarc-policy-reject", SeverityInfo, "RFC 9989 §4.7", "The policy is reject: receivers refuse mail that fails DMARC.")
	}
	if rec.Testing {
		a.add("dmarc-testing", SeverityWarning, "RFC 9989 §4.7", "t=y (testing): receivers apply the policy one level lower (reject as quarantine, quarantine as none).")
	}
	if !rep.Inherited && sp != p && strength(sp) < strength(p) {
		a.add("dmarc-sp-weaker", SeverityWarning, "RFC 9989 §4.7", fmt.Sprintf("sp=%s is weaker than p=%s: subdomains (which anyone can invent) are less protected than the domain itself.", sp, p))
	}
	if rec.NP == "" && strength(p) > strength(dmarc.PolicyNone) && !rep.Inherited {
		a.add("dmarc-np-absent", SeverityInfo, "RFC 9989 §4.7", fmt.Sprintf("No np= tag: mail from non-existent subdomains gets sp=%s. np=reject makes them refused outright.", sp))
	} else if rec.NP != "" && strength(np) < strength(p) {
		a.add("dmarc-np-weaker", SeverityWarning, "RFC 9989 §4.7", fmt.Sprintf("np=%s is weaker than p=%s: mail from subdomains that do not exist, which no legitimate sender uses, is less protected than the domain itself.", np, p))
	}
	if rec.ADKIM == dmarc.AlignStrict || rec.ASPF == dmarc.AlignStrict {
		a.add("dmarc-strict", SeverityInfo, "RFC 9989 §3.2.10", fmt.Sprintf("Strict alignment (adkim=%s, aspf=%s): a signature or envelope from a subdomain (for example a provider's bounce domain under yours) does not align.", rep.ADKIM, rep.ASPF))
	}
	if len(rec.Removed) > 0 {
		text := fmt.Sprintf("The record has tags RFC 9989 removed (%s): RFC 9989 receivers ignore them.", strings.Join(rec.Removed, ", "))
		if rep.Pct < 100 {
			text += fmt.Sprintf(" pct=%d means RFC 7489 receivers apply the policy to %d%% of failing mail while RFC 9989 receivers apply it to all: the behaviour differs between receivers. Remove pct and use t=y to test.", rep.Pct, rep.Pct)
		}
		a.add("dmarc-removed-tags", SeverityWarning, "RFC 9989 Appendix C.5.2", text)
	}
	for _, w := range rec.Warnings {
		if strings.Contains(w, "removed by RFC 9989") {
			continue
		}
		a.add("dmarc-record-warning", SeverityWarning, "RFC 9989 §4.8", "Record: "+w+".")
	}
	// Reporting.
	if len(rec.RUA) == 0 {
		a.add("dmarc-no-rua", SeverityWarning, "RFC 9989 §4.7", "No rua= tag: the domain gets no aggregate reports, so it cannot see who sends mail as it, nor move safely from p=none to p=reject.")
	}
	rep.RUA = reportURIs(ctx, r, rep.PolicyDomain, rec.RUA, a, "rua")
	rep.RUF = reportURIs(ctx, r, rep.PolicyDomain, rec.RUF, a, "ruf")

	switch {
	case rep.Policy == string(dmarc.PolicyNone):
		a.Verdict = "p=none: monitoring only, spoofed mail is not blocked"
	case rec.Testing:
		a.Verdict = fmt.Sprintf("p=%s with t=y: applied one level lower", rep.Policy)
	case len(rec.RUA) == 0:
		a.Verdict = fmt.Sprintf("p=%s, but no aggregate reports", rep.Policy)
	case authorized(rep.RUA) == 0:
		a.Verdict = fmt.Sprintf("p=%s, but no report destination accepts the reports", rep.Policy)
	case authorized(rep.RUA) < len(rep.RUA):
		a.Verdict = fmt.Sprintf("p=%s; a report destination has not authorized the reports", rep.Policy)
	default:
		a.Verdict = fmt.Sprintf("p=%s with aggregate reports", rep.Policy)
	}
	if rep.Inherited {
		a.Verdict += " (inherited from " + rep.PolicyDomain + ")"
	}
	return rep
}

func authorized(us []ReportURI) int {
	n := 0
	for _, u := range us {
		if u.Authorized {
			n++
		}
	}
	return n
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func modeName(a dmarc.Alignment) string {
	if a == dmarc.AlignStrict {
		return "s"
	}
	return "r"
}

func strength(p dmarc.Policy) int {
	switch p {
	case dmarc.PolicyReject:
		return 3
	case dmarc.PolicyQuarantine:
		return 2
	case dmarc.PolicyNone:
		return 1
	}
	return 0
}

// reportURIs checks the report destinations: a mailto: destination whose
// host is outside the Organizational Domain of the policy domain must be
// authorized by a TXT record starting with v=DMARC1 at
// <policy-domain>._report._dmarc.<host> (RFC 9990, "Verifying External
// Destinations"; RFC 7489 §7.1 required exactly one such record).
func reportURIs(ctx context.Context, r dns.Resolver, policyDomain string, uris []dmarc.URI, a *Area, tag string) []ReportURI {
	out := []ReportURI{}
	policyOrg, perr := dmarc.OrganizationalDomain(ctx, r, policyDomain)
	for _, u := range uris {
		ru := ReportURI{URI: u.URI}
		if u.Scheme != "mailto" {
			ru.Problem = "only mailto: destinations are defined for reports"
			a.add("dmarc-"+tag+"-scheme", SeverityWarning, "RFC 9989 §4.7", fmt.Sprintf("%s destination %s is not a mailto: URI; receivers send reports by email only.", tag, u.URI))
			out = append(out, ru)
			continue
		}
		host := ""
		if i := strings.LastIndexByte(u.Address, '@'); i >= 0 {
			host = strings.ToLower(u.Address[i+1:])
		}
		ru.Host = host
		if host == "" || perr != nil {
			out = append(out, ru)
			continue
		}
		destOrg, err := dmarc.OrganizationalDomain(ctx, r, host)
		if err != nil {
			ru.Problem = "temporary DNS failure: " + err.Error()
			out = append(out, ru)
			continue
		}
		if destOrg == policyOrg {
			ru.Authorized = true
			out = append(out, ru)
			continue
		}
		ru.External = true
		ad, _ := dmarc.NormalizeDomain(policyDomain)
		ru.AuthName = ad + "._report._dmarc." + host
		if _, err := dns.CanonicalName(ru.AuthName); err != nil {
			ru.Problem = "the authorization name is too long for the DNS"
		} else if txts, _, err := dns.LookupTXT(ctx, r, ru.AuthName); err != nil {
			ru.Problem = "temporary DNS failure: " + err.Error()
		} else {
			for _, t := range txts {
				if dmarc.IsDMARCRecord(t) {
					ru.AuthRecords++
				}
			}
			ru.Authorized = ru.AuthRecords > 0
			if !ru.Authorized {
				ru.Problem = "no TXT record starting with v=DMARC1 at " + ru.AuthName
			}
		}
		switch {
		case ru.Authorized && ru.AuthRecords > 1:
			a.add("dmarc-"+tag+"-authorization-multiple", SeverityWarning, "RFC 7489 §7.1", fmt.Sprintf("%s authorizes reports with %d records: RFC 9990 receivers accept that, RFC 7489 receivers require exactly one.", ru.AuthName, ru.AuthRecords))
		case ru.Authorized:
			a.add("dmarc-"+tag+"-external-authorized", SeverityInfo, "RFC 9990", fmt.Sprintf("%s reports go to %s, outside %s; %s authorizes it.", tag, host, policyOrg, ru.AuthName))
		default:
			a.add("dmarc-"+tag+"-unauthorized", SeverityWarning, "RFC 9990; RFC 7489 §7.1", fmt.Sprintf("%s reports go to %s, outside %s, but %s has not authorized it (%s): receivers must not send reports there.", tag, host, policyOrg, host, ru.Problem))
		}
		out = append(out, ru)
	}
	return out
}
