// Package policy implements the one decision Portcullis makes about an
// inbound message: deliver, quarantine, reject or defer, from the Verdict
// of package analysis and the SMTP envelope.
//
// Decide is a pure function: no I/O, no clock (the time comes in the
// Envelope), no randomness. Each Decision names the rule that decided, the
// team that owns the rule, the reason in words and the SMTP reply (RFC
// 5321 §4.2, enhanced status codes of RFC 3463 and RFC 7372 §3).
//
// The rules, in the order they apply (see docs/policy.md):
//
//  1. structure: no From field, several From fields, a From field with
//     addresses in several domains or no usable domain, a header that
//     does not parse (RFC 5322 §3.6, RFC 9989 §5.3.1) → reject;
//  2. DMARC temperror → defer; permerror → treated as no policy, tagged;
//  3. own-domain protection: From in a protected domain and DMARC not
//     pass → reject, whatever the published policy;
//  4. DMARC fail: the policy in effect (after t=y, RFC 9989 §4.7, or
//     RFC 7489 pct= sampling lowered it) reject → reject, quarantine →
//     quarantine, none → deliver tagged; with no DMARC policy, SPF fail
//     → local choice (tag by default);
//  5. a trusted ARC sealer whose validating chain recorded DMARC pass at
//     its first hop (RFC 8617 §7.2) turns rule 4's reject or quarantine
//     into deliver;
//  6. an exception scoped to the From domain and bound to verified
//     sending infrastructure may soften rules 3, 4 and the SPF rule;
//
// and, for any reject or quarantine still standing, a temperror of SPF,
// DKIM or ARC that could have changed the outcome → defer (fail closed).
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
)

// DefaultOwner is the team accountable for every rule that names no owner.
const DefaultOwner = "email-security"

// ErrInvalid is wrapped by every error of Validate.
var ErrInvalid = errors.New("policy: invalid")

// Rule configures one rule: what it does and who is accountable for it.
type Rule struct {
	// Action is what the rule does with a message it applies to. Empty
	// means the rule's default (see the Policy field).
	Action evidence.Action `yaml:"action" json:"action"`
	// Owner is the team accountable for the rule. Empty means
	// Policy.Owner.
	Owner string `yaml:"owner" json:"owner"`
}

// TempErrorAction is what the auth-temperror rule does.
type TempErrorAction string

// The auth-temperror actions.
const (
	// TempErrorDefer defers (451) a message that would be rejected or
	// quarantined while a temperror could have changed its outcome.
	TempErrorDefer TempErrorAction = "defer"
	// TempErrorIgnore decides as if the temperror were a failure.
	TempErrorIgnore TempErrorAction = "ignore"
)

// TempErrorRule configures the auth-temperror rule.
type TempErrorRule struct {
	// Action is "defer" (default) or "ignore".
	Action TempErrorAction `yaml:"action" json:"action"`
	// Owner is the team accountable for the rule; empty means
	// Policy.Owner.
	Owner string `yaml:"owner" json:"owner"`
}

// OwnDomainRule configures own-domain protection (DESIGN rule 3).
type OwnDomainRule struct {
	// Domains are the protected domains: a message whose From is in one
	// of them (or a subdomain, unless Exact) and whose DMARC result is
	// not pass gets Action. Default: none.
	Domains []string `yaml:"domains" json:"domains"`
	// Exact protects the listed names only, not their subdomains.
	// Default false: subdomains are protected too.
	Exact bool `yaml:"exact" json:"exact"`
	// Action defaults to reject.
	Action evidence.Action `yaml:"action" json:"action"`
	// Owner is the team accountable for the rule; empty means
	// Policy.Owner.
	Owner string `yaml:"owner" json:"owner"`
}

// SPFAction is what the spf-fail-no-dmarc rule does with an SPF fail.
type SPFAction string

// The SPF actions.
const (
	// SPFIgnore delivers without a tag.
	SPFIgnore SPFAction = "ignore"
	// SPFTag delivers with a tag naming the failure.
	SPFTag SPFAction = "tag"
	// SPFQuarantine quarantines.
	SPFQuarantine SPFAction = "quarantine"
	// SPFReject rejects (550 5.7.23).
	SPFReject SPFAction = "reject"
)

// SPFRule configures what an SPF fail means when the From domain has no
// DMARC policy (DMARC none, or permerror treated as none). RFC 7208 §8.4
// lets a receiver reject on fail; with no DMARC policy the domain owner
// has not asked for it, and forwarding breaks SPF, so the default only
// tags.
type SPFRule struct {
	// OnFail is ignore, tag (default), quarantine or reject.
	OnFail SPFAction `yaml:"on_fail" json:"on_fail"`
	// Owner is the team accountable for the rule; empty means
	// Policy.Owner.
	Owner string `yaml:"owner" json:"owner"`
}

