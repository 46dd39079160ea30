package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

const setupLinkCols = "id, connection_id, hash, features, creator, created_at, expires_at, revoked_at"

// PutSetupLink implements store.Store. The insert names its connection in
// the same statement, so a link never outlives a connection deleted at the
// same moment.
func (db *DB) PutSetupLink(ctx context.Context, l store.SetupLink) error {
	what := fmt.Sprintf("put setup link %q", l.ID)
	if err := required(what, "id", l.ID, "connection_id", l.ConnectionID, "hash", l.Hash, "expires_at", l.ExpiresAt); err != nil {
		return err
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = db.now()
	}
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.insert(ctx, tx, what,
			"INSERT INTO setup_links ("+setupLinkCols+") SELECT $1, $2, $3, $4, $5, $6, $7, $8"+
				" WHERE EXISTS (SELECT 1 FROM connections WHERE id = $2)",
			l.ID, l.ConnectionID, l.Hash, strings.Join(l.Features, ","), l.Creator, db.t(l.CreatedAt), db.t(l.ExpiresAt),
			db.t(l.RevokedAt)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM setup_links WHERE id = $1", l.ID).Scan(&n)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: connection %q: %w", what, l.ConnectionID, store.ErrNotFound)
	}
	return nil
}

func scanSetupLink(row interface{ Scan(...any) error }) (store.SetupLink, error) {
	var l store.SetupLink
	var features string
	err := row.Scan(&l.ID, &l.ConnectionID, bytesCol{&l.Hash}, &features, &l.Creator, timeCol{&l.CreatedAt},
		timeCol{&l.ExpiresAt}, timeCol{&l.RevokedAt})
	if features != "" {
		l.Features = strings.Split(features, ",")
	}
	return l, err
}

// SetupLinkByHash implements store.Store.
func (db *DB) SetupLinkByHash(ctx context.Context, hash []byte) (store.SetupLink, error) {
	if len(hash) == 0 {
		return store.SetupLink{}, fmt.Errorf("setup link by hash: hash is required: %w", store.ErrInvalidArgument)
	}
	l, err := scanSetupLink(db.r.QueryRowContext(ctx, "SELECT "+setupLinkCols+" FROM setup_links WHERE hash = $1", hash))
	if err != nil {
		return store.SetupLink{}, notFound("setup link by hash", err)
	}
	return l, nil
}

// ListSetupLinks implements store.Store.
func (db *DB) ListSetupLinks(ctx context.Context, connectionID string) ([]store.SetupLink, error) {
	what := fmt.Sprintf("list setup links of %q", connectionID)
	rows, err := db.r.QueryContext(ctx, "SELECT "+setupLinkCols+" FROM setup_links WHERE connection_id = $1"+
		" ORDER BY created_at DESC, id DESC", connectionID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []store.SetupLink
	for rows.Next() {
		l, err := scanSetupLink(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// RevokeSetupLink implements store.Store.
func (db *DB) RevokeSetupLink(ctx context.Context, connectionID, id string, at time.Time) (store.SetupLink, error) {
	what := fmt.Sprintf("revoke setup link %q", id)
	if err := required(what, "at", at); err != nil {
		return store.SetupLink{}, err
	}
	if _, err := db.w.ExecContext(ctx, "UPDATE setup_links SET revoked_at = $3 WHERE connection_id = $1 AND id = $2"+
		" AND revoked_at IS NULL", connectionID, id, db.t(at)); err != nil {
		return store.SetupLink{}, fmt.Errorf("%s: %w", what, err)
	}
	l, err := scanSetupLink(db.w.QueryRowContext(ctx, "SELECT "+setupLinkCols+" FROM setup_links WHERE connection_id = $1 AND id = $2",
		connectionID, id))
	if err != nil {
		return store.SetupLink{}, notFound(what, err)
	}
	return l, nil
}
