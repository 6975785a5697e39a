package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"portcullis/internal/store"
)

// The governance tables (migration 00002): the audit log, governed
// objects, their hit counters and the notification marks. Every write goes
// through writeTx on the one writing connection with BEGIN IMMEDIATE, so
// that an audit append reads the head and inserts the next entry under
// SQLite's write lock, also against another process (a CLI) on the same
// data directory: the chain stays linear.

var _ store.GovernanceStore = (*Store)(nil)

const auditCols = `seq, time, actor, action, object_type, object_id, before, after, prev_hash, hash, mac`

func scanAudit(sc interface{ Scan(...any) error }) (*store.AuditEntry, error) {
	var (
		e             store.AuditEntry
		at            int64
		before, after sql.NullString
	)
	if err := sc.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.ObjectType, &e.ObjectID, &before, &after,
		&e.PrevHash, &e.Hash, &e.MAC); err != nil {
		return nil, dbErr(err)
	}
	e.Time = nanoTime(at)
	if before.Valid {
		e.Before = []byte(before.String)
	}
	if after.Valid {
		e.After = []byte(after.String)
	}
	return &e, nil
}

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// appendAudit appends the entry build returns, inside tx.
func appendAudit(ctx context.Context, tx *sql.Tx, build store.AuditBuilder) (*store.AuditEntry, error) {
	head, err := scanAudit(tx.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq DESC LIMIT 1`))
	switch {
	case errors.Is(err, store.ErrNotFound):
		head = nil
	case err != nil:
		return nil, err
	}
	e, err := build(head)
	if err != nil {
		return nil, err
	}
	wantSeq, wantPrev := int64(1), ""
	if head != nil {
		wantSeq, wantPrev = head.Seq+1, head.Hash
	}
	switch {
	case e == nil:
		return nil, fmt.Errorf("%w: nil audit entry", store.ErrInvalid)
	case e.Seq != wantSeq:
		return nil, fmt.Errorf("%w: audit entry seq %d does not follow the head (%d)", store.ErrInvalid, e.Seq, wantSeq-1)
	case head != nil && e.PrevHash != wantPrev:
		return nil, fmt.Errorf("%w: audit entry %d does not link to the head's hash", store.ErrInvalid, e.Seq)
	case e.Actor == "" || e.Action == "" || e.Hash == "":
		return nil, fmt.Errorf("%w: audit entry %d without actor, action or hash", store.ErrInvalid, e.Seq)
	case e.Time.IsZero():
		return nil, fmt.Errorf("%w: audit entry %d without a time", store.ErrInvalid, e.Seq)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixNano(), e.Actor, e.Action, e.ObjectType, e.ObjectID, nullJSON(e.Before), nullJSON(e.After),
		e.PrevHash, e.Hash, e.MAC)
	if err != nil {
		return nil, dbErr(err)
	}
	return e, nil
}

// AppendAudit implements store.GovernanceStore.
func (s *Store) AppendAudit(ctx context.Context, build store.AuditBuilder) (*store.AuditEntry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var out *store.AuditEntry
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		e, err := appendAudit(ctx, tx, build)
		out = e
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AuditHead implements store.GovernanceStore.
func (s *Store) AuditHead(ctx context.Context) (*store.AuditEntry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	e, err := scanAudit(s.rdb.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: the audit log is empty", store.ErrNotFound)
	}
	return e, err
}

// ListAudit implements store.GovernanceStore.
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	if err := s.check(); err != nil {
		return store.AuditPage{}, err
	}
	limit := q.Limit
	switch {
	case limit < 0:
		return store.AuditPage{}, fmt.Errorf("%w: negative limit", store.ErrInvalid)
	case limit == 0:
		limit = store.DefaultLimit
	case limit > store.MaxLimit:
		limit = store.MaxLimit
	}
	var b queryBuilder
	if q.Actor != "" {
		b.where("actor = ?", q.Actor)
	}
	if q.Action != "" {
		if strings.HasSuffix(q.Action, ".") {
			// A family: the prefix range [a., a/) of the index.
			b.where("action >= ? AND action < ?", q.Action, strings.TrimSuffix(q.Action, ".")+"/")
		} else {
			b.where("action = ?", q.Action)
		}
	}
	if q.ObjectType != "" {
		b.where("object_type = ?", q.ObjectType)
	}
	if q.ObjectID != "" {
		b.where("object_id = ?", q.ObjectID)
	}
	b.timeRange("time", q.Since, q.Until)
	if q.AfterSeq > 0 {
		b.where("seq > ?", q.AfterSeq)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+auditCols+` FROM audit`+b.clause()+` ORDER BY seq LIMIT ?`,
		append(b.args, limit+1)...)
	if err != nil {
		return store.AuditPage{}, dbErr(err)
	}
	defer rows.Close()
	var page store.AuditPage
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return store.AuditPage{}, err
		}
		if len(page.Entries) == limit {
			page.More = true
			break
		}
		page.Entries = append(page.Entries, e)
	}
	return page, dbErr(rows.Err())
}

// ScanAudit implements store.GovernanceStore. It reads in pages so that a
// long log never holds a read transaction (and the WAL) for its whole
// walk.
func (s *Store) ScanAudit(ctx context.Context, afterSeq int64, fn func(*store.AuditEntry) error) error {
	if err := s.check(); err != nil {
		return err
	}
	const page = 1000
	for {
		rows, err := s.rdb.QueryContext(ctx, `SELECT `+auditCols+` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, page)
		if err != nil {
			return dbErr(err)
		}
		var batch []*store.AuditEntry
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return dbErr(err)
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			afterSeq = e.Seq
		}
		if len(batch) < page {
			return nil
		}
	}
}

