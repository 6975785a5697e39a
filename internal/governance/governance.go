// Package governance implements Portcullis's governed exceptions and
// trusted ARC sealers: stored objects with an owner, a justification, a
// requester and a different approver, a mandatory expiry within a maximum
// lifetime, a state (requested, active, expired, revoked) and hit counters.
//
// An exception lets one partner's mail through the DMARC failure rules
// (DESIGN policy rule 6) only when it comes through the partner's verified
// sending infrastructure: a client address range, a DKIM signature that
// verifies for a named d= (RFC 6376 §6.1), an SPF pass for a named MAIL
// FROM domain (RFC 7208 §2.6.3), or an ARC chain that validates with a named
// latest sealer (RFC 8617 §5.2). A trusted ARC sealer (rule 5) is trusted
// to have seen DMARC pass before forwarding changed the message (RFC 8617
// §7.2). Both are evaluated by the pure policy.Decide; this package keeps
// them, governs their life, and hands the active ones to the gateway in a
// Snapshot that checks expiry against the message's time at each decision.
//
// Every change is an audit event (package audit) committed in the same
// transaction as the change itself.
package governance

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"portcullis/internal/audit"
)

// Errors. They are permanent for the given arguments, except the store's
// own (store.ErrUnavailable), which are passed through.
var (
	// ErrInvalid: a request is incomplete or malformed (no binding, no
	// expiry, an expiry beyond the maximum lifetime, a bad domain).
	ErrInvalid = errors.New("governance: invalid request")
	// ErrSelfApproval: the approver is the requester.
	ErrSelfApproval = errors.New("governance: a second person must approve")
	// ErrForbidden: the actor's role does not allow the operation.
	ErrForbidden = errors.New("governance: not allowed")
	// ErrState: the object is not in a state that allows the operation
	// (approving an active exception, renewing a revoked one).
	ErrState = errors.New("governance: not allowed in this state")
	// ErrExpired: the object (or the request) has expired.
	ErrExpired = errors.New("governance: expired")
	// ErrNotFound: no object with that id.
	ErrNotFound = errors.New("governance: not found")
)

// Kind is the type of a governed object.
type Kind string

// The kinds of governed objects.
const (
	KindException Kind = "exception"
	KindSealer    Kind = "sealer"
)

func (k Kind) valid() bool { return k == KindException || k == KindSealer }

// actions returns the audit actions of kind k.
func (k Kind) actions() (request, approve, revoke, renew, expire audit.Action) {
	if k == KindSealer {
		return audit.SealerRequest, audit.SealerApprove, audit.SealerRevoke, audit.SealerRenew, audit.SealerExpire
	}
	return audit.ExceptionRequest, audit.ExceptionApprove, audit.ExceptionRevoke, audit.ExceptionRenew, audit.ExceptionExpire
}

// State is where a governed object is in its life.
type State string

// The states. Requested → active (approved by a second person) →
// expired (its expiry passed) or revoked; a requested object expires
// too if nobody approves it before its expiry.
const (
	Requested State = "requested"
	Active    State = "active"
	Expired   State = "expired"
	Revoked   State = "revoked"
)

// Role is what an actor may do.
type Role string

// The roles. An operator requests exceptions, sealers, renewals and
// quarantine releases, and revokes; an admin also approves.
const (
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

func (r Role) allows(need Role) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleOperator:
		return need == RoleOperator
	}
	return false
}

// Roles maps actor names to roles. When it is empty, every actor has
// every role (a single-operator set-up; the config review flags it); the
// approver must still differ from the requester.
type Roles map[string]Role

// Authorize checks that actor is a usable name and, when roles are
// configured, that it has need.
func (r Roles) Authorize(actor string, need Role) error {
	if !audit.ValidActor(actor) {
		return fmt.Errorf("%w: actor %q (a name without spaces is required)", ErrInvalid, actor)
	}
	if len(r) == 0 {
		return nil
	}
	have, ok := r.lookup(actor)
	if !ok {
		return fmt.Errorf("%w: %s is not a configured user", ErrForbidden, actor)
	}
	if !have.allows(need) {
		return fmt.Errorf("%w: %s is %s, this needs %s", ErrForbidden, actor, have, need)
	}
	return nil
}

