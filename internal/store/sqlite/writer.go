package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"portcullis/internal/store"
)

// The group commit.
//
// Every evidence record and every new quarantine row goes through one
// writer goroutine. It takes the first operation waiting in the queue,
// then everything else already queued (up to BatchMax, waiting up to
// BatchWait for more when that is set), and applies them all in one
// transaction: one commit, so one fsync of the WAL, for the whole batch.
// While a batch commits, new operations queue up and form the next batch,
// so the batch size grows with the load and the number of fsyncs per
// second stays near 1/(fsync time) whatever the message rate.
//
// A duplicate id is not a failed statement: the inserts use ON CONFLICT
// DO NOTHING and a row that was not inserted is that operation's
// ErrExists, while the rest of the batch commits. A statement that does
// fail rolls the batch back, and the writer then applies its operations
// one transaction each, so that only the operation at fault fails. A
// failed begin or commit fails every operation of its batch. Either way
// the writer goes on with the next batch.

type opKind uint8

const (
	opEvidence opKind = iota + 1
	opQuarantine
	opBarrier // commits nothing; completes when every earlier op has
)

type op struct {
	kind opKind
	ev   *evidenceRow
	q    *quarantineRow
	// done receives the operation's outcome; nil when nobody waits
	// (EnqueueEvidence).
	done chan error
}

// Stats are the writer's counters since Open.
type Stats struct {
	// Batches is the number of transactions the writer committed or tried
	// to: one WAL fsync each.
	Batches uint64
	// Evidence and Quarantine count the rows committed.
	Evidence   uint64
	Quarantine uint64
	// Failed counts operations that failed (duplicates included).
	Failed uint64
	// LargestBatch is the most operations one batch held.
	LargestBatch int
	// Queued is the number of operations waiting for the writer now.
	Queued int
}

type writer struct {
	db   *sql.DB
	opts Options
	log  *slog.Logger

	// mu orders sends on queue against its closing: senders hold it
	// shared, close holds it exclusively.
	mu     sync.RWMutex
	closed bool
	queue  chan *op

	stopped chan struct{}

	insEvidence, insEvidenceRcpt, insQuarantine, insQuarantineRcpt *sql.Stmt

	nBatches, nEvidence, nQuarantine, nFailed atomic.Uint64
	largest                                   atomic.Int64
}

func newWriter(ctx context.Context, db *sql.DB, opts Options) (*writer, error) {
	w := &writer{
		db:      db,
		opts:    opts,
		log:     opts.Logger,
		queue:   make(chan *op, opts.QueueSize),
		stopped: make(chan struct{}),
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.insEvidence, `INSERT INTO evidence (id, received_at, listener, action, rule, exception,
			config_version, mail_from, mail_from_domain, header_from, header_from_domain, message_id, record)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`},
		{&w.insEvidenceRcpt, `INSERT INTO evidence_rcpt (evidence_seq, rcpt, domain, received_at) VALUES (?, ?, ?, ?)`},
		{&w.insQuarantine, `INSERT INTO quarantine (id, recipients, sender, sender_norm, subject, reason,
			received_at, expires_at, state, size, sha256, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`},
		{&w.insQuarantineRcpt, `INSERT INTO quarantine_rcpt (quarantine_seq, rcpt) VALUES (?, ?)`},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("store: prepare: %w", dbErr(err))
		}
		*p.stmt = st
	}
	return w, nil
}

func (w *writer) closeStmts() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.insEvidence, w.insEvidenceRcpt, w.insQuarantine, w.insQuarantineRcpt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// submit queues o, blocking while the queue is full until ctx ends.
func (w *writer) submit(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return store.ErrClosed
	}
	select {
	case w.queue <- o:
		return nil
	default:
	}
	select {
	case w.queue <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do queues o and waits for its outcome.
func (w *writer) do(ctx context.Context, o *op) error {
	o.done = make(chan error, 1)
	if err := w.submit(ctx, o); err != nil {
		return err
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		// The operation stays queued and may still commit.
		return ctx.Err()
	}
}

// close stops accepting operations, and returns once every queued one
// has been committed or failed.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.stopped
}

func (w *writer) stats() Stats {
	return Stats{
		Batches:      w.nBatches.Load(),
		Evidence:     w.nEvidence.Load(),
		Quarantine:   w.nQuarantine.Load(),
		Failed:       w.nFailed.Load(),
		LargestBatch: int(w.largest.Load()),
		Queued:       len(w.queue),
	}
}

func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*op, 0, w.opts.BatchMax)
	errs := make([]error, w.opts.BatchMax)
	for {
		first, ok := <-w.queue
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		open := w.fill(&batch)
		w.commit(batch, errs[:len(batch)])
		clear(batch)
		if !open {
			return
		}
	}
}

// fill adds queued operations to batch up to BatchMax. It reports false
// when the queue is closed and empty.
func (w *writer) fill(batch *[]*op) bool {
	limit := w.opts.BatchMax
	for len(*batch) < limit {
		select {
		case o, ok := <-w.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, o)
			continue
		default:
		}
		break
	}
	if w.opts.BatchWait <= 0 || len(*batch) >= limit {
		return true
	}
	t := time.NewTimer(w.opts.BatchWait)
	defer t.Stop()
	for len(*batch) < limit {
		select {
		case o, ok := <-w.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, o)
		case <-t.C:
			return true
		}
	}
	return true
}

