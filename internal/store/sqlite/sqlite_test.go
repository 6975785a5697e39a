package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/evidence"

	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
	"portcullis/internal/store/storetest"
)

func open(t testing.TB, dir string, o *sqlite.Options) *sqlite.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlite.Open(ctx, dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return open(t, t.TempDir(), nil) },
		storetest.WithReopen(func(t *testing.T, s store.Store) store.Store {
			return open(t, s.(*sqlite.Store).Dir(), nil)
		}))
}

func quietOptions() *sqlite.Options {
	return &sqlite.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func record(id string, at time.Time) *evidence.Record {
	return &evidence.Record{
		ID:         id,
		ReceivedAt: at,
		Listener:   "mx",
		Envelope:   evidence.Envelope{MailFrom: "a@sender.example", RcptTo: []string{"b@corp.example"}},
		HeaderFrom: "a@sender.example",
		Decision:   evidence.Decision{Action: evidence.Deliver, Rule: "default"},
	}
}

func TestMigrationsFreshAndIdempotent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, nil)
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if len(files) == 0 || v != int64(len(files)) {
		t.Fatalf("schema version %d on a fresh directory, %d migrations embedded", v, len(files))
	}
	if err := s.PutEvidence(ctx, record("m-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s2 := open(t, dir, nil)
		v2, err := s2.SchemaVersion(ctx)
		if err != nil || v2 != v {
			t.Fatalf("reopened at version %d (%v), want %d", v2, err, v)
		}
		if _, err := s2.GetEvidence(ctx, "m-1"); err != nil {
			t.Fatalf("data lost by reopening: %v", err)
		}
		s2.Close()
	}
	// Exactly one applied row per migration: reopening applied nothing.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.DBName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("%d migration rows after three opens, want %d", n, len(files))
	}
}

func TestDataDirectoryLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data dir #1 100%", "nested?x=1")
	s := open(t, dir, nil)
	ctx := context.Background()
	body := []byte("Subject: x\r\n\r\nbody\r\n")
	if err := s.PutQuarantine(ctx, &store.QuarantineItem{ID: "lay-1", ReceivedAt: time.Now(),
		ExpiresAt: time.Now().Add(time.Hour)}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sqlite.DBName, sqlite.DBName + "-wal", filepath.Join(sqlite.QuarantineDir, "lay-1.eml")} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("expected %s: %v", p, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, sqlite.QuarantineDir, "lay-1.eml"))
	if err != nil || !bytes.Equal(b, body) {
		t.Errorf("body file holds %q, %v", b, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, sqlite.QuarantineDir))
	if len(entries) != 1 {
		t.Errorf("quarantine directory holds %d entries, want only the body", len(entries))
	}
	// A data directory that is a file is refused.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if s, err := sqlite.Open(ctx, f, nil); err == nil {
		s.Close()
		t.Error("Open on a regular file succeeded")
	}
}

// holdWriteLock takes SQLite's write lock on the store's database from
// another connection, as another process would, until the returned
// function is called.
func holdWriteLock(t *testing.T, dir string) (release func()) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.DBName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
			db.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// stallWriter holds the write lock and hands the writer one record, so that
// the writer waits in its BEGIN while later operations queue behind it. It
// returns once the writer has taken that record.
func stallWriter(t *testing.T, s *sqlite.Store, dir string) (release func()) {
	t.Helper()
	release = holdWriteLock(t, dir)
	batches := s.Stats().Batches
	if err := s.EnqueueEvidence(context.Background(), record("stall", time.Now())); err != nil {
		t.Fatal(err)
	}
	// The batch is counted as the writer begins its transaction.
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().Batches == batches {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not take the record")
		}
		time.Sleep(time.Millisecond)
	}
	return release
}

