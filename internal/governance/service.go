package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/store"
)

// Options are the run-time dependencies of a Service.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives failures of background work (hit counters,
	// refreshes). Default slog.Default().
	Logger *slog.Logger
}

// Service keeps governed exceptions and sealers in a store, applies their
// lifecycle, and gives the gateway the active ones (Snapshot). It is safe
// for concurrent use.
type Service struct {
	st     store.GovernanceStore
	log    *audit.Log
	cfg    Config
	now    func() time.Time
	logger *slog.Logger

	snap      atomic.Pointer[Snapshot]
	refreshMu sync.Mutex

	hitsMu sync.Mutex
	hits   map[hitKey]*store.Hits
}

type hitKey struct {
	kind Kind
	id   string
}

// New returns the Service keeping its objects in the audit log's store.
func New(log *audit.Log, cfg Config, o *Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{st: log.Store(), log: log, cfg: cfg.WithDefaults(), hits: map[hitKey]*store.Hits{}}
	if o != nil {
		s.now, s.logger = o.Now, o.Logger
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.snap.Store(&Snapshot{})
	return s, nil
}

// Config returns the configuration with its defaults.
func (s *Service) Config() Config { return s.cfg }

// Now returns the service's clock.
func (s *Service) Now() time.Time { return s.now() }

func decode[T any](o *store.GovernedObject) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(o.Data, v); err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", store.ErrCorrupt, o.Kind, o.ID, err)
	}
	return v, nil
}

// storedJSON encodes a governed object without its hit counters (those
// live apart).
func storedJSON(g governed) ([]byte, error) {
	l := g.life()
	hits, last := l.Hits, l.LastUsed
	l.Hits, l.LastUsed = 0, time.Time{}
	b, err := json.Marshal(g)
	l.Hits, l.LastUsed = hits, last
	return b, err
}

// create stores a new object with its audit event.
func (s *Service) create(ctx context.Context, g governed, action audit.Action, actor string) error {
	data, err := storedJSON(g)
	if err != nil {
		return err
	}
	b, err := s.log.Builder(audit.Event{Actor: actor, Action: action, Time: g.life().RequestedAt,
		Object: audit.Object{Type: string(g.kind()), ID: g.objectID()}, After: data}, nil)
	if err != nil {
		return err
	}
	o := &store.GovernedObject{Kind: string(g.kind()), ID: g.objectID(), State: string(g.life().State), Expires: g.life().Expires, Data: data}
	if err := s.st.PutGoverned(ctx, o, 0, b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: %s %s exists already", ErrInvalid, g.kind(), g.objectID())
		}
		return err
	}
	s.refreshAfterChange(ctx)
	return nil
}

// change loads object kind/id, lets fn change it, and stores it with the
// audit event of action by actor, retrying when another writer changed it
// in between.
func change[T any, P interface {
	*T
	governed
}](ctx context.Context, s *Service, kind Kind, id, actor string, action audit.Action, fn func(P, time.Time) error) (P, error) {
	for attempt := 0; ; attempt++ {
		o, err := s.st.GetGoverned(ctx, string(kind), id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s %q", ErrNotFound, kind, id)
		}
		if err != nil {
			return nil, err
		}
		v, err := decode[T](o)
		if err != nil {
			return nil, err
		}
		p := P(v)
		now := s.now().UTC()
		if err := fn(p, now); err != nil {
			return nil, err
		}
		data, err := storedJSON(p)
		if err != nil {
			return nil, err
		}
		b, err := s.log.Builder(audit.Event{Actor: actor, Action: action, Time: now,
			Object: audit.Object{Type: string(kind), ID: id}, Before: o.Data, After: data}, nil)
		if err != nil {
			return nil, err
		}
		n := &store.GovernedObject{Kind: string(kind), ID: id, State: string(p.life().State), Expires: p.life().Expires, Data: data}
		err = s.st.PutGoverned(ctx, n, o.Version, b)
		if errors.Is(err, store.ErrChanged) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.refreshAfterChange(ctx)
		return p, nil
	}
}