// commit applies batch and hands each operation its outcome. errs has
// the batch's length.
func (w *writer) commit(batch []*op, errs []error) {
	clear(errs)
	if n := int64(len(batch)); n > w.largest.Load() {
		w.largest.Store(n)
	}
	stmtFailed, err := w.runTx(batch, errs)
	switch {
	case err == nil:
	case stmtFailed && len(batch) > 1:
		// Isolate the operation at fault.
		for i, o := range batch {
			if o.kind == opBarrier {
				errs[i] = nil
				continue
			}
			if _, err := w.runTx(batch[i:i+1], errs[i:i+1]); err != nil {
				errs[i] = err
			}
		}
	default:
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	w.finish(batch, errs)
}

// runTx applies ops in one transaction, writing each operation's own
// outcome (nil or ErrExists) to errs. It returns an error when the
// transaction failed as a whole; stmtFailed tells that a statement
// failed and the transaction was rolled back.
func (w *writer) runTx(ops []*op, errs []error) (stmtFailed bool, err error) {
	// The batch is not tied to any caller's context: a caller that gave
	// up does not cancel the others' commit.
	ctx := context.Background()
	w.nBatches.Add(1)
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return false, dbErr(err)
	}
	var stmts txStmts
	for i, o := range ops {
		if o.kind == opBarrier {
			continue
		}
		errs[i], err = w.apply(ctx, tx, &stmts, o)
		if err != nil {
			tx.Rollback()
			return true, err
		}
	}
	return false, dbErr(tx.Commit())
}

// txStmts are the prepared statements bound to the batch's transaction,
// made on first use.
type txStmts struct {
	ev, evRcpt, q, qRcpt *sql.Stmt
}

func (w *writer) stmt(ctx context.Context, tx *sql.Tx, slot **sql.Stmt, prepared *sql.Stmt) *sql.Stmt {
	if *slot == nil {
		*slot = tx.StmtContext(ctx, prepared)
	}
	return *slot
}

// apply runs one operation's statements. opErr is the operation's own
// outcome (ErrExists); err is a failed statement.
func (w *writer) apply(ctx context.Context, tx *sql.Tx, st *txStmts, o *op) (opErr, err error) {
	switch o.kind {
	case opEvidence:
		r := o.ev
		res, err := w.stmt(ctx, tx, &st.ev, w.insEvidence).ExecContext(ctx,
			r.id, r.receivedAt, r.listener, r.action, r.rule, r.exception, r.configVersion,
			r.keys.MailFrom, r.keys.MailFromDomain, r.keys.HeaderFromAddr, r.keys.HeaderFromDomain,
			r.keys.MessageID, r.json)
		seq, inserted, err := insertedRow(res, err)
		if err != nil {
			return nil, err
		}
		if !inserted {
			return fmt.Errorf("%w: evidence %s", store.ErrExists, r.id), nil
		}
		ins := w.stmt(ctx, tx, &st.evRcpt, w.insEvidenceRcpt)
		for i, rc := range r.keys.Recipients {
			if _, err := ins.ExecContext(ctx, seq, rc, r.keys.RecipientDomains[i], r.receivedAt); err != nil {
				return nil, dbErr(err)
			}
		}
		return nil, nil
	case opQuarantine:
		q := o.q
		res, err := w.stmt(ctx, tx, &st.q, w.insQuarantine).ExecContext(ctx,
			q.id, q.recipientsJSON, q.sender, q.senderNorm, q.subject, q.reason,
			q.receivedAt, q.expiresAt, q.state, q.size, q.sha256, q.updatedAt, "")
		seq, inserted, err := insertedRow(res, err)
		if err != nil {
			return nil, err
		}
		if !inserted {
			return fmt.Errorf("%w: quarantine item %s", store.ErrExists, q.id), nil
		}
		ins := w.stmt(ctx, tx, &st.qRcpt, w.insQuarantineRcpt)
		for _, rc := range q.rcptNorm {
			if _, err := ins.ExecContext(ctx, seq, rc); err != nil {
				return nil, dbErr(err)
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("store: unknown operation %d", o.kind)
}

// insertedRow interprets an INSERT ... ON CONFLICT DO NOTHING: the new
// row's rowid, or inserted false when the id was already stored.
func insertedRow(res sql.Result, err error) (seq int64, inserted bool, _ error) {
	if err != nil {
		return 0, false, dbErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, dbErr(err)
	}
	if n == 0 {
		return 0, false, nil
	}
	seq, err = res.LastInsertId()
	return seq, true, dbErr(err)
}

// finish delivers the outcomes, counts them, and logs the failures nobody
// waits for.
func (w *writer) finish(batch []*op, errs []error) {
	for i, o := range batch {
		err := errs[i]
		if err == nil {
			switch o.kind {
			case opEvidence:
				w.nEvidence.Add(1)
			case opQuarantine:
				w.nQuarantine.Add(1)
			}
		} else if o.kind != opBarrier {
			w.nFailed.Add(1)
		}
		if o.done != nil {
			o.done <- err
			continue
		}
		if err != nil && o.kind == opEvidence {
			w.log.Error("store: enqueued evidence record not stored", "id", o.ev.id, "err", err)
		}
	}
}
