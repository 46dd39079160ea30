package sqlstore

import (
	"context"
	"time"
)

// Sweep implements store.Store. Each table is cleaned by its own
// autocommit DELETE: replicas sweeping at once simply delete disjoint or
// already-deleted rows, and no transaction holds locks across tables.
func (db *DB) Sweep(ctx context.Context, now time.Time) (_ int64, err error) {
	defer db.classify(&err)
	// Revocations go with their sessions: once a session has expired no
	// token of it verifies.
	tables := [...]string{"pending_requests", "assertions", "codes", "refresh_tokens", "sessions", "revocations", "setup_links"}
	var total int64
	for _, table := range tables {
		n, err := affected(ctx, db.w, "sweep "+table, "DELETE FROM "+table+" WHERE expires_at <= $1", db.t(now))
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