// waitQueued waits until n operations wait in the writer's queue.
func waitQueued(t *testing.T, s *sqlite.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().Queued != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d operations, want %d", s.Stats().Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// While the writer is stalled, the queue fills and callers block until
// their context ends; what was queued commits once the writer resumes.
func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	o := quietOptions()
	o.QueueSize, o.BatchMax, o.BusyTimeout = 4, 1, 20*time.Second
	s := open(t, dir, o)
	release := holdWriteLock(t, dir)

	queued := 0
	var blocked error
	for i := 0; i < 20 && blocked == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		blocked = s.EnqueueEvidence(ctx, record(fmt.Sprintf("bp-%d", i), time.Now()))
		cancel()
		if blocked == nil {
			queued++
		}
	}
	if !errors.Is(blocked, context.DeadlineExceeded) {
		t.Fatalf("enqueue into a full queue: %v, want DeadlineExceeded", blocked)
	}
	// One operation is with the stalled writer, QueueSize wait.
	if queued != o.QueueSize+1 {
		t.Errorf("%d records accepted before blocking, want %d", queued, o.QueueSize+1)
	}
	if st := s.Stats(); st.Queued != o.QueueSize {
		t.Errorf("Stats.Queued = %d, want %d", st.Queued, o.QueueSize)
	}
	release()
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range queued {
		if _, err := s.GetEvidence(ctx, fmt.Sprintf("bp-%d", i)); err != nil {
			t.Errorf("bp-%d accepted but not stored: %v", i, err)
		}
	}
}

// A batch that cannot commit fails its callers with a temporary error;
// the writer goes on and later batches commit.
func TestFailedBatchDoesNotStopLaterOnes(t *testing.T) {
	dir := t.TempDir()
	o := quietOptions()
	o.BusyTimeout = 100 * time.Millisecond
	s := open(t, dir, o)
	ctx := context.Background()
	release := holdWriteLock(t, dir)
	err := s.PutEvidence(ctx, record("busy-1", time.Now()))
	if !errors.Is(err, store.ErrUnavailable) || !store.Temporary(err) {
		t.Fatalf("PutEvidence while another process holds the lock: %v, want temporary ErrUnavailable", err)
	}
	if err := s.EnqueueEvidence(ctx, record("busy-2", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Flush while locked: %v, want ErrUnavailable", err)
	}
	if st := s.Stats(); st.Failed < 2 {
		t.Errorf("Stats.Failed = %d after two failed records", st.Failed)
	}
	release()
	for _, id := range []string{"busy-1", "busy-3"} {
		if err := s.PutEvidence(ctx, record(id, time.Now())); err != nil {
			t.Errorf("PutEvidence(%s) after the lock was released: %v", id, err)
		}
	}
	if _, err := s.GetEvidence(ctx, "busy-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an enqueued record of a failed batch: %v, want not stored", err)
	}
}

// Concurrent durable writers share commits: while the writer is held, a
// hundred callers queue up, and they commit in a couple of batches.
func TestGroupCommitBatches(t *testing.T) {
	dir := t.TempDir()
	o := quietOptions()
	o.BusyTimeout = 30 * time.Second
	s := open(t, dir, o)
	ctx := context.Background()
	release := stallWriter(t, s, dir)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.PutEvidence(ctx, record(fmt.Sprintf("gc-%d", i), time.Now()))
		}()
	}
	waitQueued(t, s, n)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The stalled record's batch, then one batch of all n.
	if st := s.Stats(); st.Evidence != n+1 || st.Batches != 2 || st.LargestBatch != n {
		t.Errorf("Stats = %+v: want %d records in 2 batches", st, n+1)
	}
}

// With BatchWait set, the writer holding one operation waits for more:
// records arriving 50 ms after the first share its commit.
func TestBatchWait(t *testing.T) {
	o := quietOptions()
	o.BatchWait = 400 * time.Millisecond
	s := open(t, t.TempDir(), o)
	ctx := context.Background()
	var wg sync.WaitGroup
	put := func(id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.PutEvidence(ctx, record(id, time.Now())); err != nil {
				t.Error(err)
			}
		}()
	}
	start := time.Now()
	put("bw-first")
	time.Sleep(50 * time.Millisecond)
	for i := range 4 {
		put(fmt.Sprintf("bw-%d", i))
	}
	wg.Wait()
	if st := s.Stats(); st.Evidence != 5 || st.Batches != 1 {
		t.Errorf("Stats = %+v, want 5 records in 1 batch", st)
	}
	if el := time.Since(start); el < o.BatchWait {
		t.Errorf("batch committed after %v, before BatchWait %v", el, o.BatchWait)
	}
}

