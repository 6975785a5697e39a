package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/store"
)

// RunGovernance runs the conformance suite of store.GovernanceStore: the
// audit log (linear appends under concurrency, bytes kept exactly, the
// queries), governed objects (compare-and-set committed together with
// their audit entry), hit counters, notification marks and audited
// quarantine state changes. newStore returns a new, empty store that
// implements store.GovernanceStore.
func RunGovernance(t *testing.T, newStore func(t *testing.T) store.Store) {
	gs := func(t *testing.T) (store.Store, store.GovernanceStore) {
		s := newStore(t)
		g, ok := s.(store.GovernanceStore)
		if !ok {
			t.Fatalf("%T does not implement store.GovernanceStore", s)
		}
		return s, g
	}
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store, store.GovernanceStore)
	}{
		{"AuditAppendAndHead", testAuditAppendAndHead},
		{"AuditRefusesBrokenLink", testAuditRefusesBrokenLink},
		{"AuditConcurrentAppendsStayLinear", testAuditConcurrent},
		{"AuditQuery", testAuditQuery},
		{"GovernedCAS", testGovernedCAS},
		{"GovernedAtomicWithAudit", testGovernedAtomicWithAudit},
		{"GovernedList", testGovernedList},
		{"Hits", testHits},
		{"Notified", testNotified},
		{"QuarantineStateAudited", testQuarantineStateAudited},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, g := gs(t)
			tc.fn(t, s, g)
		})
	}
}

// chained returns a builder of a well-linked entry with a stand-in hash
// (package audit defines the real one; the store only keeps bytes).
func chained(actor, action, objType, objID string, at time.Time, before, after []byte) store.AuditBuilder {
	return func(head *store.AuditEntry) (*store.AuditEntry, error) {
		e := &store.AuditEntry{Seq: 1, Time: at, Actor: actor, Action: action, ObjectType: objType, ObjectID: objID,
			Before: before, After: after, PrevHash: strings.Repeat("0", 64)}
		if head != nil {
			e.Seq, e.PrevHash = head.Seq+1, head.Hash
		}
		sum := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s|%s|%s|%s", e.Seq, actor, action, objID, before, after, e.PrevHash))
		e.Hash = hex.EncodeToString(sum[:])
		return e, nil
	}
}

