package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"portcullis/internal/store"
)

// pruneChunk is how many rows one pruning transaction deletes, so that a
// large prune never holds the write lock long enough to stall the
// writer's batches.
const pruneChunk = 1000

// Prune implements store.Store.
func (s *Store) Prune(ctx context.Context, now time.Time, evidenceRetention, quarantineRetention time.Duration) (store.PruneResult, error) {
	var res store.PruneResult
	if err := s.check(); err != nil {
		return res, err
	}
	if evidenceRetention < 0 || quarantineRetention < 0 {
		return res, fmt.Errorf("%w: negative retention", store.ErrInvalid)
	}
	if evidenceRetention > 0 {
		cutoff := now.Add(-evidenceRetention).UnixNano()
		for {
			var n int64
			err := s.writeTx(ctx, func(tx *sql.Tx) error {
				r, err := tx.ExecContext(ctx, `DELETE FROM evidence WHERE seq IN
					(SELECT seq FROM evidence WHERE received_at < ? LIMIT ?)`, cutoff, pruneChunk)
				if err != nil {
					return dbErr(err)
				}
				n, err = r.RowsAffected()
				return dbErr(err)
			})
			if err != nil {
				return res, err
			}
			res.Evidence += n
			if n < pruneChunk {
				break
			}
		}
	}

	receivedCutoff := int64(math.MinInt64)
	if quarantineRetention > 0 {
		receivedCutoff = now.Add(-quarantineRetention).UnixNano()
	}
	for {
		var ids []string
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `DELETE FROM quarantine WHERE seq IN
				(SELECT seq FROM quarantine WHERE expires_at <= ? OR received_at < ? LIMIT ?)
				RETURNING id`, now.UnixNano(), receivedCutoff, pruneChunk)
			if err != nil {
				return dbErr(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return dbErr(err)
				}
				ids = append(ids, id)
			}
			return dbErr(rows.Err())
		})
		if err != nil {
			return res, err
		}
		// Rows first, then files: a crash in between leaves files
		// without rows, which the sweep below removes.
		s.removeBodies(ids...)
		res.Quarantine += int64(len(ids))
		res.QuarantineIDs = append(res.QuarantineIDs, ids...)
		if len(ids) < pruneChunk {
			break
		}
	}

	n, err := s.sweepOrphans(ctx, now)
	res.Orphans = n
	return res, err
}

// sweepOrphans removes, from the quarantine directory, temporary files and
// body files that have no row (or whose item is deleted), once they are
// older than OrphanGrace.
func (s *Store) sweepOrphans(ctx context.Context, now time.Time) (int64, error) {
	entries, err := os.ReadDir(s.qdir)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	old := now.Add(-s.opts.OrphanGrace)
	var removed int64
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(old) {
			continue
		}
		if strings.HasPrefix(name, tmpPrefix) && strings.HasSuffix(name, tmpSuffix) {
			if os.Remove(s.qdir+string(os.PathSeparator)+name) == nil {
				removed++
			}
			continue
		}
		id, ok := strings.CutSuffix(name, bodySuffix)
		if !ok || !store.ValidID(id) || !s.claim(id) {
			continue
		}
		gone, err := s.bodyUnreferenced(ctx, id)
		if err == nil && gone && os.Remove(s.bodyPath(id)) == nil {
			removed++
		}
		s.unclaim(id)
		if err != nil {
			return removed, err
		}
	}
	if removed > 0 {
		if err := syncDir(s.qdir); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// bodyUnreferenced reports whether no item needs the body of id.
func (s *Store) bodyUnreferenced(ctx context.Context, id string) (bool, error) {
	var state string
	err := dbErr(s.rdb.QueryRowContext(ctx, `SELECT state FROM quarantine WHERE id = ?`, id).Scan(&state))
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return state == string(store.Deleted), nil
}

// PutConfigVersion implements store.Store.
func (s *Store) PutConfigVersion(ctx context.Context, hash, yamlText string) error {
	if err := s.check(); err != nil {
		return err
	}
	if hash == "" || len(hash) > 256 {
		return fmt.Errorf("%w: config version hash %q", store.ErrInvalid, hash)
	}
	// Usually already stored (every start stores the running config).
	if cv, err := s.GetConfigVersion(ctx, hash); err == nil {
		if cv.YAML != yamlText {
			return fmt.Errorf("%w: config version %s", store.ErrConflict, hash)
		}
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO config_version (hash, yaml, created_at) VALUES (?, ?, ?)
			ON CONFLICT (hash) DO NOTHING`, hash, yamlText, s.opts.Now().UnixNano())
		if err != nil {
			return dbErr(err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 1 {
			return dbErr(err)
		}
		var stored string
		if err := tx.QueryRowContext(ctx, `SELECT yaml FROM config_version WHERE hash = ?`, hash).Scan(&stored); err != nil {
			return dbErr(err)
		}
		if stored != yamlText {
			return fmt.Errorf("%w: config version %s", store.ErrConflict, hash)
		}
		return nil
	})
}

// GetConfigVersion implements store.Store.
func (s *Store) GetConfigVersion(ctx context.Context, hash string) (*store.ConfigVersion, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	cv := &store.ConfigVersion{Hash: hash}
	var created int64
	err := dbErr(s.rdb.QueryRowContext(ctx,
		`SELECT yaml, created_at FROM config_version WHERE hash = ?`, hash).Scan(&cv.YAML, &created))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: config version %q", store.ErrNotFound, hash)
	}
	if err != nil {
		return nil, err
	}
	cv.CreatedAt = nanoTime(created)
	return cv, nil
}
