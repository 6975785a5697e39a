// Package posture implements the check of a domain's email-authentication
// posture, as seen from the outside through DNS, and the remediation report
// sent to its owner:
//
//   - SPF (RFC 7208): the record's syntax, the include/redirect tree with the
//     DNS lookups of each branch against the limit of 10 and the void
//     lookups against the limit of 2 (§4.6.4), the "all" mechanism, "ptr"
//     (§5.5), several records (§4.5), the size of the answer (§3.4);
//   - DMARC (RFC 9989, with the tags RFC 7489 had): policy discovery by the
//     DNS Tree Walk (§4.10), the policy (p=none monitors only), sp= and np=,
//     alignment modes, tags RFC 9989 removed (pct, rf, ri), aggregate
//     reporting (rua=) and the authorization of external report
//     destinations (RFC 9990, "Verifying External Destinations"; RFC 7489
//     §7.1);
//   - DKIM (RFC 6376, RFC 8301, RFC 8463): the key records at given
//     selectors and at CommonSelectors: key type and size, t=y, revoked
//     keys, syntax;
//   - MX (RFC 5321 §5.1, RFC 7505): MX hosts and their addresses, null MX.
//
// Each area gets a status (pass, warn, fail, error) and a one-line verdict;
// the domain gets an overall grade from A to F (see Grade). Remediate
// derives the DNS records to publish and a staged path to p=reject;
// WriteMarkdown and WriteHTML write the report for the domain's owner.
package posture

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
)

// CommonSelectors are the DKIM selectors checked besides those given:
// the defaults of widespread signers and providers ("default" of many
// control panels and OpenDKIM set-ups, "selector1"/"selector2" of Microsoft
// 365, "google" of Google Workspace, "k1" of Mailchimp/Mandrill, "s1"/"s2"
// of SendGrid and others, "dkim" and "mail" of many self-hosted set-ups).
// A key at another selector is found only when given.
var CommonSelectors = []string{"default", "selector1", "selector2", "google", "k1", "s1", "s2", "dkim", "mail"}

// Status is the state of one area.
type Status string

// The statuses of an area, from best to worst.
const (
	StatusPass Status = "pass"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	// StatusError: the area could not be checked (a DNS failure).
	StatusError Status = "error"
)

// Severities of a Finding.
const (
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityProblem = "problem"
)

// Finding is one observation, with a stable code (docs/posture.md).
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Text     string `json:"text"`
	// Ref names the specification the finding rests on.
	Ref string `json:"ref,omitempty"`
}

// Area is the outcome of one area of the check.
type Area struct {
	Status   Status    `json:"status"`
	Verdict  string    `json:"verdict"`
	Findings []Finding `json:"findings"`
	// Error is the DNS failure that kept the area from being checked.
	Error string `json:"error,omitempty"`
}

func (a *Area) add(code, severity, ref, text string) {
	a.Findings = append(a.Findings, Finding{Code: code, Severity: severity, Text: text, Ref: ref})
}

func (a *Area) has(code string) bool {
	for _, f := range a.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}

// settle sets Status from the findings: error when Error is set, else the
// worst severity (problem: fail, warning: warn).
func (a *Area) settle() {
	switch {
	case a.Error != "":
		a.Status = StatusError
	default:
		a.Status = StatusPass
		for _, f := range a.Findings {
			switch f.Severity {
			case SeverityProblem:
				a.Status = StatusFail
			case SeverityWarning:
				if a.Status == StatusPass {
					a.Status = StatusWarn
				}
			}
		}
	}
	if a.Findings == nil {
		a.Findings = []Finding{}
	}
}

// Options configure Check.
type Options struct {
	// Selectors are DKIM selectors to check besides CommonSelectors.
	Selectors []string
	// NoCommonSelectors checks only Selectors.
	NoCommonSelectors bool
	// Now gives Report.CheckedAt; default time.Now.
	Now func() time.Time
}