func testAuditAppendAndHead(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	if _, err := g.AuditHead(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AuditHead of an empty log: %v, want ErrNotFound", err)
	}
	at := base.Add(time.Nanosecond) // nanoseconds survive
	before := []byte(`{"state":"requested","n":1}`)
	after := []byte(`{"state":"active","n":1, "spaced" : true}`)
	e1, err := g.AppendAudit(ctx, chained("alice", "exception.request", "exception", "exc-1", at, nil, before))
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	e2, err := g.AppendAudit(ctx, chained("bob", "exception.approve", "exception", "exc-1", at.Add(time.Second), before, after))
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if e1.Seq != 1 || e2.Seq != 2 || e2.PrevHash != e1.Hash {
		t.Fatalf("entries not chained: %+v %+v", e1, e2)
	}
	head, err := g.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e2, head); diff != "" {
		t.Errorf("head (-appended +read):\n%s", diff)
	}
	var all []*store.AuditEntry
	if err := g.ScanAudit(ctx, 0, func(e *store.AuditEntry) error { all = append(all, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*store.AuditEntry{e1, e2}, all); diff != "" {
		t.Errorf("scan (-appended +read):\n%s", diff)
	}
	if all[0].Before != nil || !bytes.Equal(all[1].After, after) || !all[0].Time.Equal(at) {
		t.Errorf("bytes or time not kept: %+v", all)
	}
	stop := errors.New("stop")
	n := 0
	if err := g.ScanAudit(ctx, 0, func(*store.AuditEntry) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanAudit stop: %v after %d", err, n)
	}
	n = 0
	if err := g.ScanAudit(ctx, 1, func(e *store.AuditEntry) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("ScanAudit after 1: %v, %d entries", err, n)
	}
}

func testAuditRefusesBrokenLink(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	if _, err := g.AppendAudit(ctx, chained("alice", "config.load", "config", "c", base, nil, nil)); err != nil {
		t.Fatal(err)
	}
	wrong := []struct {
		name string
		mod  func(*store.AuditEntry)
	}{
		{"seq repeats", func(e *store.AuditEntry) { e.Seq-- }},
		{"seq skips", func(e *store.AuditEntry) { e.Seq++ }},
		{"prev hash", func(e *store.AuditEntry) { e.PrevHash = strings.Repeat("f", 64) }},
		{"no actor", func(e *store.AuditEntry) { e.Actor = "" }},
		{"no time", func(e *store.AuditEntry) { e.Time = time.Time{} }},
	}
	for _, w := range wrong {
		_, err := g.AppendAudit(ctx, func(head *store.AuditEntry) (*store.AuditEntry, error) {
			e, err := chained("bob", "config.load", "config", "c", base, nil, nil)(head)
			w.mod(e)
			return e, err
		})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", w.name, err)
		}
	}
	boom := errors.New("boom")
	if _, err := g.AppendAudit(ctx, func(*store.AuditEntry) (*store.AuditEntry, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("builder error: %v", err)
	}
	head, err := g.AuditHead(ctx)
	if err != nil || head.Seq != 1 {
		t.Errorf("refused appends changed the log: head %+v, %v", head, err)
	}
}

func testAuditConcurrent(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := g.AppendAudit(ctx, chained(fmt.Sprintf("actor-%d", i), "config.load", "config", "c", base, nil, nil))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent append: %v", err)
		}
	}
	var prev *store.AuditEntry
	seen := map[string]bool{}
	err := g.ScanAudit(ctx, 0, func(e *store.AuditEntry) error {
		want := int64(1)
		if prev != nil {
			want = prev.Seq + 1
			if e.PrevHash != prev.Hash {
				t.Errorf("entry %d does not link to %d", e.Seq, prev.Seq)
			}
		}
		if e.Seq != want {
			t.Errorf("seq %d, want %d", e.Seq, want)
		}
		seen[e.Actor] = true
		prev = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || prev.Seq != n {
		t.Errorf("%d actors, last seq %d; want %d", len(seen), prev.Seq, n)
	}
}

func testAuditQuery(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	add := func(actor, action, typ, id string, at time.Time) {
		t.Helper()
		if _, err := g.AppendAudit(ctx, chained(actor, action, typ, id, at, nil, []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	add("alice", "exception.request", "exception", "e1", base)
	add("bob", "exception.approve", "exception", "e1", base.Add(time.Hour))
	add("alice", "quarantine.release-request", "quarantine", "q1", base.Add(2*time.Hour))
	add("bob", "quarantine.release", "quarantine", "q1", base.Add(3*time.Hour))
	add("carol", "exceptionx.other", "x", "x1", base.Add(4*time.Hour))

	seqs := func(q store.AuditQuery) []int64 {
		t.Helper()
		p, err := g.ListAudit(ctx, q)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", q, err)
		}
		var out []int64
		for _, e := range p.Entries {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, c := range []struct {
		q    store.AuditQuery
		want []int64
	}{
		{store.AuditQuery{}, []int64{1, 2, 3, 4, 5}},
		{store.AuditQuery{Actor: "alice"}, []int64{1, 3}},
		{store.AuditQuery{Action: "exception."}, []int64{1, 2}},
		{store.AuditQuery{Action: "quarantine.release"}, []int64{4}},
		{store.AuditQuery{ObjectType: "quarantine", ObjectID: "q1"}, []int64{3, 4}},
		{store.AuditQuery{Since: base.Add(time.Hour), Until: base.Add(3 * time.Hour)}, []int64{2, 3}},
		{store.AuditQuery{AfterSeq: 3}, []int64{4, 5}},
		{store.AuditQuery{Actor: "nobody"}, nil},
	} {
		if diff := cmp.Diff(c.want, seqs(c.q)); diff != "" {
			t.Errorf("ListAudit(%+v) (-want +got):\n%s", c.q, diff)
		}
	}
	p, err := g.ListAudit(ctx, store.AuditQuery{Limit: 2})
	if err != nil || len(p.Entries) != 2 || !p.More {
		t.Errorf("page of 2: %d entries, more %v, %v", len(p.Entries), p.More, err)
	}
	p, err = g.ListAudit(ctx, store.AuditQuery{Limit: 2, AfterSeq: 3})
	if err != nil || len(p.Entries) != 2 || p.More {
		t.Errorf("last page: %d entries, more %v, %v", len(p.Entries), p.More, err)
	}
	if _, err := g.ListAudit(ctx, store.AuditQuery{Limit: -1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("negative limit: %v", err)
	}
}

func testGovernedCAS(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	o := &store.GovernedObject{Kind: "exception", ID: "exc-1", State: "requested", Expires: base.Add(time.Hour), Data: []byte(`{"a":1}`)}
	if err := g.PutGoverned(ctx, o, 0, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	if o.Version != 1 || o.UpdatedAt.IsZero() {
		t.Errorf("after create: version %d, updated %v", o.Version, o.UpdatedAt)
	}
	if err := g.PutGoverned(ctx, &store.GovernedObject{Kind: "exception", ID: "exc-1", State: "x", Data: []byte(`{}`)}, 0, nil); !errors.Is(err, store.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	upd := *o
	upd.State, upd.Data = "active", []byte(`{"a":2}`)
	if err := g.PutGoverned(ctx, &upd, 1, nil); err != nil || upd.Version != 2 {
		t.Fatalf("update: %v, version %d", err, upd.Version)
	}
	stale := *o
	stale.State = "revoked"
	if err := g.PutGoverned(ctx, &stale, 1, nil); !errors.Is(err, store.ErrChanged) {
		t.Errorf("stale update: %v, want ErrChanged", err)
	}
	missing := &store.GovernedObject{Kind: "exception", ID: "nope", State: "active", Data: []byte(`{}`)}
	if err := g.PutGoverned(ctx, missing, 3, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a missing object: %v, want ErrNotFound", err)
	}
	got, err := g.GetGoverned(ctx, "exception", "exc-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "active" || got.Version != 2 || string(got.Data) != `{"a":2}` || !got.Expires.Equal(o.Expires) {
		t.Errorf("stored: %+v", got)
	}
	if _, err := g.GetGoverned(ctx, "sealer", "exc-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other kind: %v, want ErrNotFound", err)
	}
	for _, bad := range []*store.GovernedObject{
		{Kind: "", ID: "a", Data: []byte(`{}`)},
		{Kind: "exception", ID: "../a", Data: []byte(`{}`)},
		{Kind: "exception", ID: "a"},
	} {
		if err := g.PutGoverned(ctx, bad, 0, nil); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutGoverned(%+v): %v, want ErrInvalid", bad, err)
		}
	}
	// Never expiring objects keep a zero time.
	forever := &store.GovernedObject{Kind: "settings", ID: "notifications", State: "active", Data: []byte(`{}`)}
	if err := g.PutGoverned(ctx, forever, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := g.GetGoverned(ctx, "settings", "notifications"); err != nil || !got.Expires.IsZero() {
		t.Errorf("settings: %+v, %v", got, err)
	}
}

func testGovernedAtomicWithAudit(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	o := &store.GovernedObject{Kind: "sealer", ID: "s1", State: "requested", Data: []byte(`{"v":1}`)}
	if err := g.PutGoverned(ctx, o, 0, chained("alice", "sealer.request", "sealer", "s1", base, nil, o.Data)); err != nil {
		t.Fatal(err)
	}
	head, err := g.AuditHead(ctx)
	if err != nil || head.Action != "sealer.request" || head.ObjectID != "s1" {
		t.Fatalf("audit entry of the creation: %+v, %v", head, err)
	}
	// An audit entry that cannot be appended undoes the change.
	upd := &store.GovernedObject{Kind: "sealer", ID: "s1", State: "active", Data: []byte(`{"v":2}`)}
	boom := errors.New("boom")
	err = g.PutGoverned(ctx, upd, 1, func(*store.AuditEntry) (*store.AuditEntry, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("failing audit: %v", err)
	}
	got, err := g.GetGoverned(ctx, "sealer", "s1")
	if err != nil || got.State != "requested" || got.Version != 1 {
		t.Errorf("change committed without its audit entry: %+v, %v", got, err)
	}
	// A refused change appends no audit entry.
	err = g.PutGoverned(ctx, upd, 7, chained("bob", "sealer.approve", "sealer", "s1", base, nil, nil))
	if !errors.Is(err, store.ErrChanged) {
		t.Fatalf("stale: %v", err)
	}
	if h, _ := g.AuditHead(ctx); h.Seq != 1 {
		t.Errorf("audit entry appended for a refused change: head %d", h.Seq)
	}
}

func testGovernedList(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	for _, id := range []string{"c", "a", "b"} {
		if err := g.PutGoverned(ctx, &store.GovernedObject{Kind: "exception", ID: id, State: "active", Data: []byte(`{}`)}, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.PutGoverned(ctx, &store.GovernedObject{Kind: "sealer", ID: "z", State: "active", Data: []byte(`{}`)}, 0, nil); err != nil {
		t.Fatal(err)
	}
	list, err := g.ListGoverned(ctx, "exception")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range list {
		ids = append(ids, o.ID)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, ids); diff != "" {
		t.Errorf("ListGoverned (-want +got):\n%s", diff)
	}
	if list, err := g.ListGoverned(ctx, "none"); err != nil || len(list) != 0 {
		t.Errorf("empty kind: %v, %v", list, err)
	}
}

func testHits(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	if err := g.AddHits(ctx, []store.Hits{
		{Kind: "exception", ID: "e1", Count: 3, LastUsed: base.Add(time.Minute)},
		{Kind: "sealer", ID: "s1", Count: 1, LastUsed: base},
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.AddHits(ctx, []store.Hits{{Kind: "exception", ID: "e1", Count: 2, LastUsed: base}}); err != nil {
		t.Fatal(err)
	}
	hits, err := g.GetHits(ctx, "exception")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.Hits{"e1": {Kind: "exception", ID: "e1", Count: 5, LastUsed: base.Add(time.Minute)}}
	if diff := cmp.Diff(want, hits); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
	if err := g.AddHits(ctx, []store.Hits{{Kind: "exception", ID: "e1", Count: -1}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("negative count: %v", err)
	}
	if err := g.AddHits(ctx, nil); err != nil {
		t.Errorf("no hits: %v", err)
	}
}

func testNotified(t *testing.T, _ store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	if err := g.MarkNotified(ctx, "digest", []string{"q1|a@x", "q2|a@x"}, base); err != nil {
		t.Fatal(err)
	}
	if err := g.MarkNotified(ctx, "digest", []string{"q1|a@x", "q3|b@x"}, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	keys := []string{"q1|a@x", "q2|a@x", "q3|b@x", "q4|b@x"}
	for i := range 600 { // more than one chunk of parameters
		keys = append(keys, fmt.Sprintf("filler-%d", i))
	}
	got, err := g.Notified(ctx, "digest", keys)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"q1|a@x": true, "q2|a@x": true, "q3|b@x": true}, got); diff != "" {
		t.Errorf("Notified (-want +got):\n%s", diff)
	}
	if got, _ := g.Notified(ctx, "alert", keys[:3]); len(got) != 0 {
		t.Errorf("kinds are separate: %v", got)
	}
	n, err := g.PruneNotified(ctx, base.Add(time.Minute))
	if err != nil || n != 2 {
		t.Errorf("PruneNotified: %d, %v; want 2", n, err)
	}
	if got, _ := g.Notified(ctx, "digest", keys[:3]); len(got) != 1 || !got["q3|b@x"] {
		t.Errorf("after prune: %v", got)
	}
}

func testQuarantineStateAudited(t *testing.T, s store.Store, g store.GovernanceStore) {
	ctx := ctxFor(t)
	body := messageBody(3, 2000)
	if err := s.PutQuarantine(ctx, quarantineItem("qa-1"), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	err := g.UpdateQuarantineStateAudited(ctx, "qa-1", store.Held, store.Released, "bob",
		chained("bob", "quarantine.release", "quarantine", "qa-1", base, []byte(`"held"`), []byte(`"released"`)))
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.GetQuarantine(ctx, "qa-1")
	if err != nil || it.State != store.Released || it.UpdatedBy != "bob" {
		t.Fatalf("after release: %+v, %v", it, err)
	}
	if h, err := g.AuditHead(ctx); err != nil || h.Action != "quarantine.release" {
		t.Errorf("audit entry: %+v, %v", h, err)
	}
	// A conflict appends nothing.
	err = g.UpdateQuarantineStateAudited(ctx, "qa-1", store.Held, store.Deleted, "carol",
		chained("carol", "quarantine.delete", "quarantine", "qa-1", base, nil, nil))
	var sc *store.StateConflictError
	if !errors.As(err, &sc) || sc.Actual != store.Released {
		t.Errorf("conflict: %v", err)
	}
	if h, _ := g.AuditHead(ctx); h.Seq != 1 {
		t.Errorf("audit entry appended for a refused change: head %d", h.Seq)
	}
	if err := g.UpdateQuarantineStateAudited(ctx, "nope", store.Held, store.Deleted, "carol", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing item: %v", err)
	}
	if err := g.UpdateQuarantineStateAudited(ctx, "qa-1", store.Deleted, store.Held, "carol", nil); !errors.Is(err, store.ErrInvalidTransition) {
		t.Errorf("deleted → held: %v", err)
	}
	err = g.UpdateQuarantineStateAudited(ctx, "qa-1", store.Released, store.Deleted, "carol",
		chained("carol", "quarantine.delete", "quarantine", "qa-1", base, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenQuarantineBody(ctx, "qa-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body of a deleted item: %v", err)
	}
}
