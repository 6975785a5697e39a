package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctxFor(t), t.TempDir(), &sqlite.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock returns a clock that advances a second per call.
func clock() func() time.Time {
	var mu sync.Mutex
	now := t0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

func newLog(t testing.TB, s store.GovernanceStore, key []byte) *audit.Log {
	t.Helper()
	l, err := audit.New(s, &audit.Options{Key: key, Now: clock()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fill appends n events: an exception requested, approved, ... alternating.
func fill(t testing.TB, l *audit.Log, n int) []*audit.Event {
	t.Helper()
	var out []*audit.Event
	for i := range n {
		before, _ := audit.Marshal(map[string]any{"state": "requested", "n": i})
		after, _ := audit.Marshal(map[string]any{"state": "active", "n": i})
		e, err := l.Append(ctxFor(t), audit.Event{
			Actor: fmt.Sprintf("user%d", i%3), Action: audit.ExceptionApprove,
			Object: audit.Object{Type: "exception", ID: fmt.Sprintf("exc-%d", i)}, Before: before, After: after,
		})
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

// db opens the store's database file directly, as someone tampering with
// it would.
func db(t *testing.T, s *sqlite.Store) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir(), sqlite.DBName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func exec(t *testing.T, d *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := d.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func wantBreak(t *testing.T, l *audit.Log, seq int64, kind audit.BreakKind, anchors ...audit.Head) {
	t.Helper()
	_, err := l.Verify(ctxFor(t), anchors...)
	var ce *audit.ChainError
	if !errors.As(err, &ce) || !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("Verify: %v, want a break (%s at %d)", err, kind, seq)
	}
	if ce.Seq != seq || ce.Kind != kind {
		t.Errorf("Verify: %v; want %s at seq %d", ce, kind, seq)
	}
}

func TestAppendAndVerify(t *testing.T) {
	s := openStore(t)
	l := newLog(t, s, nil)
	rep, err := l.Verify(ctxFor(t))
	if err != nil || rep.Entries != 0 {
		t.Fatalf("empty log: %+v, %v", rep, err)
	}
	evs := fill(t, l, 5)
	for i, e := range evs {
		if e.Seq != int64(i+1) || e.Hash != audit.ComputeHash(e) {
			t.Errorf("event %d: %+v", i, e)
		}
		if i == 0 && e.PrevHash != audit.Genesis || i > 0 && e.PrevHash != evs[i-1].Hash {
			t.Errorf("event %d does not link", i)
		}
	}
	rep, err = l.Verify(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 5 || rep.Head != (audit.Head{Seq: 5, Hash: evs[4].Hash}) || rep.MACs != 0 {
		t.Errorf("report %+v", rep)
	}
	listed, more, err := l.List(ctxFor(t), audit.Filter{Actor: "user1"})
	if err != nil || more || len(listed) != 2 || listed[0].Seq != 2 || listed[1].Seq != 5 {
		t.Fatalf("List: %v %v %v", listed, more, err)
	}
	if got, want := string(listed[0].After), `{"n":1,"state":"active"}`; got != want {
		t.Errorf("after: %s, want %s", got, want)
	}
	if listed[0].Time != t0.Add(2*time.Second) {
		t.Errorf("time %v", listed[0].Time)
	}
	h, err := l.Head(ctxFor(t))
	if err != nil || h.Seq != 5 {
		t.Errorf("Head: %v %v", h, err)
	}
}

// A changed field of any kind is a modified entry at that entry.
func TestVerifyDetectsChangedField(t *testing.T) {
	for _, c := range []struct {
		name, set string
		arg       any
	}{
		{"actor", "actor = ?", "mallory"},
		{"action", "action = ?", "exception.revoke"},
		{"object id", "object_id = ?", "exc-99"},
		{"before", "before = ?", `{"n":2,"state":"revoked"}`},
		{"after removed", "after = ?", nil},
		{"time", "time = time + ?", 1},
		{"prev hash", "prev_hash = ?", strings.Repeat("a", 64)},
		{"hash", "hash = ?", strings.Repeat("b", 64)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openStore(t)
			l := newLog(t, s, nil)
			fill(t, l, 6)
			exec(t, db(t, s), "UPDATE audit SET "+c.set+" WHERE seq = 3", c.arg)
			wantBreak(t, l, 3, audit.Modified)
		})
	}
}

func TestVerifyDetectsDeletedEntry(t *testing.T) {
	t.Run("middle", func(t *testing.T) {
		s := openStore(t)
		l := newLog(t, s, nil)
		fill(t, l, 6)
		exec(t, db(t, s), "DELETE FROM audit WHERE seq = 3")
		wantBreak(t, l, 4, audit.Deleted)
	})
	t.Run("several", func(t *testing.T) {
		s := openStore(t)
		l := newLog(t, s, nil)
		fill(t, l, 6)
		exec(t, db(t, s), "DELETE FROM audit WHERE seq IN (2, 3, 4)")
		_, err := l.Verify(ctxFor(t))
		var ce *audit.ChainError
		if !errors.As(err, &ce) || ce.Kind != audit.Deleted || ce.Seq != 5 || !strings.Contains(ce.Detail, "entries 2 to 4") {
			t.Errorf("Verify: %v", err)
		}
	})
	t.Run("first", func(t *testing.T) {
		s := openStore(t)
		l := newLog(t, s, nil)
		fill(t, l, 4)
		exec(t, db(t, s), "DELETE FROM audit WHERE seq = 1")
		wantBreak(t, l, 2, audit.Deleted)
	})
	t.Run("renumbered", func(t *testing.T) {
		// The later entries moved down to hide the gap.
		s := openStore(t)
		l := newLog(t, s, nil)
		fill(t, l, 6)
		d := db(t, s)
		exec(t, d, "DELETE FROM audit WHERE seq = 3")
		for seq := 4; seq <= 6; seq++ {
			exec(t, d, "UPDATE audit SET seq = seq - 1 WHERE seq = ?", seq)
		}
		wantBreak(t, l, 3, audit.Deleted)
	})
}

func TestVerifyDetectsSwappedEntries(t *testing.T) {
	s := openStore(t)
	l := newLog(t, s, nil)
	fill(t, l, 6)
	d := db(t, s)
	// Swap every column but the position.
	cols := "time, actor, action, object_type, object_id, before, after, prev_hash, hash, mac"
	exec(t, d, "CREATE TEMP TABLE a3 AS SELECT "+cols+" FROM audit WHERE seq = 3")
	exec(t, d, "CREATE TEMP TABLE a4 AS SELECT "+cols+" FROM audit WHERE seq = 4")
	for _, q := range []struct {
		seq int
		src string
	}{{3, "a4"}, {4, "a3"}} {
		set := []string{}
		for c := range strings.SplitSeq(cols, ", ") {
			set = append(set, fmt.Sprintf("%s = (SELECT %s FROM %s)", c, c, q.src))
		}
		exec(t, d, "UPDATE audit SET "+strings.Join(set, ", ")+" WHERE seq = ?", q.seq)
	}
	_, err := l.Verify(ctxFor(t))
	var ce *audit.ChainError
	if !errors.As(err, &ce) || ce.Kind != audit.Reordered || ce.Seq != 3 || !strings.Contains(ce.Detail, "written as entry 4") {
		t.Errorf("Verify: %v; want reordered at 3, written as entry 4", err)
	}
}

// Someone with write access who recomputes the chain from the entry they
// change defeats a plain chain, not a keyed one, nor an exported head.
func TestRewriteNeedsKeyAndAnchors(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := openStore(t)
	keyed := newLog(t, s, key)
	fill(t, keyed, 5)
	head, err := keyed.Head(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := keyed.Verify(ctxFor(t), head)
	if err != nil || rep.MACs != 5 || rep.Anchors != 1 {
		t.Fatalf("keyed chain: %+v, %v", rep, err)
	}

	// The rewrite: entries 3 to 5 replaced by well-chained entries made
	// without the key.
	exec(t, db(t, s), "DELETE FROM audit WHERE seq >= 3")
	forger := newLog(t, s, nil)
	fill(t, forger, 3)

	if _, err := forger.Verify(ctxFor(t)); err != nil {
		t.Errorf("a plain chain cannot see a full rewrite (threat model), yet Verify says %v", err)
	}
	wantBreak(t, keyed, 3, audit.BadMAC)
	wantBreak(t, forger, 5, audit.AnchorMismatch, head)

	// Truncation: only an anchor sees it.
	exec(t, db(t, s), "DELETE FROM audit WHERE seq >= 4")
	if _, err := forger.Verify(ctxFor(t)); err != nil {
		t.Errorf("truncated plain chain: %v", err)
	}
	wantBreak(t, forger, 3, audit.AnchorMismatch, head)
}

func TestMACFrom(t *testing.T) {
	s := openStore(t)
	fill(t, newLog(t, s, nil), 2)
	key := []byte("0123456789abcdef")
	l, err := audit.New(s, &audit.Options{Key: key, MACFrom: 3, Now: clock()})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 2)
	if rep, err := l.Verify(ctxFor(t)); err != nil || rep.MACs != 2 {
		t.Errorf("keyed from 3: %+v, %v", rep, err)
	}
	strict := newLog(t, s, key)
	wantBreak(t, strict, 1, audit.BadMAC)
	if _, err := audit.New(s, &audit.Options{Key: []byte("short")}); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("short key: %v", err)
	}
}

func TestAppendRefusesMalformed(t *testing.T) {
	l := newLog(t, openStore(t), nil)
	obj := audit.Object{Type: "exception", ID: "e"}
	for _, e := range []audit.Event{
		{Actor: "", Action: audit.ExceptionRequest, Object: obj},
		{Actor: "two words", Action: audit.ExceptionRequest, Object: obj},
		{Actor: "a\x00b", Action: audit.ExceptionRequest, Object: obj},
		{Actor: "alice", Action: "Exception.Request", Object: obj},
		{Actor: "alice", Action: "exception", Object: obj},
		{Actor: "alice", Action: audit.ExceptionRequest},
		{Actor: "alice", Action: audit.ExceptionRequest, Object: obj, After: json.RawMessage(`{"a":`)},
	} {
		if _, err := l.Append(ctxFor(t), e); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("Append(%+v): %v, want ErrInvalid", e, err)
		}
	}
	// JSON is kept compact, whatever the spacing given.
	e, err := l.Append(ctxFor(t), audit.Event{Actor: "alice", Action: audit.ConfigLoad, Object: audit.Object{Type: "config", ID: "sha256:x"},
		After: json.RawMessage("{ \"a\" : [1, 2] }")})
	if err != nil || string(e.After) != `{"a":[1,2]}` {
		t.Errorf("compact: %s, %v", e.After, err)
	}
}

func TestCanonicalIsUnambiguous(t *testing.T) {
	a := &audit.Event{Seq: 1, Time: t0, Actor: "ab", Action: "c.d", Object: audit.Object{Type: "x", ID: "y"}, PrevHash: audit.Genesis}
	b := *a
	b.Actor, b.Action = "a", "bc.d"
	c := *a
	c.Object = audit.Object{Type: "xy", ID: ""}
	d := *a
	d.Before, d.After = json.RawMessage(`1`), nil
	e := *a
	e.Before, e.After = nil, json.RawMessage(`1`)
	seen := map[string]bool{}
	for _, ev := range []*audit.Event{a, &b, &c, &d, &e} {
		h := audit.ComputeHash(ev)
		if seen[h] {
			t.Errorf("two events share hash %s", h)
		}
		seen[h] = true
	}
}

func TestConcurrentAppendsVerify(t *testing.T) {
	s := openStore(t)
	l := newLog(t, s, []byte("0123456789abcdef"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 4 {
				if _, err := l.Append(ctxFor(t), audit.Event{Actor: fmt.Sprintf("u%d", i), Action: audit.QuarantineRelease,
					Object: audit.Object{Type: "quarantine", ID: fmt.Sprintf("q%d-%d", i, j)}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	rep, err := l.Verify(ctxFor(t))
	if err != nil || rep.Entries != 32 || rep.MACs != 32 {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
}

func TestParseHead(t *testing.T) {
	h := audit.Head{Seq: 42, Hash: strings.Repeat("ab", 32)}
	got, err := audit.ParseHead(" " + strings.ToUpper(h.String()) + "\n")
	if err != nil || got != h {
		t.Errorf("ParseHead(%s): %v, %v", h, got, err)
	}
	for _, bad := range []string{"", "42", ":" + h.Hash, "0:" + h.Hash, "-1:" + h.Hash, "x:" + h.Hash, "42:abc", "42:" + strings.Repeat("zz", 32)} {
		if _, err := audit.ParseHead(bad); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("ParseHead(%q): %v", bad, err)
		}
	}
}

func TestActionValid(t *testing.T) {
	for _, a := range audit.Actions {
		if !a.Valid() {
			t.Errorf("%s not valid", a)
		}
	}
	for _, a := range []audit.Action{"", "x", ".x", "x.", "a.b.c", "A.b", "a.b c"} {
		if a.Valid() {
			t.Errorf("%q valid", a)
		}
	}
}
