package quarantine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/quarantine"
	"portcullis/internal/store"
)

// TestRetentionRunAudited checks that a retention run that removes
// quarantined messages and evidence records each removal in the audit
// log (the items by id, the evidence by count), that a run removing
// nothing writes nothing, and that the chain stays valid.
func TestRetentionRunAudited(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	day := 24 * time.Hour
	f.hold(t, "po-old", t0.Add(-40*day))
	f.hold(t, "po-older", t0.Add(-50*day))
	f.hold(t, "po-new", t0.Add(-day))
	r := &quarantine.Retention{Store: f.st, Log: f.log, EvidenceRetention: 45 * day, QuarantineRetention: 30 * day}
	res, err := r.Run(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Quarantine != 2 || res.Evidence != 1 {
		t.Fatalf("removed %+v, want 2 quarantine items and 1 evidence record", res)
	}

	evs, _, err := f.log.List(ctx, audit.Filter{Action: string(audit.QuarantineExpire)})
	if err != nil || len(evs) != 1 {
		t.Fatalf("quarantine.expire entries: %d, %v", len(evs), err)
	}
	var q struct {
		Removed   int64    `json:"removed"`
		Retention string   `json:"retention"`
		IDs       []string `json:"ids"`
	}
	if err := json.Unmarshal(evs[0].After, &q); err != nil {
		t.Fatal(err)
	}
	slices.Sort(q.IDs)
	if q.Removed != 2 || q.Retention != "720h0m0s" || !slices.Equal(q.IDs, []string{"po-old", "po-older"}) ||
		evs[0].Actor != audit.SystemActor || evs[0].Object.Type != "quarantine" {
		t.Errorf("quarantine.expire entry: %+v, after %s", evs[0], evs[0].After)
	}

	evs, _, err = f.log.List(ctx, audit.Filter{Action: string(audit.EvidenceExpire)})
	if err != nil || len(evs) != 1 {
		t.Fatalf("evidence.expire entries: %d, %v", len(evs), err)
	}
	var e struct {
		Removed        int64     `json:"removed"`
		Retention      string    `json:"retention"`
		ReceivedBefore time.Time `json:"received_before"`
	}
	if err := json.Unmarshal(evs[0].After, &e); err != nil {
		t.Fatal(err)
	}
	if e.Removed != 1 || e.Retention != "1080h0m0s" || !e.ReceivedBefore.Equal(t0.Add(-45*day)) || evs[0].Object.Type != "evidence" {
		t.Errorf("evidence.expire entry: %+v, after %s", evs[0], evs[0].After)
	}
	if _, err := f.st.GetEvidence(ctx, "po-older"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("evidence past retention: %v", err)
	}
	if _, err := f.st.GetEvidence(ctx, "po-old"); err != nil {
		t.Errorf("evidence within retention: %v", err)
	}

	// Nothing left to remove: no entry.
	if res, err := r.Run(ctx, t0); err != nil || res.Quarantine+res.Evidence != 0 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	all, _, err := f.log.List(ctx, audit.Filter{})
	if err != nil || len(all) != 2 {
		t.Errorf("audit entries after an empty run: %d, %v; want 2", len(all), err)
	}
	rep, err := f.log.Verify(ctx)
	if err != nil || rep.Entries != 2 {
		t.Errorf("audit verify: %+v, %v", rep, err)
	}
}

// TestRetentionIDsBounded checks that a run removing more items than an
// entry lists names the first MaxAuditedIDs and counts the rest.
func TestRetentionIDsBounded(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	r := &quarantine.Retention{Store: prunedIDs(quarantine.MaxAuditedIDs + 5), Log: f.log}
	if _, err := r.Run(ctx, t0); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := f.log.List(ctx, audit.Filter{Action: string(audit.QuarantineExpire)})
	if len(evs) != 1 {
		t.Fatalf("entries: %d", len(evs))
	}
	var q struct {
		Removed int64    `json:"removed"`
		IDs     []string `json:"ids"`
		Omitted int      `json:"ids_omitted"`
	}
	if err := json.Unmarshal(evs[0].After, &q); err != nil {
		t.Fatal(err)
	}
	if q.Removed != quarantine.MaxAuditedIDs+5 || len(q.IDs) != quarantine.MaxAuditedIDs || q.Omitted != 5 {
		t.Errorf("removed %d, %d ids, %d omitted", q.Removed, len(q.IDs), q.Omitted)
	}
}

// prunedIDs is a store whose Prune reports n quarantine items removed.
type prunedIDs int

func (n prunedIDs) Prune(_ context.Context, _ time.Time, _, _ time.Duration) (store.PruneResult, error) {
	res := store.PruneResult{Quarantine: int64(n)}
	for i := range int(n) {
		res.QuarantineIDs = append(res.QuarantineIDs, fmt.Sprintf("item-%d", i))
	}
	return res, nil
}
