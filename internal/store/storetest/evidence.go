package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/evidence"
	"portcullis/internal/store"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testEvidenceRoundTrip(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	want := FullRecord("rt-1", base.In(time.FixedZone("CEST", 2*3600)))
	checkAllSet(t, want)

	if err := s.PutEvidence(ctx, want); err != nil {
		t.Fatalf("PutEvidence: %v", err)
	}
	got, err := s.GetEvidence(ctx, "rt-1")
	if err != nil {
		t.Fatalf("GetEvidence: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Empty (not nil) slices and a nil exception survive as such.
	sparse := FullRecord("rt-2", base)
	sparse.Envelope.RcptTo = []string{}
	sparse.Auth.DKIM = nil
	sparse.Decision.Exception = nil
	if err := s.PutEvidence(ctx, sparse); err != nil {
		t.Fatalf("PutEvidence: %v", err)
	}
	got, err = s.GetEvidence(ctx, "rt-2")
	if err != nil {
		t.Fatalf("GetEvidence: %v", err)
	}
	if diff := cmp.Diff(sparse, got); diff != "" {
		t.Errorf("round trip of a sparse record (-want +got):\n%s", diff)
	}
	// The caller may change its record after PutEvidence returned.
	want.Subject = "changed"
	got, err = s.GetEvidence(ctx, "rt-1")
	if err != nil || got.Subject == "changed" {
		t.Errorf("stored record follows the caller's later change: %v %q", err, got.Subject)
	}

	if _, err := s.GetEvidence(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEvidence of a missing id = %v, want ErrNotFound", err)
	}
}

func testEvidenceValidation(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	bad := map[string]func(r *evidence.Record){
		"empty id":       func(r *evidence.Record) { r.ID = "" },
		"id with slash":  func(r *evidence.Record) { r.ID = "a/b" },
		"id with dotdot": func(r *evidence.Record) { r.ID = "../x" },
		"zero time":      func(r *evidence.Record) { r.ReceivedAt = time.Time{} },
		"unknown action": func(r *evidence.Record) { r.Decision.Action = "accept" },
		"no action":      func(r *evidence.Record) { r.Decision.Action = "" },
		"time out of range": func(r *evidence.Record) {
			r.ReceivedAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
		},
	}
	for name, mutate := range bad {
		r := FullRecord("valid-id", base)
		mutate(r)
		if err := s.PutEvidence(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: PutEvidence = %v, want ErrInvalid", name, err)
		}
		if err := s.EnqueueEvidence(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: EnqueueEvidence = %v, want ErrInvalid", name, err)
		}
	}
	if err := s.PutEvidence(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PutEvidence(nil) = %v, want ErrInvalid", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := s.QueryEvidence(ctx, store.EvidenceQuery{})
	if err != nil || len(page.Records) != 0 {
		t.Errorf("invalid records were stored: %d, %v", len(page.Records), err)
	}
}

func testEvidenceDuplicate(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	first := FullRecord("dup", base)
	if err := s.PutEvidence(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := FullRecord("dup", base.Add(time.Hour))
	second.Subject = "second"
	if err := s.PutEvidence(ctx, second); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second PutEvidence = %v, want ErrExists", err)
	}
	if store.Temporary(store.ErrExists) {
		t.Error("ErrExists is classed temporary")
	}
	got, err := s.GetEvidence(ctx, "dup")
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != first.Subject {
		t.Errorf("duplicate overwrote the record: subject %q", got.Subject)
	}
	// A duplicate in a batch does not fail the records around it.
	if err := s.EnqueueEvidence(ctx, FullRecord("dup-before", base)); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueEvidence(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueEvidence(ctx, FullRecord("dup-after", base)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"dup-before", "dup-after"} {
		if _, err := s.GetEvidence(ctx, id); err != nil {
			t.Errorf("%s beside a duplicate in its batch: %v", id, err)
		}
	}
}

func testEvidenceEnqueueFlush(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	const n = 200
	for i := range n {
		if err := s.EnqueueEvidence(ctx, FullRecord(fmt.Sprintf("enq-%d", i), base)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	for i := range n {
		if _, err := s.GetEvidence(ctx, fmt.Sprintf("enq-%d", i)); err != nil {
			t.Fatalf("after Flush, enq-%d: %v", i, err)
		}
	}
}

// loadDataset stores the specs in order and returns them.
func loadDataset(t *testing.T, s store.Store, n int) []spec {
	t.Helper()
	ctx := ctxFor(t)
	specs := dataset(n)
	for _, sp := range specs {
		if err := s.EnqueueEvidence(ctx, sp.record()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return specs
}

// expect evaluates q over the specs the way the store must: the matching
// ids, received_at descending, later stored first among equal times.
func expect(specs []spec, match func(spec) bool) []string {
	var ids []string
	for i := len(specs) - 1; i >= 0; i-- {
		if match(specs[i]) {
			ids = append(ids, specs[i].id)
		}
	}
	// specs are stored in time order, so reverse storage order is the
	// required order; check it anyway.
	slices.SortStableFunc(ids, func(a, b string) int {
		return specs[idx(a)].at.Compare(specs[idx(b)].at) * -1
	})
	return ids
}

func idx(id string) int {
	var i int
	fmt.Sscanf(id, "q-%d", &i)
	return i
}

func ids(recs []*evidence.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func testEvidenceQueryFilters(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	specs := loadDataset(t, s, 60)
	at := func(i int) time.Time { return specs[i].at }

	cases := []struct {
		name  string
		q     store.EvidenceQuery
		match func(spec) bool
	}{
		{"all", store.EvidenceQuery{}, func(spec) bool { return true }},
		{"sender mail from", store.EvidenceQuery{Sender: "bounce@sender1.example"},
			func(s spec) bool { return s.mailFrom == "bounce@sender1.example" }},
		{"sender bracketed upper case", store.EvidenceQuery{Sender: "<BOUNCE@Sender2.EXAMPLE>"},
			func(s spec) bool { return s.mailFrom == "bounce@sender2.example" }},
		{"sender header from", store.EvidenceQuery{Sender: "CEO@from2.example"},
			func(s spec) bool { return s.fromAddr == "ceo@from2.example" }},
		{"recipient", store.EvidenceQuery{Recipient: "alice@corp.example"},
			func(s spec) bool { return slices.Contains(s.rcpts, "alice@corp.example") }},
		{"recipient bracketed", store.EvidenceQuery{Recipient: "<Carol@Other.Example>"},
			func(s spec) bool { return slices.Contains(s.rcpts, "carol@other.example") }},
		{"domain of recipients", store.EvidenceQuery{Domain: "corp.example"},
			func(s spec) bool { return slices.Contains(s.domains(), "corp.example") }},
		{"domain exact, not parent", store.EvidenceQuery{Domain: "sub.corp.example"},
			func(s spec) bool { return slices.Contains(s.domains(), "sub.corp.example") }},
		{"domain of header from", store.EvidenceQuery{Domain: "FROM1.example."},
			func(s spec) bool { return slices.Contains(s.domains(), "from1.example") }},
		{"domain of mail from", store.EvidenceQuery{Domain: "sender3.example"},
			func(s spec) bool { return slices.Contains(s.domains(), "sender3.example") }},
		{"message id bracketed", store.EvidenceQuery{MessageID: "<mid-17@mta.example>"},
			func(s spec) bool { return s.messageID == "mid-17@mta.example" }},
		{"message id bare", store.EvidenceQuery{MessageID: "mid-18@mta.example"},
			func(s spec) bool { return s.messageID == "mid-18@mta.example" }},
		{"since inclusive", store.EvidenceQuery{Since: at(40)},
			func(s spec) bool { return !s.at.Before(at(40)) }},
		{"until exclusive", store.EvidenceQuery{Until: at(10)},
			func(s spec) bool { return s.at.Before(at(10)) }},
		{"window", store.EvidenceQuery{Since: at(20), Until: at(31)},
			func(s spec) bool { return !s.at.Before(at(20)) && s.at.Before(at(31)) }},
		{"action reject", store.EvidenceQuery{Action: evidence.Reject},
			func(s spec) bool { return s.action == evidence.Reject }},
		{"action quarantine", store.EvidenceQuery{Action: evidence.Quarantine},
			func(s spec) bool { return s.action == evidence.Quarantine }},
		{"rule", store.EvidenceQuery{Rule: "own-domain"},
			func(s spec) bool { return s.rule == "own-domain" }},
		{"listener", store.EvidenceQuery{Listener: "legacy-connector"},
			func(s spec) bool { return s.listener == "legacy-connector" }},
		{"exception", store.EvidenceQuery{Exception: "exc-partner"},
			func(s spec) bool { return s.exception == "exc-partner" }},
		{"domain and action", store.EvidenceQuery{Domain: "corp.example", Action: evidence.Deliver},
			func(s spec) bool { return slices.Contains(s.domains(), "corp.example") && s.action == evidence.Deliver }},
		{"recipient in window", store.EvidenceQuery{Recipient: "bob@corp.example", Since: at(12), Until: at(50)},
			func(s spec) bool {
				return slices.Contains(s.rcpts, "bob@corp.example") && !s.at.Before(at(12)) && s.at.Before(at(50))
			}},
		{"sender listener rule", store.EvidenceQuery{Sender: "bounce@sender0.example", Listener: "mx", Rule: "dmarc-reject"},
			func(s spec) bool {
				return s.mailFrom == "bounce@sender0.example" && s.listener == "mx" && s.rule == "dmarc-reject"
			}},
		{"action and exception", store.EvidenceQuery{Action: evidence.Quarantine, Exception: "exc-partner"},
			func(s spec) bool { return s.action == evidence.Quarantine && s.exception == "exc-partner" }},
		{"everything", store.EvidenceQuery{Domain: "other.example", Recipient: "carol@other.example",
			Sender: "ceo@from3.example", Since: at(0), Until: at(59), Action: evidence.Defer, Listener: "mx"},
			func(s spec) bool {
				return slices.Contains(s.rcpts, "carol@other.example") && s.fromAddr == "ceo@from3.example" &&
					s.action == evidence.Defer && s.listener == "mx" && s.at.Before(at(59))
			}},
		{"no match", store.EvidenceQuery{Sender: "nobody@nowhere.example"}, func(spec) bool { return false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Limit = store.MaxLimit
			page, err := s.QueryEvidence(ctx, q)
			if err != nil {
				t.Fatalf("QueryEvidence: %v", err)
			}
			want := expect(specs, tc.match)
			if diff := cmp.Diff(want, ids(page.Records)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if page.Next != "" {
				t.Errorf("Next = %q on the only page", page.Next)
			}
			if tc.name != "no match" && tc.name != "everything" && len(want) == 0 {
				t.Errorf("the data set has no record for this filter; the case tests nothing")
			}
		})
	}
	// Each record comes back whole from a query, not only its id.
	page, err := s.QueryEvidence(ctx, store.EvidenceQuery{MessageID: "mid-5@mta.example"})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("query by message id: %v, %d records", err, len(page.Records))
	}
	if diff := cmp.Diff(specs[5].record(), page.Records[0]); diff != "" {
		t.Errorf("queried record (-want +got):\n%s", diff)
	}
}

func testEvidenceQueryPagination(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	specs := loadDataset(t, s, 57)

	walk := func(t *testing.T, q store.EvidenceQuery, want []string) {
		t.Helper()
		var got []string
		pages := 0
		for {
			page, err := s.QueryEvidence(ctx, q)
			if err != nil {
				t.Fatalf("page %d: %v", pages, err)
			}
			pages++
			if len(page.Records) > q.Limit {
				t.Fatalf("page %d has %d records, limit %d", pages, len(page.Records), q.Limit)
			}
			got = append(got, ids(page.Records)...)
			if page.Next == "" {
				break
			}
			if pages > len(want)+1 {
				t.Fatal("pagination does not end")
			}
			q.Cursor = page.Next
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paged ids (-want +got):\n%s", diff)
		}
		if wantPages := max(1, (len(want)+q.Limit-1)/q.Limit); pages != wantPages {
			t.Errorf("%d pages, want %d", pages, wantPages)
		}
	}
	all := expect(specs, func(spec) bool { return true })
	for _, limit := range []int{1, 2, 7, 19, 57, 100} {
		t.Run(fmt.Sprintf("cursor limit %d", limit), func(t *testing.T) {
			walk(t, store.EvidenceQuery{Limit: limit}, all)
		})
	}
	t.Run("cursor with filter", func(t *testing.T) {
		walk(t, store.EvidenceQuery{Domain: "corp.example", Limit: 3},
			expect(specs, func(s spec) bool { return slices.Contains(s.domains(), "corp.example") }))
	})
	t.Run("offset", func(t *testing.T) {
		var got []string
		for off := 0; off < len(all)+7; off += 7 {
			page, err := s.QueryEvidence(ctx, store.EvidenceQuery{Limit: 7, Offset: off})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(page.Records)...)
		}
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("offset pages (-want +got):\n%s", diff)
		}
	})
	t.Run("default limit", func(t *testing.T) {
		page, err := s.QueryEvidence(ctx, store.EvidenceQuery{})
		if err != nil || len(page.Records) != len(all) {
			t.Fatalf("got %d records, %v", len(page.Records), err)
		}
	})
	t.Run("records stored after the cursor", func(t *testing.T) {
		// A cursor stays a position: records stored later with a newer
		// time do not shift the following pages.
		first, err := s.QueryEvidence(ctx, store.EvidenceQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutEvidence(ctx, FullRecord("late-newest", base.Add(24*time.Hour))); err != nil {
			t.Fatal(err)
		}
		second, err := s.QueryEvidence(ctx, store.EvidenceQuery{Limit: 10, Cursor: first.Next})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(all[10:20], ids(second.Records)); diff != "" {
			t.Errorf("second page (-want +got):\n%s", diff)
		}
	})
}

func testEvidenceQueryInvalid(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	for name, q := range map[string]store.EvidenceQuery{
		"garbage cursor":    {Cursor: "not-a-cursor"},
		"tampered cursor":   {Cursor: "c1.!!!"},
		"cursor and offset": {Cursor: store.Cursor{ReceivedAt: base, Seq: 3}.Encode(), Offset: 2},
		"negative limit":    {Limit: -1},
		"negative offset":   {Offset: -1},
		"unknown action":    {Action: "accept"},
	} {
		if _, err := s.QueryEvidence(ctx, q); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: QueryEvidence = %v, want ErrInvalid", name, err)
		}
	}
}

func testEvidenceConcurrentPut(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	const workers, each = 64, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("c-%02d-%02d", w, i)
				at := base.Add(time.Duration(w*each+i) * time.Second)
				var err error
				if i%2 == 0 {
					err = s.PutEvidence(ctx, FullRecord(id, at))
				} else {
					err = s.EnqueueEvidence(ctx, FullRecord(id, at))
				}
				if err != nil {
					t.Errorf("put %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	q := store.EvidenceQuery{Limit: 97}
	for {
		page, err := s.QueryEvidence(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			seen[r.ID]++
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct records stored, want %d", len(seen), workers*each)
	}
	for w := range workers {
		for i := range each {
			if id := fmt.Sprintf("c-%02d-%02d", w, i); seen[id] != 1 {
				t.Errorf("%s stored %d times", id, seen[id])
			}
		}
	}
}

func testEvidenceConcurrentSameID(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	const workers = 64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := FullRecord("same", base)
			r.Subject = fmt.Sprintf("writer %d", w)
			errs[w] = s.PutEvidence(ctx, r)
		}()
	}
	wg.Wait()
	winners := 0
	var winner int
	for w, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = w
		case !errors.Is(err, store.ErrExists):
			t.Errorf("writer %d: %v, want nil or ErrExists", w, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d writers succeeded, want exactly 1", winners)
	}
	got, err := s.GetEvidence(ctx, "same")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("writer %d", winner); got.Subject != want {
		t.Errorf("stored subject %q, want the winner's %q", got.Subject, want)
	}
}

func testEvidenceDurableAcrossReopen(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	want := FullRecord("durable-1", base)
	if err := s.PutEvidence(ctx, want); err != nil {
		t.Fatal(err)
	}
	// The first store is neither flushed nor closed: what PutEvidence
	// acknowledged must be readable from a second one.
	s2 := h.reopenOrSkip(t, s)
	got, err := s2.GetEvidence(ctx, "durable-1")
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}

func testCloseDrains(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	const n = 300
	for i := range n {
		if err := s.EnqueueEvidence(ctx, FullRecord(fmt.Sprintf("drain-%03d", i), base)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"PutEvidence":     s.PutEvidence(ctx, FullRecord("after-close", base)),
		"EnqueueEvidence": s.EnqueueEvidence(ctx, FullRecord("after-close", base)),
		"Flush":           s.Flush(ctx),
		"PutQuarantine":   s.PutQuarantine(ctx, quarantineItem("after-close"), strings.NewReader("x")),
		"PutConfig":       s.PutConfigVersion(ctx, "sha256:x", "x"),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		} else if !store.Temporary(err) {
			t.Errorf("%s after Close: ErrClosed is not temporary", name)
		}
	}
	if _, err := s.GetEvidence(ctx, "drain-000"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("GetEvidence after Close = %v, want ErrClosed", err)
	}
	if _, err := s.QueryEvidence(ctx, store.EvidenceQuery{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("QueryEvidence after Close = %v, want ErrClosed", err)
	}

	s2 := h.reopenOrSkip(t, s)
	for i := range n {
		if _, err := s2.GetEvidence(ctx, fmt.Sprintf("drain-%03d", i)); err != nil {
			t.Fatalf("record enqueued before Close: %v", err)
		}
	}
}
