// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go) under a data directory, with quarantined
// message bodies as files beside it. It is the single-node default of
// Portcullis; it keeps the evidence of the SPF (RFC 7208), DKIM (RFC 6376),
// ARC (RFC 8617) and DMARC (RFC 9989) verdicts and the Authentication-Results
// (RFC 8601) of every message.
//
// Layout of the data directory:
//
//	<dir>/portcullis.db       the database (WAL mode)
//	<dir>/portcullis.db-wal   its write-ahead log
//	<dir>/portcullis.db-shm   the WAL index
//	<dir>/quarantine/<id>.eml quarantined message bodies
//
// Durability: the one writing connection runs with synchronous=FULL, so in
// WAL mode every commit fsyncs the WAL before it returns. Evidence and new
// quarantine rows are written by one writer goroutine that commits
// everything queued, up to Options.BatchMax operations, in one transaction:
// one fsync per batch (group commit). See package store for what each call
// guarantees.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"portcullis/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// File names inside the data directory.
const (
	DBName        = "portcullis.db"
	QuarantineDir = "quarantine"
	bodySuffix    = ".eml"
	tmpPrefix     = ".put-"
	tmpSuffix     = ".tmp"
)

// Options tune a Store. The zero value (or nil) gives the defaults named
// on each field.
type Options struct {
	// BatchMax is the most operations committed in one transaction.
	// Default 256.
	BatchMax int
	// BatchWait is how long the writer, once it holds one operation, waits
	// for more before committing a batch that is not full. 0 (the
	// default) commits what is queued at once: under load the operations
	// that arrive during one commit's fsync form the next batch, so
	// batching needs no added delay.
	BatchWait time.Duration
	// QueueSize bounds the operations waiting for the writer; when it is
	// full, PutEvidence and EnqueueEvidence block (bounded by their ctx).
	// Default 4096.
	QueueSize int
	// BusyTimeout is how long a statement waits for a lock held by
	// another process (a CLI on the same data directory). Default 5s.
	BusyTimeout time.Duration
	// MaxBodySize bounds a quarantined message body. Default 64 MiB.
	MaxBodySize int64
	// MaxRecordSize bounds an evidence record encoded as JSON (its
	// strings come from the message: subject, header From, the
	// Authentication-Results). Default 1 MiB.
	MaxRecordSize int
	// OrphanGrace is how old a body file without a row, or a temporary
	// file, must be before Prune removes it. Default 1h.
	OrphanGrace time.Duration
	// ReadConns is the number of reading connections. Default 4.
	ReadConns int
	// Logger receives the failures of enqueued evidence (which have no
	// caller to return to) and of file clean-up. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock stamped on state changes and config versions.
	// Default time.Now.
	Now func() time.Time
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.BatchMax <= 0 {
		v.BatchMax = 256
	}
	if v.QueueSize <= 0 {
		v.QueueSize = 4096
	}
	if v.BusyTimeout <= 0 {
		v.BusyTimeout = 5 * time.Second
	}
	if v.MaxBodySize <= 0 {
		v.MaxBodySize = 64 << 20
	}
	if v.MaxRecordSize <= 0 {
		v.MaxRecordSize = 1 << 20
	}
	if v.OrphanGrace <= 0 {
		v.OrphanGrace = time.Hour
	}
	if v.ReadConns <= 0 {
		v.ReadConns = 4
	}
	if v.Logger == nil {
		v.Logger = slog.Default()
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	return v
}

// Store is the SQLite back end. It implements store.Store.
type Store struct {
	dir  string
	qdir string
	opts Options

	wdb *sql.DB // one connection: every write, synchronous=FULL
	rdb *sql.DB // reading connections, query_only

	w *writer

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	inflightMu sync.Mutex
	inflight   map[string]struct{} // quarantine ids being written
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in data directory dir, applies
// the schema migrations and starts the writer.
func Open(ctx context.Context, dir string, o *Options) (*Store, error) {
	opts := o.withDefaults()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	}
	qdir := filepath.Join(dir, QuarantineDir)
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	if err := makeDir(qdir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, qdir: qdir, opts: opts, inflight: map[string]struct{}{}}
	dbPath := filepath.Join(dir, DBName)

	s.wdb, err = sql.Open("sqlite", dsn(dbPath, opts.BusyTimeout, true))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dbPath, err)
	}
	// One writing connection: writes never contend with each other for
	// SQLite's lock inside this process, and its pragmas stay set.
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if err := s.wdb.PingContext(ctx); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("%w: open %s: %w", store.ErrUnavailable, dbPath, err)
	}
	if err := migrate(ctx, s.wdb); err != nil {
		s.wdb.Close()
		return nil, err
	}
	s.rdb, err = sql.Open("sqlite", dsn(dbPath, opts.BusyTimeout, false))
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", dbPath, err)
	}
	s.rdb.SetMaxOpenConns(opts.ReadConns)
	s.rdb.SetMaxIdleConns(opts.ReadConns)
	s.w, err = newWriter(ctx, s.wdb, opts)
	if err != nil {
		s.rdb.Close()
		s.wdb.Close()
		return nil, err
	}
	go s.w.run()
	return s, nil
}

// dsn builds the connection string. The writer gets WAL mode (a property
// of the database file, set once), synchronous=FULL (in WAL mode: fsync
// the WAL at every commit, so a commit that returned survives power
// loss; NORMAL would defer that to checkpoints), foreign keys (the
// recipient tables cascade) and BEGIN IMMEDIATE, which takes the write
// lock at the start of a transaction so that it waits for another process
// by busy_timeout instead of failing on upgrade. Readers are query_only.
func dsn(path string, busy time.Duration, write bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if write {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// Keep the WAL file from staying large after a burst.
		q.Add("_pragma", "journal_size_limit(67108864)")
		// Statement journals (multi-row statements, the pruning
		// deletes) stay in memory, not in temporary files.
		q.Add("_pragma", "temp_store(MEMORY)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

// migrate applies the embedded schema migrations; on a store already at
// the newest version it changes nothing.
func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("%w: schema migration: %w", store.ErrUnavailable, err)
	}
	return nil
}

// SchemaVersion returns the version of the newest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.rdb.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	return v, dbErr(err)
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Stats returns the writer's counters.
func (s *Store) Stats() Stats { return s.w.stats() }

// Close drains the writer's queue, then closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.w.close()
		err1 := s.w.closeStmts()
		err2 := s.rdb.Close()
		// A clean close checkpoints the WAL into the database file.
		err3 := s.wdb.Close()
		s.closeErr = errors.Join(err1, err2, err3)
	})
	return s.closeErr
}

func (s *Store) check() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// makeDir creates dir if needed and, when it did, fsyncs its parent so the
// new entry survives a crash.
func makeDir(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("store: %s is not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("store: create %s: %w", dir, err)
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir fsyncs a directory, making the creation, rename or removal of
// its entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: sync %s: %w", store.ErrUnavailable, dir, err)
	}
	return nil
}

// dbErr maps database errors onto the store's: no rows → ErrNotFound,
// unique constraint → ErrExists, other constraints → ErrInvalid, context
// errors as they are, the rest (I/O, busy, full) → ErrUnavailable.
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrExists, err)
		case code&0xff == sqlite3.SQLITE_CONSTRAINT:
			// CHECK, NOT NULL, foreign key, trigger: the data is refused,
			// retrying it will not help.
			return fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