// Report is the posture of one domain. Its JSON shape is stable.
type Report struct {
	Domain    string    `json:"domain"`
	CheckedAt time.Time `json:"checked_at"`
	// Grade is A (best) to F; Score the points it comes from (0-100).
	Grade   string      `json:"grade"`
	Score   int         `json:"score"`
	Verdict string      `json:"verdict"`
	SPF     SPFReport   `json:"spf"`
	DMARC   DMARCReport `json:"dmarc"`
	DKIM    DKIMReport  `json:"dkim"`
	MX      MXReport    `json:"mx"`
	// Remediation is what the owner should publish and do.
	Remediation Remediation `json:"remediation"`
	// Error is set when the domain name itself is invalid.
	Error string `json:"error,omitempty"`
}

// ErrDomain is wrapped by the Report.Error of an invalid domain name.
var ErrDomain = errors.New("posture: invalid domain name")

// Check examines domain through r. It never fails: DNS failures make the
// areas they touch StatusError, an invalid name is reported in Error.
func Check(ctx context.Context, r dns.Resolver, domain string, opts *Options) *Report {
	var o Options
	if opts != nil {
		o = *opts
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	rep := &Report{Domain: strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), ".")), CheckedAt: now().UTC()}
	d, err := dmarc.NormalizeDomain(rep.Domain)
	if err == nil && strings.Contains(d, ".") {
		_, err = dns.CanonicalName(d)
	} else if err == nil {
		err = errors.New("a single label is not a mail domain")
	}
	if err != nil {
		rep.Error = ErrDomain.Error() + ": " + err.Error()
		for _, a := range []*Area{&rep.SPF.Area, &rep.DMARC.Area, &rep.DKIM.Area, &rep.MX.Area} {
			a.Error = rep.Error
			a.Verdict = "not checked: invalid domain name"
			a.settle()
		}
		rep.grade()
		rep.Remediation = Remediation{Records: []RecordSuggestion{}, Advice: []string{}, Stages: []Stage{}}
		return rep
	}
	rep.Domain = d
	var selectors []string
	selectors = append(selectors, o.Selectors...)
	if !o.NoCommonSelectors {
		selectors = append(selectors, CommonSelectors...)
	}
	// The four areas ask different names: run them at once and merge in a
	// fixed order.
	var wg sync.WaitGroup
	wg.Go(func() { rep.SPF = checkSPF(ctx, r, d) })
	wg.Go(func() { rep.DMARC = checkDMARC(ctx, r, d) })
	wg.Go(func() { rep.DKIM = checkDKIM(ctx, r, d, selectors, o.Selectors) })
	wg.Go(func() { rep.MX = checkMX(ctx, r, d) })
	wg.Wait()
	rep.crossChecks()
	for _, a := range []*Area{&rep.SPF.Area, &rep.DMARC.Area, &rep.DKIM.Area, &rep.MX.Area} {
		a.settle()
	}
	rep.grade()
	rep.Remediation = Remediate(rep)
	return rep
}

// sendsNoMail reports a domain that declares it sends no mail: its SPF
// record authorizes nobody ("v=spf1 -all").
func (r *Report) sendsNoMail() bool { return r.SPF.AuthorizesNobody }

// crossChecks adds what one area says about another.
func (r *Report) crossChecks() {
	if r.MX.NXDomain {
		r.SPF.Area.add("domain-nxdomain", SeverityProblem, "RFC 1035 §4.1.1", r.Domain+" does not exist (NXDOMAIN): nothing else matters until it is registered and delegated.")
	}
	if r.sendsNoMail() && len(r.DKIM.Keys) == 0 && r.DKIM.Error == "" {
		// A domain that sends no mail needs no DKIM key.
		var kept []Finding
		for _, f := range r.DKIM.Findings {
			if f.Code != "dkim-none-found" {
				kept = append(kept, f)
			}
		}
		r.DKIM.Findings = kept
		r.DKIM.add("dkim-not-needed", SeverityInfo, "", "The SPF record says the domain sends no mail (v=spf1 -all): no DKIM key is needed.")
		r.DKIM.Verdict = "no key needed: the domain sends no mail"
	}
	if r.MX.Null && r.SPF.Record == "" {
		r.SPF.add("spf-null-mx-no-spf", SeverityWarning, "RFC 7505 §4.2", "The domain accepts no mail (null MX) but publishes no SPF record; if it sends none either, publish \"v=spf1 -all\".")
	}
}
