package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"portcullis/internal/store"
)

// quarantineRow is an item encoded for the writer.
type quarantineRow struct {
	id             string
	recipientsJSON string
	rcptNorm       []string
	sender         string
	senderNorm     string
	subject        string
	reason         string
	receivedAt     int64
	expiresAt      int64
	state          string
	size           int64
	sha256         string
	updatedAt      int64
}

// bodyPath is where the body of quarantine item id is stored. Ids are
// checked by store.ValidID, so they never leave the directory.
func (s *Store) bodyPath(id string) string {
	return filepath.Join(s.qdir, id+bodySuffix)
}

// claim marks quarantine id as being written by this process, so that two
// concurrent puts of one id cannot overwrite each other's file.
func (s *Store) claim(id string) bool {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	if _, busy := s.inflight[id]; busy {
		return false
	}
	s.inflight[id] = struct{}{}
	return true
}

func (s *Store) unclaim(id string) {
	s.inflightMu.Lock()
	delete(s.inflight, id)
	s.inflightMu.Unlock()
}

// PutQuarantine implements store.Store. The order makes the 250 safe:
//
//  1. the body is written to a temporary file in the quarantine directory
//     and fsynced;
//  2. it is renamed to <id>.eml and the directory is fsynced, so the name
//     survives a crash;
//  3. the row is committed through the writer (synchronous=FULL: the WAL
//     is fsynced before the commit returns).
//
// A crash between 2 and 3 leaves a body file without a row, which the
// caller never acknowledged; Prune removes it after Options.OrphanGrace.
func (s *Store) PutQuarantine(ctx context.Context, item *store.QuarantineItem, body io.Reader) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := store.ValidateQuarantineItem(item); err != nil {
		return err
	}
	if body == nil {
		return fmt.Errorf("%w: quarantine item %s without a body", store.ErrInvalid, item.ID)
	}
	if !s.claim(item.ID) {
		return fmt.Errorf("%w: quarantine item %s is being stored", store.ErrExists, item.ID)
	}
	defer s.unclaim(item.ID)

	var one int
	err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM quarantine WHERE id = ?`, item.ID).Scan(&one)
	switch err = dbErr(err); {
	case err == nil:
		return fmt.Errorf("%w: quarantine item %s", store.ErrExists, item.ID)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}

	size, sum, err := s.writeBody(ctx, item.ID, body, item.Size, item.SHA256)
	if err != nil {
		return err
	}
	item.Size, item.SHA256 = size, sum
	item.UpdatedAt, item.UpdatedBy = s.opts.Now().UTC(), ""

	rcpts, err := json.Marshal(item.Recipients)
	if err != nil {
		return fmt.Errorf("%w: recipients: %w", store.ErrInvalid, err)
	}
	row := &quarantineRow{
		id:             item.ID,
		recipientsJSON: string(rcpts),
		sender:         item.Sender,
		senderNorm:     store.NormalizeAddress(item.Sender),
		subject:        item.Subject,
		reason:         item.Reason,
		receivedAt:     item.ReceivedAt.UnixNano(),
		expiresAt:      item.ExpiresAt.UnixNano(),
		state:          string(item.State),
		size:           size,
		sha256:         sum,
		updatedAt:      item.UpdatedAt.UnixNano(),
	}
	seen := map[string]bool{}
	for _, r := range item.Recipients {
		if n := store.NormalizeAddress(r); n != "" && !seen[n] {
			seen[n] = true
			row.rcptNorm = append(row.rcptNorm, n)
		}
	}
	// The body file stays in place if the row fails: whether a failed
	// commit reached the disk is not certain, and a file without a row
	// is removed by Prune.
	return s.w.do(ctx, &op{kind: opQuarantine, q: row})
}

// writeBody stores body durably as the file of id and returns its size and
// SHA-256. wantSize and wantSum, when set, must match.
func (s *Store) writeBody(ctx context.Context, id string, body io.Reader, wantSize int64, wantSum string) (int64, string, error) {
	tmp, err := os.CreateTemp(s.qdir, tmpPrefix+id+"-*"+tmpSuffix)
	if err != nil {
		return 0, "", fmt.Errorf("%w: quarantine body: %w", store.ErrUnavailable, err)
	}
	tmpName := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	h := sha256.New()
	limited := io.LimitReader(ctxReader{ctx, body}, s.opts.MaxBodySize+1)
	n, err := io.Copy(io.MultiWriter(tmp, h), limited)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		return 0, "", fmt.Errorf("%w: quarantine body %s: %w", store.ErrUnavailable, id, err)
	}
	if n > s.opts.MaxBodySize {
		return 0, "", fmt.Errorf("%w: quarantine body %s exceeds %d bytes", store.ErrTooLarge, id, s.opts.MaxBodySize)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if wantSum != "" && !strings.EqualFold(wantSum, sum) || wantSize != 0 && wantSize != n {
		return 0, "", fmt.Errorf("%w: quarantine body %s is %d bytes sha256 %s, item says %d bytes sha256 %s",
			store.ErrCorrupt, id, n, sum, wantSize, wantSum)
	}
	if err := tmp.Sync(); err != nil {
		return 0, "", fmt.Errorf("%w: fsync quarantine body %s: %w", store.ErrUnavailable, id, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, "", fmt.Errorf("%w: quarantine body %s: %w", store.ErrUnavailable, id, err)
	}
	// Replaces only a file left by an interrupted put of the same id: the
	// id has no row and is claimed by this call.
	if err := os.Rename(tmpName, s.bodyPath(id)); err != nil {
		return 0, "", fmt.Errorf("%w: quarantine body %s: %w", store.ErrUnavailable, id, err)
	}
	done = true
	if err := syncDir(s.qdir); err != nil {
		return 0, "", err
	}
	return n, sum, nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

const quarantineCols = `q.seq, q.id, q.recipients, q.sender, q.subject, q.reason, q.received_at,
	q.expires_at, q.state, q.size, q.sha256, q.updated_at, q.updated_by`

func scanQuarantine(sc interface{ Scan(...any) error }) (int64, *store.QuarantineItem, error) {
	var (
		seq, received, expires, updated int64
		rcpts, state                    string
		it                              store.QuarantineItem
	)
	err := sc.Scan(&seq, &it.ID, &rcpts, &it.Sender, &it.Subject, &it.Reason, &received,
		&expires, &state, &it.Size, &it.SHA256, &updated, &it.UpdatedBy)
	if err != nil {
		return 0, nil, dbErr(err)
	}
	if err := json.Unmarshal([]byte(rcpts), &it.Recipients); err != nil {
		return 0, nil, fmt.Errorf("%w: quarantine item %s recipients: %w", store.ErrCorrupt, it.ID, err)
	}
	it.ReceivedAt, it.ExpiresAt, it.UpdatedAt = nanoTime(received), nanoTime(expires), nanoTime(updated)
	it.State = store.QuarantineState(state)
	return seq, &it, nil
}

// GetQuarantine implements store.Store.
func (s *Store) GetQuarantine(ctx context.Context, id string) (*store.QuarantineItem, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	_, it, err := scanQuarantine(s.rdb.QueryRowContext(ctx,
		`SELECT `+quarantineCols+` FROM quarantine q WHERE q.id = ?`, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: quarantine item %q", store.ErrNotFound, id)
	}
	return it, err
}

// ListQuarantine implements store.Store.
func (s *Store) ListQuarantine(ctx context.Context, q store.QuarantineQuery) (store.QuarantinePage, error) {
	if err := s.check(); err != nil {
		return store.QuarantinePage{}, err
	}
	q, err := q.Normalize()
	if err != nil {
		return store.QuarantinePage{}, err
	}
	var b queryBuilder
	if q.Recipient != "" {
		b.where("q.seq IN (SELECT quarantine_seq FROM quarantine_rcpt WHERE rcpt = ?)", q.Recipient)
	}
	if q.Sender != "" {
		b.where("q.sender_norm = ?", q.Sender)
	}
	if q.State != "" {
		b.where("q.state = ?", string(q.State))
	}
	b.timeRange("q.received_at", q.Since, q.Until)
	if err := b.cursor("q.received_at", "q.seq", q.Cursor); err != nil {
		return store.QuarantinePage{}, err
	}
	query := "SELECT " + quarantineCols + " FROM quarantine q" + b.clause() +
		" ORDER BY q.received_at DESC, q.seq DESC LIMIT ? OFFSET ?"
	rows, err := s.rdb.QueryContext(ctx, query, append(b.args, q.Limit+1, q.Offset)...)
	if err != nil {
		return store.QuarantinePage{}, dbErr(err)
	}
	defer rows.Close()
	var page store.QuarantinePage
	var last store.Cursor
	for rows.Next() {
		seq, it, err := scanQuarantine(rows)
		if err != nil {
			return store.QuarantinePage{}, err
		}
		if len(page.Items) == q.Limit {
			page.Next = last.Encode()
			break
		}
		page.Items = append(page.Items, it)
		last = store.Cursor{ReceivedAt: it.ReceivedAt, Seq: seq}
	}
	if err := rows.Err(); err != nil {
		return store.QuarantinePage{}, dbErr(err)
	}
	return page, nil
}

// OpenQuarantineBody implements store.Store.
func (s *Store) OpenQuarantineBody(ctx context.Context, id string) (io.ReadCloser, error) {
	it, err := s.GetQuarantine(ctx, id)
	if err != nil {
		return nil, err
	}
	if it.State == store.Deleted {
		return nil, fmt.Errorf("%w: body of quarantine item %s was deleted", store.ErrNotFound, id)
	}
	f, err := os.Open(s.bodyPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: body of quarantine item %s is missing", store.ErrCorrupt, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return &verifyingReader{f: f, h: sha256.New(), id: id, size: it.Size, sum: it.SHA256}, nil
}

// verifyingReader hashes what is read and, at the end of the file, checks
// it against the recorded size and digest.
type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	id   string
	n    int64
	size int64
	sum  string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); v.n != v.size || got != v.sum {
			return n, fmt.Errorf("%w: quarantine body %s is %d bytes sha256 %s, recorded %d bytes sha256 %s",
				store.ErrCorrupt, v.id, v.n, got, v.size, v.sum)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// UpdateQuarantineState implements store.Store with one conditional UPDATE
// in a synchronous transaction: UpdateQuarantineStateAudited without an
// audit entry.
func (s *Store) UpdateQuarantineState(ctx context.Context, id string, from, to store.QuarantineState, actor string) error {
	return s.UpdateQuarantineStateAudited(ctx, id, from, to, actor, nil)
}

// removeBodies deletes body files and makes the removals durable; failures
// are logged.
func (s *Store) removeBodies(ids ...string) {
	removed := false
	for _, id := range ids {
		err := os.Remove(s.bodyPath(id))
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, os.ErrNotExist):
			s.opts.Logger.Error("store: removing quarantine body", "id", id, "err", err)
		}
	}
	if removed {
		if err := syncDir(s.qdir); err != nil {
			s.opts.Logger.Error("store: syncing quarantine directory", "err", err)
		}
	}
}

// writeTx runs fn in a transaction on the writing connection and commits
// it synchronously.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return dbErr(tx.Commit())
}