func TestQuarantineTooLarge(t *testing.T) {
	dir := t.TempDir()
	o := quietOptions()
	o.MaxBodySize = 1000
	s := open(t, dir, o)
	ctx := context.Background()
	item := func(id string) *store.QuarantineItem {
		return &store.QuarantineItem{ID: id, ReceivedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	}
	if err := s.PutQuarantine(ctx, item("big"), bytes.NewReader(make([]byte, 1001))); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("1001-byte body with a 1000-byte limit: %v, want ErrTooLarge", err)
	}
	if err := s.PutQuarantine(ctx, item("fits"), bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Errorf("1000-byte body: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, sqlite.QuarantineDir))
	if len(entries) != 1 || entries[0].Name() != "fits.eml" {
		t.Errorf("quarantine directory after a refused body: %v", entries)
	}
}

func TestQuarantineContextCanceled(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, quietOptions())
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelingReader{cancel: cancel, left: 3}
	err := s.PutQuarantine(ctx, &store.QuarantineItem{ID: "cx", ReceivedAt: time.Now(),
		ExpiresAt: time.Now().Add(time.Hour)}, r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PutQuarantine with its context canceled mid-body: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, sqlite.QuarantineDir))
	if len(entries) != 0 {
		t.Errorf("files left by a canceled put: %v", entries)
	}
}

// cancelingReader returns data forever, canceling its context after a
// few reads.
type cancelingReader struct {
	cancel func()
	left   int
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	if c.left--; c.left == 0 {
		c.cancel()
	}
	return copy(p, "line of a message body\r\n"), nil
}

func TestCorruptBodyDetected(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, quietOptions())
	ctx := context.Background()
	for _, id := range []string{"tampered", "truncated", "missing"} {
		if err := s.PutQuarantine(ctx, &store.QuarantineItem{ID: id, ReceivedAt: time.Now(),
			ExpiresAt: time.Now().Add(time.Hour)}, strings.NewReader("original message body")); err != nil {
			t.Fatal(err)
		}
	}
	qdir := filepath.Join(dir, sqlite.QuarantineDir)
	os.WriteFile(filepath.Join(qdir, "tampered.eml"), []byte("original message bodY"), 0o640)
	os.WriteFile(filepath.Join(qdir, "truncated.eml"), []byte("original"), 0o640)
	os.Remove(filepath.Join(qdir, "missing.eml"))
	for _, id := range []string{"tampered", "truncated"} {
		rc, err := s.OpenQuarantineBody(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("reading the %s body: %v, want ErrCorrupt", id, err)
		}
	}
	if _, err := s.OpenQuarantineBody(ctx, "missing"); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("opening a missing body: %v, want ErrCorrupt", err)
	}
}

