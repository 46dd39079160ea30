package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ssogate/ssogate/store"
)

// CompleteLogin implements store.Store: one write transaction, whose
// single-use statements come first (the assertion's INSERT ... ON CONFLICT
// DO NOTHING, then the pending request's conditional UPDATE) so a
// concurrent twin waits on their row locks and then loses; the inserts of
// the session and the code follow, and the outbox's events last.
func (db *DB) CompleteLogin(ctx context.Context, l store.LoginCompletion) (out store.PendingRequest, err error) {
	defer db.classify(&err)
	part := func(name string, err error) error { return &store.CompletionError{Part: name, Err: err} }
	if err := required("complete login", "connection id", l.ConnectionID); err != nil {
		return store.PendingRequest{}, err
	}
	if l.AssertionID != "" {
		if err := required("complete login", "assertion expiry", l.AssertionExpiresAt); err != nil {
			return store.PendingRequest{}, err
		}
	}
	if l.RequestID != "" {
		if err := required("complete login", "now", l.Now); err != nil {
			return store.PendingRequest{}, err
		}
	}
	if s := l.Session; s != nil {
		if err := required("complete login: session", "id", s.ID, "expiry", s.ExpiresAt); err != nil {
			return store.PendingRequest{}, err
		}
	}
	if c := l.Code; c != nil {
		if err := required("complete login: code", "hash", c.Hash, "expiry", c.ExpiresAt); err != nil {
			return store.PendingRequest{}, err
		}
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if l.AssertionID != "" {
			if err := db.recordAssertion(ctx, tx, l.ConnectionID, l.AssertionID, l.AssertionExpiresAt); err != nil {
				return part(store.PartAssertion, err)
			}
		}
		if l.RequestID != "" {
			r, err := db.consumePending(ctx, tx, l.ConnectionID, l.RequestID, l.Now)
			if err != nil {
				return part(store.PartRequest, err)
			}
			out = r
		}
		if l.Session != nil {
			if err := db.insertSession(ctx, tx, *l.Session); err != nil {
				return part(store.PartSession, err)
			}
		}
		if l.Code != nil {
			if err := db.insertCode(ctx, tx, *l.Code); err != nil {
				return part(store.PartCode, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.PendingRequest{}, err
	}
	return out, nil
}

// RedeemCode implements store.Store.
func (db *DB) RedeemCode(ctx context.Context, hash []byte, now time.Time, refresh store.RefreshToken) (out store.Redemption, err error) {
	defer db.classify(&err)
	if err := required("redeem code", "hash", hash); err != nil {
		return store.Redemption{}, err
	}
	if len(refresh.Hash) > 0 {
		if err := required("redeem code: refresh token", "expiry", refresh.ExpiresAt); err != nil {
			return store.Redemption{}, err
		}
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		c, err := db.consumeCode(ctx, tx, hash, now)
		if err != nil {
			return err
		}
		s, err := scanSession(db.prep(tx).QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = $1", c.SessionID))
		if err != nil {
			return notFound(fmt.Sprintf("redeem code: session %q", c.SessionID), err)
		}
		out = store.Redemption{Code: c, Session: s}
		if len(refresh.Hash) == 0 || !s.Live(now) {
			return nil // the code is spent either way
		}
		refresh.SessionID = s.ID
		refresh.SpentAt, refresh.NextHash = time.Time{}, nil
		if refresh.CreatedAt.IsZero() {
			refresh.CreatedAt = db.now()
		}
		refresh.ExpiresAt = capAt(refresh.ExpiresAt, s.ExpiresAt)
		if err := db.insertRefreshToken(ctx, tx, refresh, s.ExpiresAt); err != nil {
			return fmt.Errorf("redeem code: %w", err)
		}
		out.Refresh = refresh
		return nil
	})
	if err != nil {
		return store.Redemption{}, err
	}
	if len(out.Refresh.Hash) > 0 {
		out.Refresh.CreatedAt = out.Refresh.CreatedAt.UTC().Truncate(timePrecision)
		out.Refresh.ExpiresAt = out.Refresh.ExpiresAt.UTC().Truncate(timePrecision)
	}
	return out, nil
}

// ConnectionChanges implements store.Store.
func (db *DB) ConnectionChanges(ctx context.Context) (_ int64, err error) {
	defer db.classify(&err)
	var n int64
	if err := db.prep(db.r).QueryRowContext(ctx, "SELECT n FROM connection_changes WHERE id = 1").Scan(&n); err != nil {
		return 0, fmt.Errorf("connection changes: %w", err)
	}
	return n, nil
}

// bumpConnectionChanges runs in every transaction that writes a
// connection, so that ConnectionChanges moves with it.
func bumpConnectionChanges(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "UPDATE connection_changes SET n = n + 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("count connection change: %w", err)
	}
	return nil
}