// TrustedSealer is one ARC sealer whose word on DMARC is accepted. The
// type is a struct so that governance (owner, approval, expiry) can be
// added without changing the list's shape.
type TrustedSealer struct {
	// Domain is the ARC-Seal d= of the sealer. Required.
	Domain string `yaml:"domain" json:"domain"`
	// Owner is the team accountable for trusting this sealer; empty means
	// the ARC rule's owner.
	Owner string `yaml:"owner" json:"owner"`
	// Note says why the sealer is trusted.
	Note string `yaml:"note" json:"note"`
}

// ARCRule configures trusted ARC sealers (DESIGN rule 5).
type ARCRule struct {
	// Sealers are the trusted sealers. Default: none (the rule is off).
	Sealers []TrustedSealer `yaml:"sealers" json:"sealers"`
	// AllowUntrustedLaterHops accepts a chain in which hops after the
	// first were sealed by sealers not in Sealers. Default false: every
	// sealer of the chain must be trusted, since a later hop may have
	// changed the message after the first hop saw DMARC pass (the chain
	// still validates: ARC-Seals do not cover the body).
	AllowUntrustedLaterHops bool `yaml:"allow_untrusted_later_hops" json:"allow_untrusted_later_hops"`
	// Owner is the team accountable for the rule; empty means
	// Policy.Owner.
	Owner string `yaml:"owner" json:"owner"`
}

// Policy is the configurable decision. Every field's zero value means its
// default, so that the zero Policy decides like Default().
type Policy struct {
	// Owner is the team accountable for every rule that names no owner.
	// Default DefaultOwner ("email-security").
	Owner string `yaml:"owner" json:"owner"`
	// Structure (rule ids structure-*): default action reject.
	Structure Rule `yaml:"structure" json:"structure"`
	// DMARCTempError (dmarc-temperror): default action defer.
	DMARCTempError Rule `yaml:"dmarc_temperror" json:"dmarc_temperror"`
	// DMARCPermError (dmarc-permerror): the message is treated as having
	// no DMARC policy; default action deliver, tagged.
	DMARCPermError Rule `yaml:"dmarc_permerror" json:"dmarc_permerror"`
	// AuthTempError (auth-temperror): default defer.
	AuthTempError TempErrorRule `yaml:"auth_temperror" json:"auth_temperror"`
	// OwnDomain (own-domain): default action reject, no domains.
	OwnDomain OwnDomainRule `yaml:"own_domain" json:"own_domain"`
	// DMARCReject (dmarc-reject): default action reject.
	DMARCReject Rule `yaml:"dmarc_reject" json:"dmarc_reject"`
	// DMARCQuarantine (dmarc-quarantine): default action quarantine.
	DMARCQuarantine Rule `yaml:"dmarc_quarantine" json:"dmarc_quarantine"`
	// DMARCNone (dmarc-none): DMARC fail under p=none; default action
	// deliver, tagged.
	DMARCNone Rule `yaml:"dmarc_none" json:"dmarc_none"`
	// SPFWithoutDMARC (spf-fail-no-dmarc): default tag.
	SPFWithoutDMARC SPFRule `yaml:"spf_without_dmarc" json:"spf_without_dmarc"`
	// TrustedARC (arc-trusted-sealer): default no sealers.
	TrustedARC ARCRule `yaml:"trusted_arc_sealers" json:"trusted_arc_sealers"`
	// Exceptions (exception): default none. The first that matches
	// applies.
	Exceptions []Exception `yaml:"exceptions" json:"exceptions"`
}

// Default returns the defaults of DESIGN "Policy semantics", every field
// filled in.
func Default() *Policy {
	p := (&Policy{}).withDefaults()
	return &p
}

// withDefaults returns a copy of p with every empty field set to its
// default and domain names normalised.
func (p *Policy) withDefaults() Policy {
	q := *p
	if q.Owner == "" {
		q.Owner = DefaultOwner
	}
	rule := func(r *Rule, a evidence.Action) {
		if r.Action == "" {
			r.Action = a
		}
		if r.Owner == "" {
			r.Owner = q.Owner
		}
	}
	rule(&q.Structure, evidence.Reject)
	rule(&q.DMARCTempError, evidence.Defer)
	rule(&q.DMARCPermError, evidence.Deliver)
	rule(&q.DMARCReject, evidence.Reject)
	rule(&q.DMARCQuarantine, evidence.Quarantine)
	rule(&q.DMARCNone, evidence.Deliver)
	if q.AuthTempError.Action == "" {
		q.AuthTempError.Action = TempErrorDefer
	}
	if q.AuthTempError.Owner == "" {
		q.AuthTempError.Owner = q.Owner
	}
	if q.OwnDomain.Action == "" {
		q.OwnDomain.Action = evidence.Reject
	}
	if q.OwnDomain.Owner == "" {
		q.OwnDomain.Owner = q.Owner
	}
	q.OwnDomain.Domains = normalizeAll(q.OwnDomain.Domains)
	if q.SPFWithoutDMARC.OnFail == "" {
		q.SPFWithoutDMARC.OnFail = SPFTag
	}
	if q.SPFWithoutDMARC.Owner == "" {
		q.SPFWithoutDMARC.Owner = q.Owner
	}
	if q.TrustedARC.Owner == "" {
		q.TrustedARC.Owner = q.Owner
	}
	if q.OwnDomain.Domains == nil {
		q.OwnDomain.Domains = []string{}
	}
	sealers := make([]TrustedSealer, len(q.TrustedARC.Sealers))
	for i, s := range q.TrustedARC.Sealers {
		s.Domain = normalize(s.Domain)
		if s.Owner == "" {
			s.Owner = q.TrustedARC.Owner
		}
		sealers[i] = s
	}
	q.TrustedARC.Sealers = sealers
	exc := make([]Exception, len(q.Exceptions))
	for i, e := range q.Exceptions {
		exc[i] = e.withDefaults(q.Owner)
	}
	q.Exceptions = exc
	return q
}