// lookup finds actor's role; names compare without regard to case.
func (r Roles) lookup(actor string) (Role, bool) {
	if role, ok := r[actor]; ok {
		return role, true
	}
	for a, role := range r {
		if strings.EqualFold(a, actor) {
			return role, true
		}
	}
	return "", false
}

// Role returns actor's role ("" when roles are configured and actor has
// none; RoleAdmin when no roles are configured).
func (r Roles) Role(actor string) Role {
	if len(r) == 0 {
		return RoleAdmin
	}
	role, _ := r.lookup(actor)
	return role
}

// Validate checks every role name.
func (r Roles) Validate() error {
	for a, role := range r {
		if !audit.ValidActor(a) {
			return fmt.Errorf("%w: users: %q is not an actor name", ErrInvalid, a)
		}
		if role != RoleOperator && role != RoleAdmin {
			return fmt.Errorf("%w: users.%s: role %q is not operator or admin", ErrInvalid, a, role)
		}
	}
	return nil
}

// Defaults of Config.
const (
	DefaultMaxLifetime     = 90 * 24 * time.Hour
	DefaultWarnBefore      = 14 * 24 * time.Hour
	DefaultRefreshInterval = 2 * time.Second
	DefaultFlushInterval   = 10 * time.Second
)

// Config configures governance. The zero value of every field means its
// default.
type Config struct {
	// MaxLifetime bounds how far ahead an exception or sealer may expire,
	// counted from its request or renewal. Default 90 days.
	MaxLifetime Duration `yaml:"max_lifetime" json:"max_lifetime"`
	// WarnBefore is how long before its expiry an owner is warned and the
	// config review reports an object as expiring soon. Default 14 days.
	WarnBefore Duration `yaml:"warn_before" json:"warn_before"`
	// Users maps actors to roles (operator, admin). Default: none, every
	// actor has every role.
	Users Roles `yaml:"users" json:"users"`
	// RefreshInterval is how often the gateway looks for changes made by
	// another process (the CLI) on the same store. Default 2s.
	RefreshInterval Duration `yaml:"refresh_interval" json:"refresh_interval"`
	// FlushInterval is how often hit counters are written. Default 10s.
	FlushInterval Duration `yaml:"flush_interval" json:"flush_interval"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = Duration(DefaultMaxLifetime)
	}
	if c.WarnBefore <= 0 {
		c.WarnBefore = Duration(DefaultWarnBefore)
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = Duration(DefaultRefreshInterval)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = Duration(DefaultFlushInterval)
	}
	return c
}

// Validate checks c.
func (c Config) Validate() error {
	if c.MaxLifetime < 0 || c.WarnBefore < 0 || c.RefreshInterval < 0 || c.FlushInterval < 0 {
		return fmt.Errorf("%w: negative duration", ErrInvalid)
	}
	return c.Users.Validate()
}

// Duration is a time.Duration written as Go writes it ("36h", "90m") or in
// days and weeks ("90d", "2w"), in YAML and JSON.
type Duration time.Duration

// ParseDuration parses "90d", "2w", "1d12h" or anything time.ParseDuration
// accepts.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%w: duration %q", ErrInvalid, s)
		}
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit *= 7
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest == "" {
		if s == "" {
			return 0, fmt.Errorf("%w: empty duration", ErrInvalid)
		}
		return total, nil
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("%w: duration %q (use e.g. 90d, 2w, 36h)", ErrInvalid, s)
	}
	return total + d, nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	t := time.Duration(d)
	if t > 0 && t%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", t/(24*time.Hour))
	}
	return t.String()
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML and JSON).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
