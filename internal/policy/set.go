package policy

import (
	"fmt"
	"sort"
)

// Set is the policy of a gateway: one Policy for every inbound path, and
// per-listener overrides. An override changes only the fields it sets;
// every field it leaves empty comes from Default, so that no listener can
// lose a protection (own-domain protection, exceptions, trusted sealers)
// by omission.
type Set struct {
	// Default applies to every listener.
	Default Policy `yaml:"default" json:"default"`
	// Listeners maps a listener name to the fields that differ on it.
	// A list (own_domain.domains, trusted_arc_sealers.sealers, exceptions)
	// given in an override replaces the default's list.
	Listeners map[string]Policy `yaml:"listeners" json:"listeners"`
}

// For returns the policy of listener: Default with the listener's
// override laid over it.
func (s *Set) For(listener string) *Policy {
	p := s.Default
	o, ok := s.Listeners[listener]
	if !ok {
		return &p
	}
	str := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	// owner sets a rule's owner: the listener's owner for that rule, else
	// the listener's policy owner, else the default's.
	owner := func(dst *string, v string) {
		if v == "" {
			v = o.Owner
		}
		str(dst, v)
	}
	rule := func(dst *Rule, v Rule) {
		if v.Action != "" {
			dst.Action = v.Action
		}
		owner(&dst.Owner, v.Owner)
	}
	str(&p.Owner, o.Owner)
	rule(&p.Structure, o.Structure)
	rule(&p.DMARCTempError, o.DMARCTempError)
	rule(&p.DMARCPermError, o.DMARCPermError)
	rule(&p.DMARCReject, o.DMARCReject)
	rule(&p.DMARCQuarantine, o.DMARCQuarantine)
	rule(&p.DMARCNone, o.DMARCNone)
	if o.AuthTempError.Action != "" {
		p.AuthTempError.Action = o.AuthTempError.Action
	}
	owner(&p.AuthTempError.Owner, o.AuthTempError.Owner)
	if o.OwnDomain.Domains != nil {
		p.OwnDomain.Domains = o.OwnDomain.Domains
	}
	if o.OwnDomain.Exact {
		p.OwnDomain.Exact = true
	}
	if o.OwnDomain.Action != "" {
		p.OwnDomain.Action = o.OwnDomain.Action
	}
	owner(&p.OwnDomain.Owner, o.OwnDomain.Owner)
	if o.SPFWithoutDMARC.OnFail != "" {
		p.SPFWithoutDMARC.OnFail = o.SPFWithoutDMARC.OnFail
	}
	owner(&p.SPFWithoutDMARC.Owner, o.SPFWithoutDMARC.Owner)
	if o.TrustedARC.Sealers != nil {
		p.TrustedARC.Sealers = o.TrustedARC.Sealers
	}
	if o.TrustedARC.AllowUntrustedLaterHops {
		p.TrustedARC.AllowUntrustedLaterHops = true
	}
	owner(&p.TrustedARC.Owner, o.TrustedARC.Owner)
	if o.Exceptions != nil {
		p.Exceptions = o.Exceptions
	}
	return &p
}

// Validate checks the default policy and the policy of every listener;
// errors name the listener.
func (s *Set) Validate() error {
	if err := s.Default.Validate(); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	names := make([]string, 0, len(s.Listeners))
	for n := range s.Listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("%w: listeners: empty listener name", ErrInvalid)
		}
		if err := s.For(n).Validate(); err != nil {
			return fmt.Errorf("listeners.%s: %w", n, err)
		}
	}
	return nil
}
