package quarantine

import (
	"context"
	"log/slog"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/store"
)

// MaxAuditedIDs bounds the item ids one quarantine.expire entry lists; the
// entry always carries the full count, and says how many ids it left out.
const MaxAuditedIDs = 1000

// Pruner is the part of the store a retention run uses.
type Pruner interface {
	Prune(ctx context.Context, now time.Time, evidenceRetention, quarantineRetention time.Duration) (store.PruneResult, error)
}

// Retention is a retention run: what is removed, and the audit log that
// records each removal. A zero retention keeps that kind of record.
type Retention struct {
	Store Pruner
	// Log records every run that removed anything. Nil records nothing
	// (tests of the store alone); the daemons always set it.
	Log                 *audit.Log
	EvidenceRetention   time.Duration
	QuarantineRetention time.Duration
}

// Run deletes the evidence older than the evidence retention and the
// quarantined messages past their expiry or older than the quarantine
// retention (store.Prune), then appends to the audit log one
// quarantine.expire entry naming the items removed and one evidence.expire
// entry counting the records removed, as far as each removed any. The
// rows are gone before the entries are written: when an append fails, the
// error says so and the next run cannot record what this one removed.
func (r *Retention) Run(ctx context.Context, now time.Time) (store.PruneResult, error) {
	res, err := r.Store.Prune(ctx, now, r.EvidenceRetention, r.QuarantineRetention)
	if err != nil || r.Log == nil {
		return res, err
	}
	if res.Quarantine > 0 {
		ids := res.QuarantineIDs
		omitted := 0
		if len(ids) > MaxAuditedIDs {
			ids, omitted = ids[:MaxAuditedIDs], len(ids)-MaxAuditedIDs
		}
		after, _ := audit.Marshal(struct {
			Removed   int64    `json:"removed"`
			Retention string   `json:"retention,omitempty"`
			IDs       []string `json:"ids"`
			Omitted   int      `json:"ids_omitted,omitempty"`
		}{res.Quarantine, retentionString(r.QuarantineRetention), ids, omitted})
		if _, err := r.Log.Append(ctx, audit.Event{Actor: audit.SystemActor, Action: audit.QuarantineExpire, Time: now,
			Object: audit.Object{Type: "quarantine", ID: "retention"}, After: after}); err != nil {
			return res, err
		}
	}
	if res.Evidence > 0 {
		after, _ := audit.Marshal(struct {
			Removed        int64     `json:"removed"`
			Retention      string    `json:"retention"`
			ReceivedBefore time.Time `json:"received_before"`
		}{res.Evidence, retentionString(r.EvidenceRetention), now.Add(-r.EvidenceRetention).UTC()})
		if _, err := r.Log.Append(ctx, audit.Event{Actor: audit.SystemActor, Action: audit.EvidenceExpire, Time: now,
			Object: audit.Object{Type: "evidence", ID: "retention"}, After: after}); err != nil {
			return res, err
		}
	}
	return res, nil
}

func retentionString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// Loop runs the retention every interval until ctx ends, logging what each
// run removed and any failure (the next run tries again).
func (r *Retention) Loop(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			res, err := r.Run(rctx, now)
			cancel()
			if err != nil {
				log.Error("retention pruning failed", "err", err)
				continue
			}
			if res.Evidence+res.Quarantine+res.Orphans > 0 {
				log.Info("retention pruning", "evidence", res.Evidence, "quarantine", res.Quarantine, "orphans", res.Orphans)
			}
		}
	}
}