// Files without a row (a crash between the body's rename and the row's
// commit) and temporary files are removed once older than OrphanGrace;
// younger ones and bodies with rows stay.
func TestPruneRemovesOrphans(t *testing.T) {
	dir := t.TempDir()
	o := quietOptions()
	o.OrphanGrace = time.Hour
	s := open(t, dir, o)
	ctx := context.Background()
	now := time.Now()
	if err := s.PutQuarantine(ctx, &store.QuarantineItem{ID: "live", ReceivedAt: now,
		ExpiresAt: now.Add(48 * time.Hour)}, strings.NewReader("live body")); err != nil {
		t.Fatal(err)
	}
	qdir := filepath.Join(dir, sqlite.QuarantineDir)
	old := now.Add(-2 * time.Hour)
	for name, mtime := range map[string]time.Time{
		"orphan-old.eml":           old,
		"orphan-new.eml":           now,
		".put-x-123.tmp":           old,
		".put-y-456.tmp":           now,
		"live.eml":                 old, // has a row: kept whatever its age
		"not-a-body.txt":           old,
		"bad..name-with space.eml": old,
	} {
		p := filepath.Join(qdir, name)
		if name != "live.eml" {
			if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		os.Chtimes(p, mtime, mtime)
	}
	res, err := s.Prune(ctx, now, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Orphans != 2 {
		t.Errorf("Prune removed %d orphans, want 2", res.Orphans)
	}
	var left []string
	entries, _ := os.ReadDir(qdir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{".put-y-456.tmp", "bad..name-with space.eml", "live.eml", "not-a-body.txt", "orphan-new.eml"}
	if strings.Join(left, ",") != strings.Join(want, ",") {
		t.Errorf("left %v, want %v", left, want)
	}
	rc, err := s.OpenQuarantineBody(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); err != nil || string(b) != "live body" {
		t.Errorf("live body after the sweep: %q, %v", b, err)
	}
	rc.Close()
}

// Pruning more rows than one chunk deletes them all, a chunk per
// transaction.
func TestPruneManyChunks(t *testing.T) {
	s := open(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	now := time.Now()
	const n = 2600
	for i := range n {
		if err := s.EnqueueEvidence(ctx, record(fmt.Sprintf("p-%d", i), now.Add(-48*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutEvidence(ctx, record("recent", now)); err != nil {
		t.Fatal(err)
	}
	res, err := s.Prune(ctx, now, 24*time.Hour, 0)
	if err != nil || res.Evidence != n {
		t.Fatalf("Prune = %+v, %v; want %d", res, err, n)
	}
	page, err := s.QueryEvidence(ctx, store.EvidenceQuery{Recipient: "b@corp.example"})
	if err != nil || len(page.Records) != 1 || page.Records[0].ID != "recent" {
		t.Errorf("after pruning: %d records, %v", len(page.Records), err)
	}
}

// A statement that fails inside a batch (here a trigger another process
// installed refuses one record) fails only its own operation: the batch
// is applied again one operation at a time.
func TestFailingStatementIsolatedFromItsBatch(t *testing.T) {
	dir := t.TempDir()
	o := quietOptions()
	o.BusyTimeout = 30 * time.Second
	s := open(t, dir, o)
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.DBName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON evidence
		WHEN NEW.id = 'poison' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END`); err != nil {
		t.Fatal(err)
	}
	release := stallWriter(t, s, dir)
	ids := []string{"ok-1", "ok-2", "poison", "ok-3", "ok-4"}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.PutEvidence(ctx, record(id, time.Now()))
		}()
		waitQueued(t, s, i+1) // in this order, behind the stalled writer
	}
	release()
	wg.Wait()
	if st := s.Stats(); st.LargestBatch != len(ids) {
		t.Errorf("Stats = %+v: the records did not share a batch", st)
	}
	for i, id := range ids {
		if id == "poison" {
			if errs[i] == nil {
				t.Error("the refused record reported success")
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s failed beside the refused record: %v", id, errs[i])
		}
		if _, err := s.GetEvidence(ctx, id); err != nil {
			t.Errorf("%s not stored: %v", id, err)
		}
	}
	if _, err := s.GetEvidence(ctx, "poison"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused record: %v", err)
	}
}

func TestRecordTooLarge(t *testing.T) {
	o := quietOptions()
	o.MaxRecordSize = 4096
	s := open(t, t.TempDir(), o)
	ctx := context.Background()
	r := record("big", time.Now())
	r.Subject = strings.Repeat("x", 5000)
	if err := s.PutEvidence(ctx, r); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("5 KB subject with a 4 KB limit: %v, want ErrTooLarge", err)
	}
	if err := s.EnqueueEvidence(ctx, r); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("EnqueueEvidence: %v, want ErrTooLarge", err)
	}
	r.Subject = "short"
	if err := s.PutEvidence(ctx, r); err != nil {
		t.Errorf("small record: %v", err)
	}
}