func validKind(kind string) bool {
	return kind != "" && store.ValidID(kind)
}

// PutGoverned implements store.GovernanceStore.
func (s *Store) PutGoverned(ctx context.Context, o *store.GovernedObject, expect int64, audit store.AuditBuilder) error {
	if err := s.check(); err != nil {
		return err
	}
	switch {
	case o == nil:
		return fmt.Errorf("%w: nil governed object", store.ErrInvalid)
	case !validKind(o.Kind) || !store.ValidID(o.ID):
		return fmt.Errorf("%w: governed object kind %q id %q", store.ErrInvalid, o.Kind, o.ID)
	case expect < 0:
		return fmt.Errorf("%w: expected version %d", store.ErrInvalid, expect)
	case len(o.Data) == 0:
		return fmt.Errorf("%w: governed object %s/%s without data", store.ErrInvalid, o.Kind, o.ID)
	}
	now := s.opts.Now().UTC()
	var expires int64
	if !o.Expires.IsZero() {
		expires = o.Expires.UnixNano()
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if expect == 0 {
			res, err := tx.ExecContext(ctx, `INSERT INTO governed (kind, id, state, expires_at, data, version, updated_at)
				VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (kind, id) DO NOTHING`,
				o.Kind, o.ID, o.State, expires, string(o.Data), now.UnixNano())
			if err != nil {
				return dbErr(err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return dbErr(err)
			} else if n == 0 {
				return fmt.Errorf("%w: %s %s", store.ErrExists, o.Kind, o.ID)
			}
		} else {
			res, err := tx.ExecContext(ctx, `UPDATE governed SET state = ?, expires_at = ?, data = ?, version = version + 1, updated_at = ?
				WHERE kind = ? AND id = ? AND version = ?`,
				o.State, expires, string(o.Data), now.UnixNano(), o.Kind, o.ID, expect)
			if err != nil {
				return dbErr(err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return dbErr(err)
			} else if n == 0 {
				var v int64
				err := dbErr(tx.QueryRowContext(ctx, `SELECT version FROM governed WHERE kind = ? AND id = ?`, o.Kind, o.ID).Scan(&v))
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("%w: %s %s", store.ErrNotFound, o.Kind, o.ID)
				} else if err != nil {
					return err
				}
				return fmt.Errorf("%w: %s %s is at version %d, not %d", store.ErrChanged, o.Kind, o.ID, v, expect)
			}
		}
		if audit != nil {
			if _, err := appendAudit(ctx, tx, audit); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.Version, o.UpdatedAt = expect+1, now
	return nil
}

const governedCols = `kind, id, state, expires_at, data, version, updated_at`

func scanGoverned(sc interface{ Scan(...any) error }) (*store.GovernedObject, error) {
	var (
		o                store.GovernedObject
		expires, updated int64
		data             string
	)
	if err := sc.Scan(&o.Kind, &o.ID, &o.State, &expires, &data, &o.Version, &updated); err != nil {
		return nil, dbErr(err)
	}
	if expires != 0 {
		o.Expires = nanoTime(expires)
	}
	o.Data, o.UpdatedAt = []byte(data), nanoTime(updated)
	return &o, nil
}

// GetGoverned implements store.GovernanceStore.
func (s *Store) GetGoverned(ctx context.Context, kind, id string) (*store.GovernedObject, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	o, err := scanGoverned(s.rdb.QueryRowContext(ctx, `SELECT `+governedCols+` FROM governed WHERE kind = ? AND id = ?`, kind, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s %q", store.ErrNotFound, kind, id)
	}
	return o, err
}

// ListGoverned implements store.GovernanceStore.
func (s *Store) ListGoverned(ctx context.Context, kind string) ([]*store.GovernedObject, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+governedCols+` FROM governed WHERE kind = ? ORDER BY id`, kind)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []*store.GovernedObject
	for rows.Next() {
		o, err := scanGoverned(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, dbErr(rows.Err())
}

// AddHits implements store.GovernanceStore.
func (s *Store) AddHits(ctx context.Context, hits []store.Hits) error {
	if err := s.check(); err != nil {
		return err
	}
	for _, h := range hits {
		if h.Count < 0 || !validKind(h.Kind) || h.ID == "" {
			return fmt.Errorf("%w: hits %+v", store.ErrInvalid, h)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO governed_hits (kind, id, hits, last_used) VALUES (?, ?, ?, ?)
			ON CONFLICT (kind, id) DO UPDATE SET hits = hits + excluded.hits, last_used = MAX(last_used, excluded.last_used)`)
		if err != nil {
			return dbErr(err)
		}
		defer st.Close()
		for _, h := range hits {
			var last int64
			if !h.LastUsed.IsZero() {
				last = h.LastUsed.UnixNano()
			}
			if _, err := st.ExecContext(ctx, h.Kind, h.ID, h.Count, last); err != nil {
				return dbErr(err)
			}
		}
		return nil
	})
}

// GetHits implements store.GovernanceStore.
func (s *Store) GetHits(ctx context.Context, kind string) (map[string]store.Hits, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, hits, last_used FROM governed_hits WHERE kind = ?`, kind)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := map[string]store.Hits{}
	for rows.Next() {
		h := store.Hits{Kind: kind}
		var last int64
		if err := rows.Scan(&h.ID, &h.Count, &last); err != nil {
			return nil, dbErr(err)
		}
		if last != 0 {
			h.LastUsed = nanoTime(last)
		}
		out[h.ID] = h
	}
	return out, dbErr(rows.Err())
}

// MarkNotified implements store.GovernanceStore.
func (s *Store) MarkNotified(ctx context.Context, kind string, keys []string, at time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	if !validKind(kind) || at.IsZero() {
		return fmt.Errorf("%w: notification kind %q at %v", store.ErrInvalid, kind, at)
	}
	if len(keys) == 0 {
		return nil
	}
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO notified (kind, key, at) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO NOTHING`)
		if err != nil {
			return dbErr(err)
		}
		defer st.Close()
		for _, k := range keys {
			if _, err := st.ExecContext(ctx, kind, k, at.UnixNano()); err != nil {
				return dbErr(err)
			}
		}
		return nil
	})
}

// Notified implements store.GovernanceStore.
func (s *Store) Notified(ctx context.Context, kind string, keys []string) (map[string]bool, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	const chunk = 500 // under SQLite's bound on host parameters
	for len(keys) > 0 {
		n := min(len(keys), chunk)
		part := keys[:n]
		keys = keys[n:]
		args := make([]any, 0, n+1)
		args = append(args, kind)
		for _, k := range part {
			args = append(args, k)
		}
		rows, err := s.rdb.QueryContext(ctx, `SELECT key FROM notified WHERE kind = ? AND key IN (?`+
			strings.Repeat(", ?", n-1)+`)`, args...)
		if err != nil {
			return nil, dbErr(err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, dbErr(err)
			}
			out[k] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, dbErr(err)
		}
	}
	return out, nil
}

// PruneNotified implements store.GovernanceStore.
func (s *Store) PruneNotified(ctx context.Context, before time.Time) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM notified WHERE at < ?`, before.UnixNano())
		if err != nil {
			return dbErr(err)
		}
		n, err = res.RowsAffected()
		return dbErr(err)
	})
	return n, err
}

// UpdateQuarantineStateAudited implements store.GovernanceStore: the
// compare-and-set of UpdateQuarantineState and the audit append (none
// when audit is nil) in one transaction.
func (s *Store) UpdateQuarantineStateAudited(ctx context.Context, id string, from, to store.QuarantineState, actor string, audit store.AuditBuilder) error {
	if err := s.check(); err != nil {
		return err
	}
	if !from.Valid() || !to.Valid() {
		return fmt.Errorf("%w: state %q → %q", store.ErrInvalid, from, to)
	}
	if !store.CanTransition(from, to) {
		return fmt.Errorf("%w: %s → %s", store.ErrInvalidTransition, from, to)
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE quarantine SET state = ?, updated_at = ?, updated_by = ? WHERE id = ? AND state = ?`,
			string(to), s.opts.Now().UnixNano(), actor, id, string(from))
		if err != nil {
			return dbErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return dbErr(err)
		}
		if n != 1 {
			var actual string
			err = dbErr(tx.QueryRowContext(ctx, `SELECT state FROM quarantine WHERE id = ?`, id).Scan(&actual))
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: quarantine item %q", store.ErrNotFound, id)
			} else if err != nil {
				return err
			}
			return &store.StateConflictError{ID: id, Expected: from, Actual: store.QuarantineState(actual)}
		}
		if audit != nil {
			if _, err := appendAudit(ctx, tx, audit); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if to == store.Deleted {
		// The state change is committed; a body that cannot be removed
		// now goes when the item is pruned.
		s.removeBodies(id)
	}
	return nil
}
