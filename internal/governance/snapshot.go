package governance

import (
	"context"
	"errors"
	"strings"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/policy"
	"portcullis/internal/store"
)

// Snapshot is the set of active exceptions and sealers the gateway
// decides with, as loaded from the store. It is immutable. Expiry is
// checked against each message's time, not when the snapshot was loaded,
// so an object stops applying at its expiry to the second even if the
// snapshot is older.
type Snapshot struct {
	// Head is the audit log's head Seq when the snapshot was loaded:
	// every governed change appends to the log, so an unchanged head
	// means nothing changed.
	Head int64
	// LoadedAt is when it was loaded.
	LoadedAt   time.Time
	exceptions []*Exception
	sealers    []*Sealer
	// polExc[i] are exceptions[i] as the policy evaluates them, and
	// polSealers[i] sealers[i]: made once per load, not per message.
	polExc     [][]policy.Exception
	polSealers []policy.TrustedSealer
	nPolExc    int
}

// Exceptions returns the active exceptions of the snapshot.
func (sn *Snapshot) Exceptions() []*Exception { return sn.exceptions }

// Sealers returns the active sealers of the snapshot.
func (sn *Snapshot) Sealers() []*Sealer { return sn.sealers }

// Apply returns the policy to decide a message received with env by: base
// (nil: the defaults) with the governed exceptions and sealers that apply
// to it added after base's own. An exception applies when it is active,
// env.ReceivedAt is before its expiry, and every recipient is in its
// recipient scope; a sealer when it is active and unexpired. When none
// applies, base itself is returned. Apply does no I/O.
func (sn *Snapshot) Apply(base *policy.Policy, env policy.Envelope) *policy.Policy {
	if base == nil {
		base = &policy.Policy{}
	}
	if sn == nil || len(sn.exceptions) == 0 && len(sn.sealers) == 0 || env.ReceivedAt.IsZero() {
		return base
	}
	var exc []policy.Exception
	for i, e := range sn.exceptions {
		if e.appliesAt(env.ReceivedAt) && e.coversRecipients(env.RcptTo) {
			if exc == nil {
				exc = make([]policy.Exception, len(base.Exceptions), len(base.Exceptions)+sn.nPolExc)
				copy(exc, base.Exceptions)
			}
			exc = append(exc, sn.polExc[i]...)
		}
	}
	var sealers []policy.TrustedSealer
	for i, s := range sn.sealers {
		if s.appliesAt(env.ReceivedAt) {
			if sealers == nil {
				sealers = make([]policy.TrustedSealer, len(base.TrustedARC.Sealers), len(base.TrustedARC.Sealers)+len(sn.sealers))
				copy(sealers, base.TrustedARC.Sealers)
			}
			sealers = append(sealers, sn.polSealers[i])
		}
	}
	if exc == nil && sealers == nil {
		return base
	}
	p := *base
	if exc != nil {
		p.Exceptions = exc
	}
	if sealers != nil {
		p.TrustedARC.Sealers = sealers
	}
	return &p
}

// sealerByDomain returns the active sealer of domain.
func (sn *Snapshot) sealerByDomain(domain string) *Sealer {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, s := range sn.sealers {
		if s.Domain == domain {
			return s
		}
	}
	return nil
}

func (sn *Snapshot) hasException(id string) bool {
	for _, e := range sn.exceptions {
		if e.ID == id {
			return true
		}
	}
	return false
}

// Snapshot returns the current snapshot (empty before the first Refresh).
func (s *Service) Snapshot() *Snapshot { return s.snap.Load() }

// PolicyFor returns the policy for a message: Snapshot().Apply(base, env).
func (s *Service) PolicyFor(base *policy.Policy, env policy.Envelope) *policy.Policy {
	return s.snap.Load().Apply(base, env)
}

