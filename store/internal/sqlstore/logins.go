package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ssogate/ssogate/store"
)

const pendingCols = "connection_id, id, return_to, state, test, data, created_at, expires_at, consumed_at"

func scanPending(row interface{ Scan(...any) error }) (store.PendingRequest, error) {
	var r store.PendingRequest
	err := row.Scan(&r.ConnectionID, &r.ID, &r.ReturnTo, &r.State, &r.Test, bytesCol{&r.Data},
		timeCol{&r.CreatedAt}, timeCol{&r.ExpiresAt}, timeCol{&r.ConsumedAt})
	return r, err
}

// PutPendingRequest implements store.Store.
func (db *DB) PutPendingRequest(ctx context.Context, r store.PendingRequest) (err error) {
	defer db.classify(&err)
	if err := required("pending request", "connection id", r.ConnectionID, "id", r.ID, "expiry", r.ExpiresAt); err != nil {
		return err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = db.now()
	}
	what := fmt.Sprintf("put pending request of connection %q", r.ConnectionID)
	if db.d.CTEWrites {
		if done, err := db.putPendingOneStatement(ctx, what, r); done {
			return err
		}
	}
	return db.write(ctx, func(q execer) error {
		return db.insert(ctx, db.prep(q), what,
			"INSERT INTO pending_requests ("+pendingCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			r.ConnectionID, r.ID, r.ReturnTo, r.State, r.Test, blob(r.Data),
			db.t(r.CreatedAt), db.t(r.ExpiresAt), db.t(r.ConsumedAt))
	})
}

// GetPendingRequest implements store.Store.
func (db *DB) GetPendingRequest(ctx context.Context, connectionID, id string) (_ store.PendingRequest, err error) {
	defer db.classify(&err)
	return db.getPending(ctx, db.r, connectionID, id)
}

func (db *DB) getPending(ctx context.Context, q execer, connectionID, id string) (store.PendingRequest, error) {
	r, err := scanPending(db.prep(q).QueryRowContext(ctx, "SELECT "+pendingCols+
		" FROM pending_requests WHERE connection_id = $1 AND id = $2", connectionID, id))
	if err != nil {
		return store.PendingRequest{}, notFound(fmt.Sprintf("pending request of connection %q", connectionID), err)
	}
	return r, nil
}

// ConsumePendingRequest implements store.Store.
func (db *DB) ConsumePendingRequest(ctx context.Context, connectionID, id string, now time.Time) (out store.PendingRequest, err error) {
	defer db.classify(&err)
	err = db.write(ctx, func(q execer) (err error) {
		out, err = db.consumePending(ctx, q, connectionID, id, now)
		return err
	})
	return out, err
}

func (db *DB) consumePending(ctx context.Context, w execer, connectionID, id string, now time.Time) (store.PendingRequest, error) {
	what := fmt.Sprintf("consume pending request of connection %q", connectionID)
	r, err := scanPending(db.prep(w).QueryRowContext(ctx, "UPDATE pending_requests SET consumed_at = $3"+
		" WHERE connection_id = $1 AND id = $2 AND consumed_at IS NULL AND expires_at > $3 RETURNING "+pendingCols,
		connectionID, id, db.t(now)))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.PendingRequest{}, fmt.Errorf("%s: %w", what, err)
	}
	r, err = db.getPending(ctx, w, connectionID, id)
	if err != nil {
		return store.PendingRequest{}, fmt.Errorf("%s: %w", what, err)
	}
	return store.PendingRequest{}, lostRace(what, r.ConsumedAt, r.ExpiresAt, now)
}

// RecordAssertion implements store.Store.
func (db *DB) RecordAssertion(ctx context.Context, connectionID, assertionID string, expiresAt time.Time) (err error) {
	defer db.classify(&err)
	what := fmt.Sprintf("record assertion for connection %q", connectionID)
	if err := required(what, "connection id", connectionID, "assertion id", assertionID, "expiry", expiresAt); err != nil {
		return err
	}
	return db.write(ctx, func(q execer) error {
		return db.recordAssertion(ctx, q, connectionID, assertionID, expiresAt)
	})
}

// assertionSeen reports whether the assertion ID is recorded.
func (db *DB) assertionSeen(ctx context.Context, q execer, connectionID, assertionID string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, "SELECT 1 FROM assertions WHERE connection_id = $1 AND assertion_id = $2",
		connectionID, assertionID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("record assertion for connection %q: %w", connectionID, err)
	}
	return true, nil
}

// recordAssertion inserts the assertion ID; the first writer wins.
func (db *DB) recordAssertion(ctx context.Context, q execer, connectionID, assertionID string, expiresAt time.Time) error {
	what := fmt.Sprintf("record assertion for connection %q", connectionID)
	n, err := affected(ctx, db.prep(q), what, "INSERT INTO assertions (connection_id, assertion_id, expires_at)"+
		" VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", connectionID, assertionID, db.t(expiresAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: assertion ID seen before: %w", what, store.ErrConsumed)
	}
	return nil
}

const codeCols = "hash, session_id, connection_id, data, created_at, expires_at"

func scanCode(row interface{ Scan(...any) error }) (store.Code, error) {
	var c store.Code
	err := row.Scan(bytesCol{&c.Hash}, &c.SessionID, &c.ConnectionID, bytesCol{&c.Data},
		timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt})
	return c, err
}

// PutCode implements store.Store.
func (db *DB) PutCode(ctx context.Context, c store.Code) (err error) {
	defer db.classify(&err)
	if err := required("put code", "hash", c.Hash, "expiry", c.ExpiresAt); err != nil {
		return err
	}
	return db.write(ctx, func(q execer) error { return db.insertCode(ctx, q, c) })
}

func (db *DB) insertCode(ctx context.Context, q execer, c store.Code) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = db.now()
	}
	return db.insert(ctx, db.prep(q), "put code",
		"INSERT INTO codes ("+codeCols+") VALUES ($1, $2, $3, $4, $5, $6)",
		c.Hash, c.SessionID, c.ConnectionID, blob(c.Data), db.t(c.CreatedAt), db.t(c.ExpiresAt))
}

// ConsumeCode implements store.Store.
func (db *DB) ConsumeCode(ctx context.Context, hash []byte, now time.Time) (out store.Code, err error) {
	defer db.classify(&err)
	if err := required("consume code", "hash", hash); err != nil {
		return store.Code{}, err
	}
	err = db.write(ctx, func(q execer) (err error) {
		out, err = db.consumeCode(ctx, q, hash, now)
		return err
	})
	return out, err
}

func (db *DB) consumeCode(ctx context.Context, w execer, hash []byte, now time.Time) (store.Code, error) {
	const what = "consume code"
	c, err := scanCode(db.prep(w).QueryRowContext(ctx, "UPDATE codes SET consumed_at = $2"+
		" WHERE hash = $1 AND consumed_at IS NULL AND expires_at > $2 RETURNING "+codeCols, hash, db.t(now)))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Code{}, fmt.Errorf("%s: %w", what, err)
	}
	var consumedAt, expiresAt time.Time
	err = db.prep(w).QueryRowContext(ctx, "SELECT consumed_at, expires_at FROM codes WHERE hash = $1", hash).
		Scan(timeCol{&consumedAt}, timeCol{&expiresAt})
	if err != nil {
		return store.Code{}, notFound(what, err)
	}
	return store.Code{}, lostRace(what, consumedAt, expiresAt, now)
}
