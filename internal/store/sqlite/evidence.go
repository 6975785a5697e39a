package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/store"
)

// evidenceRow is a record encoded for the writer, prepared in the caller's
// goroutine so that the writer only executes statements.
type evidenceRow struct {
	id            string
	receivedAt    int64
	listener      string
	action        string
	rule          string
	exception     string
	configVersion string
	keys          store.Keys
	json          string
}

func encodeEvidence(r *evidence.Record, maxSize int) (*evidenceRow, error) {
	if err := store.ValidateRecord(r); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%w: record %s: %w", store.ErrInvalid, r.ID, err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("%w: record %s is %d bytes of JSON, limit %d", store.ErrTooLarge, r.ID, len(b), maxSize)
	}
	row := &evidenceRow{
		id:            r.ID,
		receivedAt:    r.ReceivedAt.UnixNano(),
		listener:      r.Listener,
		action:        string(r.Decision.Action),
		rule:          r.Decision.Rule,
		configVersion: r.ConfigVersion,
		keys:          store.KeysOf(r),
		json:          string(b),
	}
	if r.Decision.Exception != nil {
		row.exception = *r.Decision.Exception
	}
	return row, nil
}

// PutEvidence implements store.Store: it returns once the batch holding r
// is committed (fsynced).
func (s *Store) PutEvidence(ctx context.Context, r *evidence.Record) error {
	row, err := encodeEvidence(r, s.opts.MaxRecordSize)
	if err != nil {
		return err
	}
	return s.w.do(ctx, &op{kind: opEvidence, ev: row})
}

// EnqueueEvidence implements store.Store: it returns once r is queued.
// A record that then fails to commit is logged and counted in
// Stats.Failed.
func (s *Store) EnqueueEvidence(ctx context.Context, r *evidence.Record) error {
	row, err := encodeEvidence(r, s.opts.MaxRecordSize)
	if err != nil {
		return err
	}
	return s.w.submit(ctx, &op{kind: opEvidence, ev: row})
}

// Flush implements store.Store.
func (s *Store) Flush(ctx context.Context) error {
	return s.w.do(ctx, &op{kind: opBarrier})
}

// GetEvidence implements store.Store.
func (s *Store) GetEvidence(ctx context.Context, id string) (*evidence.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var js string
	err := s.rdb.QueryRowContext(ctx, `SELECT record FROM evidence WHERE id = ?`, id).Scan(&js)
	if err != nil {
		err = dbErr(err)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: evidence %q", store.ErrNotFound, id)
		}
		return nil, err
	}
	return decodeEvidence(js)
}

func decodeEvidence(js string) (*evidence.Record, error) {
	r := new(evidence.Record)
	if err := json.Unmarshal([]byte(js), r); err != nil {
		return nil, fmt.Errorf("%w: stored record does not decode: %w", store.ErrCorrupt, err)
	}
	return r, nil
}

// QueryEvidence implements store.Store. Every filter is served by an
// index: the recipient and domain filters through the evidence_rcpt
// table, the others by an index on (column, received_at).
func (s *Store) QueryEvidence(ctx context.Context, q store.EvidenceQuery) (store.EvidencePage, error) {
	if err := s.check(); err != nil {
		return store.EvidencePage{}, err
	}
	q, err := q.Normalize()
	if err != nil {
		return store.EvidencePage{}, err
	}
	query, args, err := evidenceQuerySQL(q)
	if err != nil {
		return store.EvidencePage{}, err
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return store.EvidencePage{}, dbErr(err)
	}
	defer rows.Close()
	var page store.EvidencePage
	var last store.Cursor
	for rows.Next() {
		var seq, at int64
		var js string
		if err := rows.Scan(&seq, &at, &js); err != nil {
			return store.EvidencePage{}, dbErr(err)
		}
		if len(page.Records) == q.Limit {
			page.Next = last.Encode()
			break
		}
		r, err := decodeEvidence(js)
		if err != nil {
			return store.EvidencePage{}, err
		}
		page.Records = append(page.Records, r)
		last = store.Cursor{ReceivedAt: time.Unix(0, at), Seq: seq}
	}
	if err := rows.Err(); err != nil {
		return store.EvidencePage{}, dbErr(err)
	}
	return page, nil
}

// evidenceQuerySQL builds the statement of a normalised query. It selects
// seq, received_at and the record, fetching one row more than the limit
// to learn whether another page follows.
func evidenceQuerySQL(q store.EvidenceQuery) (string, []any, error) {
	// A recipient's records are read in time order from the recipient
	// index; every other listing walks evidence in time order through the
	// index of its most selective filter.
	from, atCol, seqCol := "evidence e", "e.received_at", "e.seq"
	var b queryBuilder
	if q.Recipient != "" {
		from, atCol, seqCol = "evidence_rcpt r JOIN evidence e ON e.seq = r.evidence_seq", "r.received_at", "r.evidence_seq"
		b.where("r.rcpt = ?", q.Recipient)
	}
	if q.Sender != "" {
		b.where("(e.mail_from = ? OR e.header_from = ?)", q.Sender, q.Sender)
	}
	if q.Domain != "" {
		b.where(`(e.header_from_domain = ? OR e.mail_from_domain = ?
			OR e.seq IN (SELECT evidence_seq FROM evidence_rcpt WHERE domain = ?))`, q.Domain, q.Domain, q.Domain)
	}
	if q.MessageID != "" {
		b.where("e.message_id = ?", q.MessageID)
	}
	if q.Action != "" {
		b.where("e.action = ?", string(q.Action))
	}
	if q.Rule != "" {
		b.where("e.rule = ?", q.Rule)
	}
	if q.Listener != "" {
		b.where("e.listener = ?", q.Listener)
	}
	if q.Exception != "" {
		b.where("e.exception = ?", q.Exception)
	}
	b.timeRange(atCol, q.Since, q.Until)
	if err := b.cursor(atCol, seqCol, q.Cursor); err != nil {
		return "", nil, err
	}
	query := "SELECT " + seqCol + ", " + atCol + ", e.record FROM " + from + b.clause() +
		" ORDER BY " + atCol + " DESC, " + seqCol + " DESC LIMIT ? OFFSET ?"
	return query, append(b.args, q.Limit+1, q.Offset), nil
}

// queryBuilder collects the conditions of a listing.
type queryBuilder struct {
	conds []string
	args  []any
}

func (b *queryBuilder) where(cond string, args ...any) {
	b.conds = append(b.conds, cond)
	b.args = append(b.args, args...)
}

func (b *queryBuilder) timeRange(col string, since, until time.Time) {
	if !since.IsZero() {
		b.where(col+" >= ?", since.UnixNano())
	}
	if !until.IsZero() {
		b.where(col+" < ?", until.UnixNano())
	}
}

// cursor continues a listing ordered by (at DESC, seq DESC) after the
// position the cursor names.
func (b *queryBuilder) cursor(atCol, seqCol, cursor string) error {
	if cursor == "" {
		return nil
	}
	c, err := store.DecodeCursor(cursor)
	if err != nil {
		return err
	}
	b.where("("+atCol+", "+seqCol+") < (?, ?)", c.ReceivedAt.UnixNano(), c.Seq)
	return nil
}

func (b *queryBuilder) clause() string {
	if len(b.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(b.conds, " AND ")
}

// nanoTime converts stored Unix nanoseconds back to a time.
func nanoTime(n int64) time.Time { return time.Unix(0, n).UTC() }