// Refresh reloads the snapshot if the audit log's head moved since the
// last load (a change by this process or another one), or always when
// force is set.
func (s *Service) Refresh(ctx context.Context, force bool) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	var head int64
	h, err := s.st.AuditHead(ctx)
	switch {
	case err == nil:
		head = h.Seq
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	cur := s.snap.Load()
	if !force && cur.LoadedAt != (time.Time{}) && cur.Head == head {
		return nil
	}
	sn := &Snapshot{Head: head, LoadedAt: s.now()}
	exc, err := s.st.ListGoverned(ctx, string(KindException))
	if err != nil {
		return err
	}
	for _, o := range exc {
		if State(o.State) != Active {
			continue
		}
		e, err := decode[Exception](o)
		if err != nil {
			s.logger.Error("governance: exception not loaded", "id", o.ID, "err", err)
			continue
		}
		sn.exceptions = append(sn.exceptions, e)
		pe := e.PolicyExceptions()
		sn.polExc = append(sn.polExc, pe)
		sn.nPolExc += len(pe)
	}
	sl, err := s.st.ListGoverned(ctx, string(KindSealer))
	if err != nil {
		return err
	}
	for _, o := range sl {
		if State(o.State) != Active {
			continue
		}
		v, err := decode[Sealer](o)
		if err != nil {
			s.logger.Error("governance: sealer not loaded", "id", o.ID, "err", err)
			continue
		}
		sn.sealers = append(sn.sealers, v)
		sn.polSealers = append(sn.polSealers, v.PolicySealer())
	}
	s.snap.Store(sn)
	return nil
}

// refreshAfterChange reloads the snapshot after a change made through
// this Service, so that it applies at once in this process.
func (s *Service) refreshAfterChange(ctx context.Context) {
	if err := s.Refresh(ctx, true); err != nil {
		s.logger.Error("governance: refresh after a change failed", "err", err)
	}
}

// OnDecision counts the hit of the exception or trusted sealer that
// decided rec, if any, in memory; FlushHits (or Run) writes the counters
// in batches. It does no I/O and never blocks on the store.
func (s *Service) OnDecision(_ context.Context, rec evidence.Record) {
	at := rec.ReceivedAt
	if at.IsZero() {
		at = s.now()
	}
	sn := s.snap.Load()
	if id := rec.Decision.Exception; id != nil && *id != "" && sn.hasException(*id) {
		s.countHit(KindException, *id, at)
	}
	if rec.Decision.Rule == policy.RuleARCSealer {
		// The sealer trusted is the one of the first hop (RFC 8617
		// §7.2: its ARC-Authentication-Results saw DMARC pass).
		for _, hop := range rec.Auth.ARC.Chain {
			if hop.Instance == 1 {
				if sl := sn.sealerByDomain(hop.Sealer); sl != nil {
					s.countHit(KindSealer, sl.ID, at)
				}
				break
			}
		}
	}
}

func (s *Service) countHit(kind Kind, id string, at time.Time) {
	s.hitsMu.Lock()
	defer s.hitsMu.Unlock()
	k := hitKey{kind, id}
	h := s.hits[k]
	if h == nil {
		h = &store.Hits{Kind: string(kind), ID: id}
		s.hits[k] = h
	}
	h.Count++
	if at.After(h.LastUsed) {
		h.LastUsed = at
	}
}

// FlushHits writes the counters gathered since the last flush in one
// transaction. On failure they are kept for the next flush.
func (s *Service) FlushHits(ctx context.Context) error {
	s.hitsMu.Lock()
	pending := s.hits
	s.hits = map[hitKey]*store.Hits{}
	s.hitsMu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	batch := make([]store.Hits, 0, len(pending))
	for _, h := range pending {
		batch = append(batch, *h)
	}
	if err := s.st.AddHits(ctx, batch); err != nil {
		s.hitsMu.Lock()
		for k, h := range pending {
			if cur := s.hits[k]; cur != nil {
				cur.Count += h.Count
				if h.LastUsed.After(cur.LastUsed) {
					cur.LastUsed = h.LastUsed
				}
			} else {
				s.hits[k] = h
			}
		}
		s.hitsMu.Unlock()
		return err
	}
	return nil
}

// Run keeps the snapshot fresh (every RefreshInterval, a cheap look at the
// audit head), flushes hit counters (every FlushInterval) and records
// expiries (ExpireDue, every minute) until ctx ends; then it flushes the
// counters one last time.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Refresh(ctx, true); err != nil {
		return err
	}
	refresh := time.NewTicker(s.cfg.RefreshInterval.Std())
	defer refresh.Stop()
	flush := time.NewTicker(s.cfg.FlushInterval.Std())
	defer flush.Stop()
	expire := time.NewTicker(time.Minute)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.FlushHits(fctx); err != nil {
				s.logger.Error("governance: hit counters not written", "err", err)
			}
			return nil
		case <-refresh.C:
			if err := s.Refresh(ctx, false); err != nil && ctx.Err() == nil {
				s.logger.Error("governance: refresh failed", "err", err)
			}
		case <-flush.C:
			if err := s.FlushHits(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("governance: hit counters not written", "err", err)
			}
		case <-expire.C:
			if _, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("governance: recording expiries failed", "err", err)
			}
		}
	}
}