// RequestException validates r and stores it as requested by actor (an
// operator or admin). It applies once a second person approves it.
func (s *Service) RequestException(ctx context.Context, r ExceptionRequest, actor string) (*Exception, error) {
	if err := s.cfg.Users.Authorize(actor, RoleOperator); err != nil {
		return nil, err
	}
	e, err := newException(r, actor, s.now(), s.cfg.MaxLifetime.Std())
	if err != nil {
		return nil, err
	}
	if err := s.create(ctx, e, audit.ExceptionRequest, actor); err != nil {
		return nil, err
	}
	return e, nil
}

// RequestSealer validates r and stores it as requested by actor. A sealer
// domain already requested or active is refused.
func (s *Service) RequestSealer(ctx context.Context, r SealerRequest, actor string) (*Sealer, error) {
	if err := s.cfg.Users.Authorize(actor, RoleOperator); err != nil {
		return nil, err
	}
	sl, err := newSealer(r, actor, s.now(), s.cfg.MaxLifetime.Std())
	if err != nil {
		return nil, err
	}
	others, err := s.Sealers(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for _, o := range others {
		if st := o.Effective(now); o.Domain == sl.Domain && (st == Requested || st == Active) {
			return nil, fmt.Errorf("%w: sealer %s is already governed by %s (%s); renew or revoke it", ErrInvalid, sl.Domain, o.ID, st)
		}
	}
	if err := s.create(ctx, sl, audit.SealerRequest, actor); err != nil {
		return nil, err
	}
	return sl, nil
}

// Approve approves the pending request of object kind/id: a new object
// (requested → active) or a renewal (the new expiry applies). The
// approver must be an admin and must not be who requested it; a request
// whose expiry has passed cannot be approved.
func (s *Service) Approve(ctx context.Context, kind Kind, id, actor string) (Lifecycle, error) {
	if !kind.valid() {
		return Lifecycle{}, fmt.Errorf("%w: kind %q", ErrInvalid, kind)
	}
	if err := s.cfg.Users.Authorize(actor, RoleAdmin); err != nil {
		return Lifecycle{}, err
	}
	_, approve, _, _, _ := kind.actions()
	fn := func(g governed, now time.Time) error {
		l := g.life()
		if r := l.Renewal; r != nil {
			if l.State == Revoked {
				return fmt.Errorf("%w: %s %s is revoked", ErrState, kind, id)
			}
			if sameActor(r.RequestedBy, actor) {
				return fmt.Errorf("%w: %s requested this renewal", ErrSelfApproval, actor)
			}
			if !now.Before(r.Expires) {
				return fmt.Errorf("%w: the renewal's expiry %s has passed", ErrExpired, r.Expires.Format(time.RFC3339))
			}
			if l.State == Requested {
				return fmt.Errorf("%w: %s %s was never approved", ErrState, kind, id)
			}
			done := *r
			done.ApprovedBy, done.ApprovedAt, done.PreviousExpires = actor, now, l.Expires
			l.Renewals = append(l.Renewals, done)
			l.Renewal = nil
			l.Expires, l.State, l.ExpiredAt = r.Expires, Active, time.Time{}
			return nil
		}
		switch st := l.Effective(now); {
		case st == Expired && l.State == Requested:
			return fmt.Errorf("%w: the request expired on %s; request it again", ErrExpired, l.Expires.Format(time.RFC3339))
		case st != Requested:
			return fmt.Errorf("%w: %s %s is %s, there is nothing to approve", ErrState, kind, id, st)
		}
		if sameActor(l.RequestedBy, actor) {
			return fmt.Errorf("%w: %s requested it", ErrSelfApproval, actor)
		}
		l.State, l.ApprovedBy, l.ApprovedAt = Active, actor, now
		return nil
	}
	return s.apply(ctx, kind, id, actor, approve, fn)
}

// Revoke revokes object kind/id at once (any state but revoked): it
// stops applying as soon as the gateway's snapshot is refreshed. A
// reason is required.
func (s *Service) Revoke(ctx context.Context, kind Kind, id, actor, reason string) (Lifecycle, error) {
	if !kind.valid() {
		return Lifecycle{}, fmt.Errorf("%w: kind %q", ErrInvalid, kind)
	}
	if err := s.cfg.Users.Authorize(actor, RoleOperator); err != nil {
		return Lifecycle{}, err
	}
	if strings.TrimSpace(reason) == "" {
		return Lifecycle{}, fmt.Errorf("%w: a reason is required", ErrInvalid)
	}
	_, _, revoke, _, _ := kind.actions()
	return s.apply(ctx, kind, id, actor, revoke, func(g governed, now time.Time) error {
		l := g.life()
		if l.State == Revoked {
			return fmt.Errorf("%w: %s %s is revoked already", ErrState, kind, id)
		}
		l.State, l.RevokedBy, l.RevokedAt, l.RevokeReason, l.Renewal = Revoked, actor, now, strings.TrimSpace(reason), nil
		return nil
	})
}

// Renew asks for a new expiry for object kind/id (active or expired, not
// revoked). A renewal is a new decision: it applies only once a second
// person approves it (Approve), and the object keeps its current expiry
// meanwhile. The new expiry must be within the maximum lifetime from now.
func (s *Service) Renew(ctx context.Context, kind Kind, id string, expires time.Time, justification, actor string) (Lifecycle, error) {
	if !kind.valid() {
		return Lifecycle{}, fmt.Errorf("%w: kind %q", ErrInvalid, kind)
	}
	if err := s.cfg.Users.Authorize(actor, RoleOperator); err != nil {
		return Lifecycle{}, err
	}
	_, _, _, renew, _ := kind.actions()
	return s.apply(ctx, kind, id, actor, renew, func(g governed, now time.Time) error {
		l := g.life()
		switch st := l.Effective(now); st {
		case Active, Expired:
		default:
			return fmt.Errorf("%w: %s %s is %s; only an active or expired one can be renewed", ErrState, kind, id, st)
		}
		if l.State == Requested {
			return fmt.Errorf("%w: %s %s was never approved; request it again", ErrState, kind, id)
		}
		if l.Renewal != nil {
			return fmt.Errorf("%w: a renewal requested by %s is pending approval", ErrState, l.Renewal.RequestedBy)
		}
		if err := checkExpiry(expires, now, s.cfg.MaxLifetime.Std()); err != nil {
			return err
		}
		if !expires.After(l.Expires) {
			return fmt.Errorf("%w: the new expiry is not later than the current one (%s)", ErrInvalid, l.Expires.Format(time.RFC3339))
		}
		l.Renewal = &Renewal{Expires: expires.UTC(), Justification: strings.TrimSpace(justification), RequestedBy: actor, RequestedAt: now}
		return nil
	})
}

func (s *Service) apply(ctx context.Context, kind Kind, id, actor string, action audit.Action, fn func(governed, time.Time) error) (Lifecycle, error) {
	if kind == KindSealer {
		v, err := change(ctx, s, kind, id, actor, action, func(p *Sealer, now time.Time) error { return fn(p, now) })
		if err != nil {
			return Lifecycle{}, err
		}
		return v.Lifecycle, nil
	}
	v, err := change(ctx, s, kind, id, actor, action, func(p *Exception, now time.Time) error { return fn(p, now) })
	if err != nil {
		return Lifecycle{}, err
	}
	return v.Lifecycle, nil
}

func sameActor(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// ExpireDue records the expiry of every requested or active object whose
// expiry has passed (state expired, audit event by the system actor) and
// returns how many. Expired objects stop applying at their expiry whether
// or not this ran: the snapshot compares the expiry with each message's
// time.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	n := 0
	for _, kind := range []Kind{KindException, KindSealer} {
		objs, err := s.st.ListGoverned(ctx, string(kind))
		if err != nil {
			return n, err
		}
		_, _, _, _, expire := kind.actions()
		now := s.now()
		for _, o := range objs {
			st := State(o.State)
			if st != Requested && st != Active || now.Before(o.Expires) {
				continue
			}
			_, err := s.apply(ctx, kind, o.ID, audit.SystemActor, expire, func(g governed, now time.Time) error {
				l := g.life()
				if l.Effective(now) != Expired || l.State == Expired || l.State == Revoked {
					return errSkip
				}
				l.State, l.ExpiredAt = Expired, now
				return nil
			})
			if errors.Is(err, errSkip) {
				continue
			}
			if err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

var errSkip = errors.New("skip")

// Exception returns one exception with its hit counters.
func (s *Service) Exception(ctx context.Context, id string) (*Exception, error) {
	o, err := s.st.GetGoverned(ctx, string(KindException), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: exception %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	e, err := decode[Exception](o)
	if err != nil {
		return nil, err
	}
	hits, err := s.st.GetHits(ctx, string(KindException))
	if err != nil {
		return nil, err
	}
	s.fillHits(KindException, e.ID, &e.Lifecycle, hits)
	return e, nil
}

// Sealer returns one sealer with its hit counters.
func (s *Service) Sealer(ctx context.Context, id string) (*Sealer, error) {
	o, err := s.st.GetGoverned(ctx, string(KindSealer), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: sealer %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	v, err := decode[Sealer](o)
	if err != nil {
		return nil, err
	}
	hits, err := s.st.GetHits(ctx, string(KindSealer))
	if err != nil {
		return nil, err
	}
	s.fillHits(KindSealer, v.ID, &v.Lifecycle, hits)
	return v, nil
}

// fillHits sets the counters of l from the stored ones plus those not
// flushed yet.
func (s *Service) fillHits(kind Kind, id string, l *Lifecycle, stored map[string]store.Hits) {
	h := stored[id]
	l.Hits, l.LastUsed = h.Count, h.LastUsed
	s.hitsMu.Lock()
	if p := s.hits[hitKey{kind, id}]; p != nil {
		l.Hits += p.Count
		if p.LastUsed.After(l.LastUsed) {
			l.LastUsed = p.LastUsed
		}
	}
	s.hitsMu.Unlock()
}

// Exceptions returns every exception, with hit counters, ordered by id.
func (s *Service) Exceptions(ctx context.Context) ([]*Exception, error) {
	objs, err := s.st.ListGoverned(ctx, string(KindException))
	if err != nil {
		return nil, err
	}
	hits, err := s.st.GetHits(ctx, string(KindException))
	if err != nil {
		return nil, err
	}
	out := make([]*Exception, 0, len(objs))
	for _, o := range objs {
		e, err := decode[Exception](o)
		if err != nil {
			return nil, err
		}
		s.fillHits(KindException, e.ID, &e.Lifecycle, hits)
		out = append(out, e)
	}
	return out, nil
}

// Sealers returns every sealer, with hit counters, ordered by id.
func (s *Service) Sealers(ctx context.Context) ([]*Sealer, error) {
	objs, err := s.st.ListGoverned(ctx, string(KindSealer))
	if err != nil {
		return nil, err
	}
	hits, err := s.st.GetHits(ctx, string(KindSealer))
	if err != nil {
		return nil, err
	}
	out := make([]*Sealer, 0, len(objs))
	for _, o := range objs {
		v, err := decode[Sealer](o)
		if err != nil {
			return nil, err
		}
		s.fillHits(KindSealer, v.ID, &v.Lifecycle, hits)
		out = append(out, v)
	}
	return out, nil
}

// Expiring is an active object whose expiry is near.
type Expiring struct {
	Kind    Kind
	ID      string
	Owner   string
	Expires time.Time
	// What says in words what the object allows.
	What string
	// RenewalPending is set when a renewal waits for approval.
	RenewalPending bool
}

// ExpiringWithin returns the active objects that expire within d from now,
// soonest first: the owners to warn, and a finding of the config review.
func (s *Service) ExpiringWithin(ctx context.Context, d time.Duration) ([]Expiring, error) {
	now := s.now()
	var out []Expiring
	exc, err := s.Exceptions(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range exc {
		if e.Effective(now) == Active && e.Expires.Sub(now) <= d {
			out = append(out, Expiring{KindException, e.ID, e.Owner, e.Expires, e.Describe(), e.Renewal != nil})
		}
	}
	sl, err := s.Sealers(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range sl {
		if v.Effective(now) == Active && v.Expires.Sub(now) <= d {
			out = append(out, Expiring{KindSealer, v.ID, v.Owner, v.Expires, v.Describe(), v.Renewal != nil})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Expires.Before(out[j].Expires) })
	return out, nil
}
