package sqlstore

import (
	"context"
	"time"
)

// scimRequestRetention is how long Sweep keeps the SCIM request log.
const scimRequestRetention = 7 * 24 * time.Hour

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
	// The SCIM request log shows recent activity; a week of it is kept.
	n, err := affected(ctx, db.w, "sweep scim_requests", "DELETE FROM scim_requests WHERE time <= $1", db.t(now.Add(-scimRequestRetention)))
	return total + n, err
}
