package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/arc"
	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/spf"
)

// Exception lets messages from one partner's verified sending
// infrastructure through the authentication-failure rules (own-domain,
// dmarc-reject, dmarc-quarantine, spf-fail-no-dmarc), never through the
// structure or temperror rules. It matches a message only when the header
// From domain is FromDomain AND the message carries a verified Binding:
// an exception on a domain alone would let anyone spoof that domain.
type Exception struct {
	// ID names the exception in decisions and evidence. Required, unique.
	ID string `yaml:"id" json:"id"`
	// FromDomain is the header From domain the exception covers.
	// Required.
	FromDomain string `yaml:"from_domain" json:"from_domain"`
	// IncludeSubdomains extends FromDomain to its subdomains. Default
	// false.
	IncludeSubdomains bool `yaml:"include_subdomains" json:"include_subdomains"`
	// Binding is the verified infrastructure the message must come
	// through. At least one kind is required.
	Binding Binding `yaml:"binding" json:"binding"`
	// Allow caps what the exception allows: deliver (default) or
	// quarantine. It only ever softens a decision.
	Allow evidence.Action `yaml:"allow" json:"allow"`
	// Owner is the team accountable for the exception. Required.
	Owner string `yaml:"owner" json:"owner"`
	// Justification says why the exception exists.
	Justification string `yaml:"justification" json:"justification"`
	// Requester and Approver are who asked for the exception and who
	// approved it; when both are given they must differ.
	Requester string `yaml:"requester" json:"requester"`
	Approver  string `yaml:"approver" json:"approver"`
	// Expires is when the exception stops applying. Required.
	Expires time.Time `yaml:"expires" json:"expires"`
}

// Binding is the verified sending infrastructure of an Exception. Every
// kind that is listed must match (all kinds are ANDed); within a kind any
// one value is enough.
type Binding struct {
	// ClientCIDRs: the SMTP client address is in one of these ranges.
	ClientCIDRs []netip.Prefix `yaml:"client_cidrs" json:"client_cidrs"`
	// DKIMDomains: a DKIM signature with one of these d= verified (pass).
	DKIMDomains []string `yaml:"dkim_domains" json:"dkim_domains"`
	// SPFDomains: SPF passed for the MAIL FROM identity of one of these
	// envelope domains.
	SPFDomains []string `yaml:"spf_domains" json:"spf_domains"`
	// ARCSealers: the ARC chain validates and its latest ARC-Seal (the
	// hop that handed the message to us) has one of these d=.
	ARCSealers []string `yaml:"arc_sealers" json:"arc_sealers"`
}

// empty reports a binding with no kind listed.
func (b Binding) empty() bool {
	return len(b.ClientCIDRs) == 0 && len(b.DKIMDomains) == 0 && len(b.SPFDomains) == 0 && len(b.ARCSealers) == 0
}

// errNoBinding is the error of an exception without a binding.
var errNoBinding = errors.New("no binding: an exception must name verified sending infrastructure (client_cidrs, dkim_domains, spf_domains or arc_sealers), or it would let anyone spoof its From domain")

func (e Exception) validate() error {
	switch {
	case e.ID == "":
		return errors.New("id is required")
	case strings.TrimSpace(e.FromDomain) == "":
		return errors.New("from_domain is required")
	case e.Binding.empty():
		return errNoBinding
	case e.Owner == "":
		return errors.New("owner is required")
	case e.Expires.IsZero():
		return errors.New("expires is required")
	case e.Requester != "" && e.Approver != "" && strings.EqualFold(e.Requester, e.Approver):
		return fmt.Errorf("approver %q is the requester: a second person must approve", e.Approver)
	}
	if _, err := dmarc.NormalizeDomain(e.FromDomain); err != nil {
		return fmt.Errorf("from_domain %q is not a domain name", e.FromDomain)
	}
	switch e.Allow {
	case "", evidence.Deliver, evidence.Quarantine:
	default:
		return fmt.Errorf("allow %q is not deliver or quarantine", e.Allow)
	}
	for i, p := range e.Binding.ClientCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("binding.client_cidrs[%d] is not an address range", i)
		}
	}
	for _, l := range []struct {
		name string
		ds   []string
	}{{"dkim_domains", e.Binding.DKIMDomains}, {"spf_domains", e.Binding.SPFDomains}, {"arc_sealers", e.Binding.ARCSealers}} {
		for i, d := range l.ds {
			if _, err := dmarc.NormalizeDomain(d); err != nil {
				return fmt.Errorf("binding.%s[%d] %q is not a domain name", l.name, i, d)
			}
		}
	}
	return nil
}

func (e Exception) withDefaults(owner string) Exception {
	e.FromDomain = normalize(e.FromDomain)
	if e.Allow == "" {
		e.Allow = evidence.Deliver
	}
	if e.Owner == "" {
		e.Owner = owner
	}
	e.Binding.DKIMDomains = normalizeAll(e.Binding.DKIMDomains)
	e.Binding.SPFDomains = normalizeAll(e.Binding.SPFDomains)
	e.Binding.ARCSealers = normalizeAll(e.Binding.ARCSealers)
	if e.Binding.ClientCIDRs != nil {
		cidrs := make([]netip.Prefix, len(e.Binding.ClientCIDRs))
		for i, p := range e.Binding.ClientCIDRs {
			cidrs[i] = p.Masked()
		}
		e.Binding.ClientCIDRs = cidrs
	}
	return e
}

// Matches reports whether e covers the message: not expired at
// env.ReceivedAt, From domain in scope, and every binding kind verified.
// It is pure. e must have gone through the policy's defaults (Decide does
// that).
func (e *Exception) Matches(v *analysis.Verdict, env Envelope) bool {
	if env.ReceivedAt.IsZero() || !env.ReceivedAt.Before(e.Expires) {
		return false
	}
	author := v.Author.Domain
	if author == "" || !(author == e.FromDomain || e.IncludeSubdomains && strings.HasSuffix(author, "."+e.FromDomain)) {
		return false
	}
	if e.Binding.empty() {
		return false // refused by Validate; never a wildcard
	}
	b := e.Binding
	if len(b.ClientCIDRs) > 0 {
		ip := env.ClientIP.Unmap()
		ok := false
		for _, p := range b.ClientCIDRs {
			if ip.IsValid() && p.Contains(ip) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(b.DKIMDomains) > 0 && !anyOf(b.DKIMDomains, v.DKIMPassed) {
		return false
	}
	if len(b.SPFDomains) > 0 {
		// An SPF pass for the MAIL FROM identity of a named domain (RFC
		// 7208 §2.4); the HELO identity does not count.
		passed := v.SPF.Result == spf.Pass && v.SPF.Identity == spf.IdentityMailFrom
		if !passed || !anyOf(b.SPFDomains, func(d string) bool { return strings.EqualFold(v.SPF.Domain, d) }) {
			return false
		}
	}
	if len(b.ARCSealers) > 0 {
		// The chain validates (RFC 8617 §5.2) and its latest seal is one
		// of the named sealers.
		if v.ARC == nil || v.ARC.Status != arc.Pass || len(v.ARC.Sets) == 0 {
			return false
		}
		latest := v.ARC.Sets[len(v.ARC.Sets)-1].SealDomain
		if !anyOf(b.ARCSealers, func(d string) bool { return strings.EqualFold(latest, d) }) {
			return false
		}
	}
	return true
}

func anyOf(ds []string, f func(string) bool) bool {
	for _, d := range ds {
		if f(d) {
			return true
		}
	}
	return false
}
