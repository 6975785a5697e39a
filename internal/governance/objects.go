package governance

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"strings"
	"time"

	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/policy"
	"portcullis/internal/store"
)

// Lifecycle is what every governed object has: accountability, approval
// and expiry.
type Lifecycle struct {
	// Owner is the team (or address) accountable. Required.
	Owner string `json:"owner"`
	// Justification says why the object exists. Required.
	Justification string `json:"justification"`
	// Ticket references the change request, if any.
	Ticket string `json:"ticket,omitempty"`

	// State is the stored state; Effective gives the state at a time.
	State State `json:"state"`

	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
	ApprovedBy  string    `json:"approved_by,omitempty"`
	ApprovedAt  time.Time `json:"approved_at,omitzero"`
	// Expires is when the object stops applying. Required.
	Expires time.Time `json:"expires"`

	RevokedBy    string    `json:"revoked_by,omitempty"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
	// ExpiredAt is when the expiry was recorded (ExpireDue).
	ExpiredAt time.Time `json:"expired_at,omitzero"`

	// Renewal is a pending renewal: a new expiry waiting for a second
	// person's approval. The object keeps its current expiry meanwhile.
	Renewal *Renewal `json:"renewal,omitempty"`
	// Renewals are the renewals approved so far, oldest first.
	Renewals []Renewal `json:"renewals,omitempty"`

	// Hits is the number of messages the object decided, and LastUsed
	// when it last did. They are kept apart from the object and filled
	// in when it is read.
	Hits     int64     `json:"hits,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Renewal is a request for a new expiry.
type Renewal struct {
	Expires       time.Time `json:"expires"`
	Justification string    `json:"justification,omitempty"`
	RequestedBy   string    `json:"requested_by"`
	RequestedAt   time.Time `json:"requested_at"`
	ApprovedBy    string    `json:"approved_by,omitempty"`
	ApprovedAt    time.Time `json:"approved_at,omitzero"`
	// PreviousExpires is the expiry the approval replaced.
	PreviousExpires time.Time `json:"previous_expires,omitzero"`
}

// Effective returns the state at time now: a requested or active object
// whose expiry has passed is expired, whatever the stored state says.
func (l *Lifecycle) Effective(now time.Time) State {
	if (l.State == Requested || l.State == Active) && !now.Before(l.Expires) {
		return Expired
	}
	return l.State
}

// appliesAt reports whether the object applies to a message received at
// t: active and not expired at t.
func (l *Lifecycle) appliesAt(t time.Time) bool {
	return l.State == Active && !t.IsZero() && t.Before(l.Expires)
}

func (l *Lifecycle) life() *Lifecycle { return l }

// governed is implemented by *Exception and *Sealer.
type governed interface {
	life() *Lifecycle
	objectID() string
	kind() Kind
}

// Exception is a governed exception (DESIGN policy rule 6).
type Exception struct {
	ID string `json:"id"`
	// FromDomains are the header From domains covered. Required.
	FromDomains []string `json:"from_domains"`
	// IncludeSubdomains extends FromDomains to their subdomains.
	IncludeSubdomains bool `json:"include_subdomains,omitempty"`
	// Binding is the verified sending infrastructure; at least one kind
	// is required, and every kind listed must match.
	Binding policy.Binding `json:"binding"`
	// Recipients limits the exception to messages whose every recipient
	// is one of these addresses or in one of these domains. Empty: any
	// recipient.
	Recipients []string `json:"recipients,omitempty"`
	// Allow is what the exception allows: deliver (tagged as
	// delivered-fail) or quarantine (instead of reject).
	Allow evidence.Action `json:"allow"`
	Lifecycle
}

func (e *Exception) objectID() string { return e.ID }
func (e *Exception) kind() Kind       { return KindException }

// Sealer is a governed trusted ARC sealer (DESIGN policy rule 5).
type Sealer struct {
	ID string `json:"id"`
	// Domain is the sealer's ARC-Seal d=. Required.
	Domain string `json:"domain"`
	Lifecycle
}

func (s *Sealer) objectID() string { return s.ID }
func (s *Sealer) kind() Kind       { return KindSealer }

// ExceptionRequest is what an operator asks for.
type ExceptionRequest struct {
	// ID names the exception; empty: one is made ("exc-" and random
	// characters).
	ID                string
	FromDomains       []string
	IncludeSubdomains bool
	Binding           policy.Binding
	Recipients        []string
	// Allow is deliver (default) or quarantine.
	Allow         evidence.Action
	Owner         string
	Justification string
	Ticket        string
	// Expires is required, in the future and within the maximum
	// lifetime.
	Expires time.Time
}

// SealerRequest asks to trust an ARC sealer.
type SealerRequest struct {
	ID            string
	Domain        string
	Owner         string
	Justification string
	Ticket        string
	Expires       time.Time
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix and 8 random characters (40 bits).
func newID(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + idEncoding.EncodeToString(b[:])
}

func normDomain(field, d string) (string, error) {
	n, err := dmarc.NormalizeDomain(strings.TrimSpace(d))
	if err != nil || !strings.Contains(n, ".") {
		return "", fmt.Errorf("%w: %s %q is not a domain name", ErrInvalid, field, d)
	}
	return n, nil
}

func normDomains(field string, ds []string) ([]string, error) {
	var out []string
	for _, d := range ds {
		n, err := normDomain(field, d)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// normRecipient returns a recipient scope entry in its normal form: a
// lower-case address, or a domain.
func normRecipient(r string) (string, error) {
	r = strings.TrimSpace(r)
	r = strings.TrimPrefix(r, "@")
	if strings.Contains(r, "@") {
		a, err := mail.ParseAddress(r)
		if err != nil || a.Name != "" {
			return "", fmt.Errorf("%w: recipient %q is not an address or a domain", ErrInvalid, r)
		}
		local, dom, _ := strings.Cut(a.Address, "@")
		d, err := normDomain("recipient domain", dom)
		if err != nil {
			return "", err
		}
		return strings.ToLower(local) + "@" + d, nil
	}
	return normDomain("recipient", r)
}

// checkLifecycle validates the accountability and expiry of a request
// made at now.
func checkLifecycle(owner, justification string, expires, now time.Time, max time.Duration) error {
	switch {
	case strings.TrimSpace(owner) == "":
		return fmt.Errorf("%w: an owner is required", ErrInvalid)
	case strings.TrimSpace(justification) == "":
		return fmt.Errorf("%w: a justification is required", ErrInvalid)
	}
	return checkExpiry(expires, now, max)
}

func checkExpiry(expires, now time.Time, max time.Duration) error {
	switch {
	case expires.IsZero():
		return fmt.Errorf("%w: an expiry is required", ErrInvalid)
	case !expires.After(now):
		return fmt.Errorf("%w: the expiry %s is not in the future", ErrInvalid, expires.UTC().Format(time.RFC3339))
	case expires.Sub(now) > max:
		return fmt.Errorf("%w: the expiry %s is more than %s away (the maximum lifetime)", ErrInvalid,
			expires.UTC().Format(time.RFC3339), Duration(max))
	}
	return nil
}

// newException validates r, made by actor at now, and returns the
// exception in state requested.
func newException(r ExceptionRequest, actor string, now time.Time, max time.Duration) (*Exception, error) {
	id := r.ID
	if id == "" {
		id = newID("exc-")
	}
	if !store.ValidID(id) {
		return nil, fmt.Errorf("%w: id %q (letters, digits, '.', '_' and '-')", ErrInvalid, id)
	}
	if len(r.FromDomains) == 0 {
		return nil, fmt.Errorf("%w: at least one From domain is required", ErrInvalid)
	}
	from, err := normDomains("From domain", r.FromDomains)
	if err != nil {
		return nil, err
	}
	b := r.Binding
	if b.DKIMDomains, err = normDomains("DKIM domain", b.DKIMDomains); err != nil {
		return nil, err
	}
	if b.SPFDomains, err = normDomains("SPF domain", b.SPFDomains); err != nil {
		return nil, err
	}
	if b.ARCSealers, err = normDomains("ARC sealer", b.ARCSealers); err != nil {
		return nil, err
	}
	var cidrs []netip.Prefix
	for _, p := range b.ClientCIDRs {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: client CIDR %v", ErrInvalid, p)
		}
		if m := p.Masked(); !slices.Contains(cidrs, m) {
			cidrs = append(cidrs, m)
		}
	}
	b.ClientCIDRs = cidrs
	if len(b.ClientCIDRs) == 0 && len(b.DKIMDomains) == 0 && len(b.SPFDomains) == 0 && len(b.ARCSealers) == 0 {
		return nil, fmt.Errorf("%w: no binding: an exception must name verified sending infrastructure "+
			"(a client CIDR, a DKIM d= that must verify, an SPF-passing envelope domain or a trusted ARC sealer), "+
			"or it would let anyone spoof its From domain", ErrInvalid)
	}
	var rcpts []string
	for _, rc := range r.Recipients {
		n, err := normRecipient(rc)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(rcpts, n) {
			rcpts = append(rcpts, n)
		}
	}
	allow := r.Allow
	switch allow {
	case "":
		allow = evidence.Deliver
	case evidence.Deliver, evidence.Quarantine:
	default:
		return nil, fmt.Errorf("%w: allow %q is not deliver or quarantine", ErrInvalid, allow)
	}
	if err := checkLifecycle(r.Owner, r.Justification, r.Expires, now, max); err != nil {
		return nil, err
	}
	e := &Exception{ID: id, FromDomains: from, IncludeSubdomains: r.IncludeSubdomains, Binding: b, Recipients: rcpts, Allow: allow,
		Lifecycle: Lifecycle{Owner: strings.TrimSpace(r.Owner), Justification: strings.TrimSpace(r.Justification),
			Ticket: strings.TrimSpace(r.Ticket), State: Requested, RequestedBy: actor, RequestedAt: now.UTC(), Expires: r.Expires.UTC()}}
	// The policy's own validation, as the gateway will apply it.
	p := policy.Policy{Exceptions: e.PolicyExceptions()}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return e, nil
}

// PolicyExceptions returns e as the policy evaluates it: one
// policy.Exception per From domain, all with e's id.
func (e *Exception) PolicyExceptions() []policy.Exception {
	out := make([]policy.Exception, 0, len(e.FromDomains))
	for _, d := range e.FromDomains {
		out = append(out, policy.Exception{
			ID: e.ID, FromDomain: d, IncludeSubdomains: e.IncludeSubdomains, Binding: e.Binding, Allow: e.Allow,
			Owner: e.Owner, Justification: e.Justification, Requester: e.RequestedBy, Approver: e.ApprovedBy, Expires: e.Expires,
		})
	}
	return out
}

// coversRecipients reports whether every recipient is in e's recipient
// scope (always, when it has none).
func (e *Exception) coversRecipients(rcpts []string) bool {
	if len(e.Recipients) == 0 {
		return true
	}
	if len(rcpts) == 0 {
		return false
	}
	for _, r := range rcpts {
		addr := strings.ToLower(strings.Trim(strings.TrimSpace(r), "<>"))
		_, dom, ok := strings.Cut(addr, "@")
		if !ok {
			return false
		}
		dom = strings.TrimSuffix(dom, ".")
		if !slices.ContainsFunc(e.Recipients, func(s string) bool { return s == addr || s == dom }) {
			return false
		}
	}
	return true
}

// Describe says in a line what e covers.
func (e *Exception) Describe() string {
	var b []string
	for _, p := range e.Binding.ClientCIDRs {
		b = append(b, "client "+p.String())
	}
	for _, d := range e.Binding.DKIMDomains {
		b = append(b, "DKIM d="+d+" verified")
	}
	for _, d := range e.Binding.SPFDomains {
		b = append(b, "SPF pass for "+d)
	}
	for _, d := range e.Binding.ARCSealers {
		b = append(b, "ARC sealed by "+d)
	}
	from := strings.Join(e.FromDomains, ", ")
	if e.IncludeSubdomains {
		from += " (and subdomains)"
	}
	s := fmt.Sprintf("From %s via %s: %s", from, strings.Join(b, " and "), e.Allow)
	if len(e.Recipients) > 0 {
		s += " for " + strings.Join(e.Recipients, ", ")
	}
	return s
}

// newSealer validates r, made by actor at now.
func newSealer(r SealerRequest, actor string, now time.Time, max time.Duration) (*Sealer, error) {
	id := r.ID
	if id == "" {
		id = newID("arc-")
	}
	if !store.ValidID(id) {
		return nil, fmt.Errorf("%w: id %q (letters, digits, '.', '_' and '-')", ErrInvalid, id)
	}
	d, err := normDomain("sealer domain", r.Domain)
	if err != nil {
		return nil, err
	}
	if err := checkLifecycle(r.Owner, r.Justification, r.Expires, now, max); err != nil {
		return nil, err
	}
	return &Sealer{ID: id, Domain: d, Lifecycle: Lifecycle{Owner: strings.TrimSpace(r.Owner),
		Justification: strings.TrimSpace(r.Justification), Ticket: strings.TrimSpace(r.Ticket), State: Requested,
		RequestedBy: actor, RequestedAt: now.UTC(), Expires: r.Expires.UTC()}}, nil
}

// PolicySealer returns s as the policy evaluates it.
func (s *Sealer) PolicySealer() policy.TrustedSealer {
	return policy.TrustedSealer{Domain: s.Domain, Owner: s.Owner,
		Note: fmt.Sprintf("governed sealer %s: %s (expires %s)", s.ID, s.Justification, s.Expires.Format("2006-01-02"))}
}

// Describe says in a line what s trusts.
func (s *Sealer) Describe() string {
	return "ARC sealer " + s.Domain
}
