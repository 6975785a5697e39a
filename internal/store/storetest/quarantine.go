package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/store"
)

func quarantineItem(id string) *store.QuarantineItem {
	return &store.QuarantineItem{
		ID:         id,
		Recipients: []string{"Orders@Corp.Example", "ap@corp.example"},
		Sender:     "Bounces@Partner.Example",
		Subject:    "PO 4711 — Käse",
		Reason:     "dmarc-quarantine: DMARC fail, p=quarantine",
		ReceivedAt: base,
		ExpiresAt:  base.Add(30 * 24 * time.Hour),
	}
}

// messageBody returns n bytes of a deterministic message.
func messageBody(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	b.WriteString("From: orders@partner.example\r\nTo: orders@corp.example\r\nSubject: PO\r\n\r\n")
	for b.Len() < n {
		fmt.Fprintf(&b, "line %d %x\r\n", b.Len(), rng.Uint64())
	}
	return b.Bytes()[:n]
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readBody(t *testing.T, s store.Store, id string) []byte {
	t.Helper()
	rc, err := s.OpenQuarantineBody(ctxFor(t), id)
	if err != nil {
		t.Fatalf("OpenQuarantineBody(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading body of %s: %v", id, err)
	}
	return b
}

func testQuarantineRoundTrip(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	body := messageBody(1, 10<<10)
	item := quarantineItem("qrt-1")
	item.ReceivedAt = base.In(time.FixedZone("EST", -5*3600))
	if err := s.PutQuarantine(ctx, item, bytes.NewReader(body)); err != nil {
		t.Fatalf("PutQuarantine: %v", err)
	}
	if item.State != store.Held {
		t.Errorf("zero state stored as %q, want held", item.State)
	}
	if item.Size != int64(len(body)) || item.SHA256 != sha(body) {
		t.Errorf("item says %d bytes %s, body is %d bytes %s", item.Size, item.SHA256, len(body), sha(body))
	}
	if item.UpdatedAt.IsZero() || item.UpdatedBy != "" {
		t.Errorf("creation stamp: %v by %q", item.UpdatedAt, item.UpdatedBy)
	}
	got, err := s.GetQuarantine(ctx, "qrt-1")
	if err != nil {
		t.Fatalf("GetQuarantine: %v", err)
	}
	if diff := cmp.Diff(item, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if b := readBody(t, s, "qrt-1"); !bytes.Equal(b, body) {
		t.Errorf("body read back differs (%d bytes, want %d)", len(b), len(body))
	}
	// Stored with a given digest that matches, and an empty body.
	empty := quarantineItem("qrt-empty")
	empty.SHA256 = strings.ToUpper(sha(nil))
	if err := s.PutQuarantine(ctx, empty, bytes.NewReader(nil)); err != nil {
		t.Fatalf("PutQuarantine of an empty body with its digest: %v", err)
	}
	if b := readBody(t, s, "qrt-empty"); len(b) != 0 {
		t.Errorf("empty body read back as %d bytes", len(b))
	}
	for name, err := range map[string]error{
		"GetQuarantine": func() error { _, err := s.GetQuarantine(ctx, "nope"); return err }(),
		"OpenBody":      func() error { _, err := s.OpenQuarantineBody(ctx, "nope"); return err }(),
		"Update":        s.UpdateQuarantineState(ctx, "nope", store.Held, store.Released, "admin"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of a missing id = %v, want ErrNotFound", name, err)
		}
	}
}

func testQuarantineValidation(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	bad := map[string]func(*store.QuarantineItem){
		"empty id":        func(it *store.QuarantineItem) { it.ID = "" },
		"path traversal":  func(it *store.QuarantineItem) { it.ID = "../../etc/passwd" },
		"slash":           func(it *store.QuarantineItem) { it.ID = "a/b" },
		"hidden":          func(it *store.QuarantineItem) { it.ID = ".hidden" },
		"too long":        func(it *store.QuarantineItem) { it.ID = strings.Repeat("a", store.MaxIDLength+1) },
		"no received_at":  func(it *store.QuarantineItem) { it.ReceivedAt = time.Time{} },
		"no expires_at":   func(it *store.QuarantineItem) { it.ExpiresAt = time.Time{} },
		"unknown state":   func(it *store.QuarantineItem) { it.State = "limbo" },
		"negative size":   func(it *store.QuarantineItem) { it.Size = -1 },
		"nul in id":       func(it *store.QuarantineItem) { it.ID = "a\x00b" },
		"non-ascii id":    func(it *store.QuarantineItem) { it.ID = "käse" },
		"space in id":     func(it *store.QuarantineItem) { it.ID = "a b" },
		"leading hyphen":  func(it *store.QuarantineItem) { it.ID = "-rf" },
		"backslash in id": func(it *store.QuarantineItem) { it.ID = `a\b` },
	}
	for name, mutate := range bad {
		it := quarantineItem("valid")
		mutate(it)
		if err := s.PutQuarantine(ctx, it, strings.NewReader("body")); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: PutQuarantine = %v, want ErrInvalid", name, err)
		}
	}
	if err := s.PutQuarantine(ctx, nil, strings.NewReader("body")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("nil item: %v, want ErrInvalid", err)
	}
	if err := s.PutQuarantine(ctx, quarantineItem("nobody"), nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("nil body: %v, want ErrInvalid", err)
	}
	page, err := s.ListQuarantine(ctx, store.QuarantineQuery{})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("invalid items stored: %d, %v", len(page.Items), err)
	}
	if _, err := s.ListQuarantine(ctx, store.QuarantineQuery{State: "limbo"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ListQuarantine with an unknown state = %v, want ErrInvalid", err)
	}
}

func testQuarantineDigestMismatch(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	body := messageBody(2, 2000)
	it := quarantineItem("mismatch-sha")
	it.SHA256 = sha([]byte("something else"))
	if err := s.PutQuarantine(ctx, it, bytes.NewReader(body)); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("wrong digest: %v, want ErrCorrupt", err)
	}
	it = quarantineItem("mismatch-size")
	it.Size = int64(len(body) + 1)
	if err := s.PutQuarantine(ctx, it, bytes.NewReader(body)); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("wrong size: %v, want ErrCorrupt", err)
	}
	for _, id := range []string{"mismatch-sha", "mismatch-size"} {
		if _, err := s.GetQuarantine(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s was stored: %v", id, err)
		}
	}
	// A failed read of the body stores nothing.
	it = quarantineItem("read-fails")
	r := io.MultiReader(bytes.NewReader(body), iotestErrReader{})
	if err := s.PutQuarantine(ctx, it, r); err == nil {
		t.Error("PutQuarantine with a failing reader succeeded")
	}
	if _, err := s.GetQuarantine(ctx, "read-fails"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("item with a failed body was stored: %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testQuarantineDuplicate(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	first := messageBody(3, 4000)
	if err := s.PutQuarantine(ctx, quarantineItem("qdup"), bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	second := messageBody(4, 5000)
	if err := s.PutQuarantine(ctx, quarantineItem("qdup"), bytes.NewReader(second)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second put = %v, want ErrExists", err)
	}
	if b := readBody(t, s, "qdup"); !bytes.Equal(b, first) {
		t.Error("a refused duplicate replaced the stored body")
	}
	// Concurrent puts of one id: one wins, and the body is the winner's.
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.PutQuarantine(ctx, quarantineItem("qrace"), bytes.NewReader(messageBody(uint64(100+i), 3000)))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("puts %d and %d of one id both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("put %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent put succeeded")
	}
	if b := readBody(t, s, "qrace"); !bytes.Equal(b, messageBody(uint64(100+winner), 3000)) {
		t.Error("stored body is not the winner's")
	}
}

func testQuarantineDurableAcrossReopen(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	body := messageBody(5, 10<<10)
	item := quarantineItem("qdurable")
	if err := s.PutQuarantine(ctx, item, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	// Not closed: PutQuarantine's return is the 250's promise.
	s2 := h.reopenOrSkip(t, s)
	got, err := s2.GetQuarantine(ctx, "qdurable")
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if diff := cmp.Diff(item, got); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	b := readBody(t, s2, "qdurable")
	if sha(b) != got.SHA256 || sha(b) != sha(body) {
		t.Errorf("body after reopen has sha256 %s, item %s, original %s", sha(b), got.SHA256, sha(body))
	}
}

func testQuarantineStateCAS(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	if err := s.PutQuarantine(ctx, quarantineItem("cas"), strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	step := func(from, to store.QuarantineState, actor string) error {
		return s.UpdateQuarantineState(ctx, "cas", from, to, actor)
	}
	if err := step(store.Held, store.ReleaseRequested, "alice@corp.example"); err != nil {
		t.Fatalf("held → release-requested: %v", err)
	}
	got, err := s.GetQuarantine(ctx, "cas")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.ReleaseRequested || got.UpdatedBy != "alice@corp.example" || got.UpdatedAt.IsZero() {
		t.Errorf("after the request: state %s by %q at %v", got.State, got.UpdatedBy, got.UpdatedAt)
	}

	// A stale compare fails and says what the state is.
	err = step(store.Held, store.Released, "bob")
	var sc *store.StateConflictError
	if !errors.Is(err, store.ErrStateConflict) || !errors.As(err, &sc) {
		t.Fatalf("stale CAS = %v, want a StateConflictError", err)
	}
	if sc.ID != "cas" || sc.Expected != store.Held || sc.Actual != store.ReleaseRequested {
		t.Errorf("conflict = %+v", sc)
	}
	if got, _ := s.GetQuarantine(ctx, "cas"); got.State != store.ReleaseRequested || got.UpdatedBy != "alice@corp.example" {
		t.Errorf("a failed CAS changed the item: %s by %s", got.State, got.UpdatedBy)
	}

	// Transitions the state machine refuses, whatever the stored state.
	for _, tr := range [][2]store.QuarantineState{
		{store.Deleted, store.Held}, {store.Released, store.Held}, {store.Held, store.Held}, {store.Deleted, store.Released},
	} {
		if err := step(tr[0], tr[1], "x"); !errors.Is(err, store.ErrInvalidTransition) {
			t.Errorf("%s → %s = %v, want ErrInvalidTransition", tr[0], tr[1], err)
		}
	}
	if err := step("limbo", store.Held, "x"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown state = %v, want ErrInvalid", err)
	}

	// Refused request back to held, then released, then deleted.
	for _, tr := range [][2]store.QuarantineState{
		{store.ReleaseRequested, store.Held}, {store.Held, store.Released}, {store.Released, store.Deleted},
	} {
		if err := step(tr[0], tr[1], "carol"); err != nil {
			t.Fatalf("%s → %s: %v", tr[0], tr[1], err)
		}
	}
	if got, _ := s.GetQuarantine(ctx, "cas"); got.State != store.Deleted {
		t.Errorf("final state %s", got.State)
	}
}

func testQuarantineStateCASConcurrent(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	if err := s.PutQuarantine(ctx, quarantineItem("race"), strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := store.Released
			if i%2 == 1 {
				to = store.Deleted
			}
			errs[i] = s.UpdateQuarantineState(ctx, "race", store.Held, to, fmt.Sprintf("admin-%d", i))
		}()
	}
	wg.Wait()
	winners := 0
	var winner int
	for i, err := range errs {
		if err == nil {
			winners++
			winner = i
		} else if !errors.Is(err, store.ErrStateConflict) {
			t.Errorf("updater %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d concurrent CAS from held succeeded, want 1", winners)
	}
	got, err := s.GetQuarantine(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedBy != fmt.Sprintf("admin-%d", winner) {
		t.Errorf("updated by %q, winner was admin-%d", got.UpdatedBy, winner)
	}
}

func testQuarantineDeleteRemovesBody(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	if err := s.PutQuarantine(ctx, quarantineItem("del"), strings.NewReader("secret body")); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateQuarantineState(ctx, "del", store.Held, store.Deleted, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenQuarantineBody(ctx, "del"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body of a deleted item: %v, want ErrNotFound", err)
	}
	got, err := s.GetQuarantine(ctx, "del")
	if err != nil || got.State != store.Deleted {
		t.Errorf("deleted item stays listed until pruned: %v, %v", got, err)
	}
}

func testQuarantineList(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	type qspec struct {
		id     string
		at     time.Time
		sender string
		rcpts  []string
		state  store.QuarantineState
	}
	var specs []qspec
	for i := range 24 {
		sp := qspec{
			id:     fmt.Sprintf("ql-%02d", i),
			at:     base.Add(time.Duration(i/2) * time.Hour),
			sender: fmt.Sprintf("s%d@partner.example", i%3),
			rcpts:  []string{rcptPool[i%len(rcptPool)]},
			state:  store.Held,
		}
		if i%4 == 0 {
			sp.rcpts = append(sp.rcpts, rcptPool[(i+1)%len(rcptPool)])
		}
		it := quarantineItem(sp.id)
		it.ReceivedAt, it.Sender = sp.at, strings.ToUpper(sp.sender)
		it.Recipients = nil
		for _, r := range sp.rcpts {
			it.Recipients = append(it.Recipients, "<"+strings.ToUpper(r)+">")
		}
		if err := s.PutQuarantine(ctx, it, strings.NewReader(sp.id)); err != nil {
			t.Fatal(err)
		}
		switch i % 5 {
		case 1:
			sp.state = store.ReleaseRequested
		case 2:
			sp.state = store.Released
		}
		if sp.state != store.Held {
			if err := s.UpdateQuarantineState(ctx, sp.id, store.Held, sp.state, "admin"); err != nil {
				t.Fatal(err)
			}
		}
		specs = append(specs, sp)
	}
	expectQ := func(match func(qspec) bool) []string {
		var out []string
		for i := len(specs) - 1; i >= 0; i-- {
			if match(specs[i]) {
				out = append(out, specs[i].id)
			}
		}
		return out
	}
	list := func(q store.QuarantineQuery) []string {
		t.Helper()
		var out []string
		for pages := 0; ; pages++ {
			page, err := s.ListQuarantine(ctx, q)
			if err != nil {
				t.Fatalf("ListQuarantine(%+v): %v", q, err)
			}
			for _, it := range page.Items {
				out = append(out, it.ID)
			}
			if page.Next == "" || pages > 50 {
				return out
			}
			q.Cursor = page.Next
		}
	}
	has := func(rs []string, r string) bool {
		for _, x := range rs {
			if x == r {
				return true
			}
		}
		return false
	}
	cases := []struct {
		name  string
		q     store.QuarantineQuery
		match func(qspec) bool
	}{
		{"all", store.QuarantineQuery{}, func(qspec) bool { return true }},
		{"all paged", store.QuarantineQuery{Limit: 5}, func(qspec) bool { return true }},
		{"held", store.QuarantineQuery{State: store.Held}, func(q qspec) bool { return q.state == store.Held }},
		{"release requested", store.QuarantineQuery{State: store.ReleaseRequested},
			func(q qspec) bool { return q.state == store.ReleaseRequested }},
		{"recipient", store.QuarantineQuery{Recipient: "Alice@corp.example"},
			func(q qspec) bool { return has(q.rcpts, "alice@corp.example") }},
		{"recipient held paged", store.QuarantineQuery{Recipient: "bob@corp.example", State: store.Held, Limit: 2},
			func(q qspec) bool { return has(q.rcpts, "bob@corp.example") && q.state == store.Held }},
		{"sender", store.QuarantineQuery{Sender: "<s1@partner.example>"},
			func(q qspec) bool { return q.sender == "s1@partner.example" }},
		{"window", store.QuarantineQuery{Since: base.Add(3 * time.Hour), Until: base.Add(8 * time.Hour)},
			func(q qspec) bool { return !q.at.Before(base.Add(3*time.Hour)) && q.at.Before(base.Add(8*time.Hour)) }},
	}
	for _, tc := range cases {
		want := expectQ(tc.match)
		if len(want) == 0 {
			t.Errorf("%s: the data set has no item for this filter", tc.name)
		}
		if diff := cmp.Diff(want, list(tc.q)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	page, err := s.ListQuarantine(ctx, store.QuarantineQuery{Limit: 10, Offset: 20})
	if err != nil || len(page.Items) != 4 || page.Items[0].ID != "ql-03" {
		t.Errorf("offset 20: %v, %d items", err, len(page.Items))
	}
}

func testConfigVersions(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	const hash, text = "sha256:0123abcd", "listeners:\n  - name: mx\n    address: \":25\"\n"
	if err := s.PutConfigVersion(ctx, hash, text); err != nil {
		t.Fatalf("PutConfigVersion: %v", err)
	}
	if err := s.PutConfigVersion(ctx, hash, text); err != nil {
		t.Errorf("storing the same version again: %v", err)
	}
	if err := s.PutConfigVersion(ctx, hash, text+"# changed\n"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same hash, other text = %v, want ErrConflict", err)
	}
	if err := s.PutConfigVersion(ctx, "", text); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty hash = %v, want ErrInvalid", err)
	}
	got, err := s.GetConfigVersion(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != hash || got.YAML != text || got.CreatedAt.IsZero() {
		t.Errorf("GetConfigVersion = %+v", got)
	}
	if _, err := s.GetConfigVersion(ctx, "sha256:other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing version = %v, want ErrNotFound", err)
	}
}

func testPruneEvidence(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	now := base.Add(100 * 24 * time.Hour)
	day := 24 * time.Hour
	for i, age := range []time.Duration{10 * day, 8 * day, 7*day + time.Second, 7*day - time.Second, day, 0} {
		r := FullRecord(fmt.Sprintf("age-%d", i), now.Add(-age))
		r.Envelope.RcptTo = []string{fmt.Sprintf("rcpt%d@corp.example", i)}
		if err := s.PutEvidence(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Prune(ctx, now, 0, 0)
	if err != nil || res.Evidence != 0 {
		t.Fatalf("Prune with no evidence retention: %+v, %v", res, err)
	}
	res, err = s.Prune(ctx, now, 7*day, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evidence != 3 {
		t.Errorf("pruned %d records, want 3", res.Evidence)
	}
	for i := range 6 {
		_, err := s.GetEvidence(ctx, fmt.Sprintf("age-%d", i))
		if gone := errors.Is(err, store.ErrNotFound); gone != (i < 3) {
			t.Errorf("age-%d: err %v after pruning 7 days", i, err)
		}
		page, err := s.QueryEvidence(ctx, store.EvidenceQuery{Recipient: fmt.Sprintf("rcpt%d@corp.example", i)})
		if err != nil || (len(page.Records) == 0) != (i < 3) {
			t.Errorf("recipient index of age-%d after prune: %d records, %v", i, len(page.Records), err)
		}
	}
	if _, err := s.Prune(ctx, now, -day, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("negative retention = %v, want ErrInvalid", err)
	}
}

func testPruneQuarantine(t *testing.T, h *harness) {
	s := h.newStore(t)
	ctx := ctxFor(t)
	now := base.Add(100 * 24 * time.Hour)
	day := 24 * time.Hour
	items := []struct {
		id                string
		received, expires time.Time
		gone              bool
	}{
		{"expired", now.Add(-2 * day), now.Add(-time.Hour), true},
		{"expires-now", now.Add(-2 * day), now, true},
		{"fresh", now.Add(-2 * day), now.Add(day), false},
		{"beyond-retention", now.Add(-40 * day), now.Add(30 * day), true},
		{"within-retention", now.Add(-29 * day), now.Add(30 * day), false},
	}
	for _, it := range items {
		q := quarantineItem(it.id)
		q.ReceivedAt, q.ExpiresAt = it.received, it.expires
		if err := s.PutQuarantine(ctx, q, strings.NewReader("body of "+it.id)); err != nil {
			t.Fatal(err)
		}
	}
	// Evidence is kept: quarantine pruning does not touch it.
	if err := s.PutEvidence(ctx, FullRecord("kept", now.Add(-400*day))); err != nil {
		t.Fatal(err)
	}
	res, err := s.Prune(ctx, now, 0, 30*day)
	if err != nil {
		t.Fatal(err)
	}
	if res.Quarantine != 3 || res.Evidence != 0 {
		t.Errorf("Prune = %+v, want 3 quarantine items, 0 evidence", res)
	}
	removed := slices.Sorted(slices.Values(res.QuarantineIDs))
	if want := []string{"beyond-retention", "expired", "expires-now"}; !slices.Equal(removed, want) {
		t.Errorf("Prune removed %v, want %v", removed, want)
	}
	for _, it := range items {
		_, err := s.GetQuarantine(ctx, it.id)
		_, berr := s.OpenQuarantineBody(ctx, it.id)
		if it.gone {
			if !errors.Is(err, store.ErrNotFound) || !errors.Is(berr, store.ErrNotFound) {
				t.Errorf("%s: item %v, body %v; want both gone", it.id, err, berr)
			}
		} else if err != nil || berr != nil {
			t.Errorf("%s: item %v, body %v; want kept", it.id, err, berr)
		} else if b := readBody(t, s, it.id); string(b) != "body of "+it.id {
			t.Errorf("%s: body %q", it.id, b)
		}
	}
	// Without a retention, only expiry removes items.
	res, err = s.Prune(ctx, now.Add(2*day), 0, 0)
	if err != nil || res.Quarantine != 1 || !slices.Equal(res.QuarantineIDs, []string{"fresh"}) {
		t.Errorf("second prune: %+v, %v; want the one item expired since", res, err)
	}
	if _, err := s.GetEvidence(ctx, "kept"); err != nil {
		t.Errorf("evidence with no retention: %v", err)
	}
}