// normalize returns a domain name lower case, as A-labels, without the
// trailing dot; a name that cannot be normalised is returned lower case
// (Validate reports it).
func normalize(d string) string {
	n, err := dmarc.NormalizeDomain(strings.TrimSpace(d))
	if err != nil {
		return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	}
	return n
}

func normalizeAll(ds []string) []string {
	if ds == nil {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = normalize(d)
	}
	return out
}

// Validate checks p and returns an error naming the first item that is
// wrong (its YAML path and, for exceptions, its id).
func (p *Policy) Validate() error {
	bad := func(path, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, path, fmt.Sprintf(format, args...))
	}
	rules := []struct {
		path string
		r    Rule
	}{
		{"structure", p.Structure}, {"dmarc_temperror", p.DMARCTempError}, {"dmarc_permerror", p.DMARCPermError},
		{"dmarc_reject", p.DMARCReject}, {"dmarc_quarantine", p.DMARCQuarantine}, {"dmarc_none", p.DMARCNone},
	}
	for _, r := range rules {
		if r.r.Action != "" && !r.r.Action.Valid() {
			return bad(r.path+".action", "%q is not deliver, quarantine, reject or defer", r.r.Action)
		}
	}
	if a := p.OwnDomain.Action; a != "" && !a.Valid() {
		return bad("own_domain.action", "%q is not deliver, quarantine, reject or defer", a)
	}
	switch p.AuthTempError.Action {
	case "", TempErrorDefer, TempErrorIgnore:
	default:
		return bad("auth_temperror.action", "%q is not defer or ignore", p.AuthTempError.Action)
	}
	switch p.SPFWithoutDMARC.OnFail {
	case "", SPFIgnore, SPFTag, SPFQuarantine, SPFReject:
	default:
		return bad("spf_without_dmarc.on_fail", "%q is not ignore, tag, quarantine or reject", p.SPFWithoutDMARC.OnFail)
	}
	for i, d := range p.OwnDomain.Domains {
		if _, err := dmarc.NormalizeDomain(d); err != nil || !strings.Contains(strings.TrimSuffix(d, "."), ".") {
			return bad(fmt.Sprintf("own_domain.domains[%d]", i), "%q is not a domain name", d)
		}
	}
	for i, s := range p.TrustedARC.Sealers {
		if _, err := dmarc.NormalizeDomain(s.Domain); err != nil {
			return bad(fmt.Sprintf("trusted_arc_sealers.sealers[%d].domain", i), "%q is not a domain name", s.Domain)
		}
	}
	ids := map[string]int{}
	for i, e := range p.Exceptions {
		path := fmt.Sprintf("exceptions[%d]", i)
		if e.ID != "" {
			path += fmt.Sprintf(" (id %q)", e.ID)
		}
		if err := e.validate(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
		}
		if j, dup := ids[e.ID]; dup {
			return bad(path, "id already used by exceptions[%d]", j)
		}
		ids[e.ID] = i
	}
	return nil
}

// Version returns "sha256:" and the hex SHA-256 of the canonical JSON of
// the policy with its defaults filled in: two policies that decide alike
// field for field have the same version, whatever was left implicit.
func (p *Policy) Version() string {
	q := p.withDefaults()
	b, err := json.Marshal(q)
	if err != nil {
		// Every field marshals (strings, booleans, prefixes, times).
		panic("policy: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Envelope holds the SMTP facts Decide uses beside the Verdict.
type Envelope struct {
	// Listener names the inbound path (an SMTP listener or the milter),
	// for the record.
	Listener string
	// ClientIP is the SMTP client's address (exception client_cidrs).
	ClientIP netip.Addr
	// MailFrom is the envelope sender.
	MailFrom string
	// RcptTo lists the recipients.
	RcptTo []string
	// ReceivedAt is when the message was received. Exceptions are
	// checked against it for expiry; when it is zero no exception
	// applies.
	ReceivedAt time.Time
}
