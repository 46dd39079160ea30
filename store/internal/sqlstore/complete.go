package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ssogate/ssogate/store"
)

// CompleteLogin implements store.Store: one write transaction, whose
// single-use statements come first (the pending request's conditional
// UPDATE, then the assertion's INSERT ... ON CONFLICT DO NOTHING) so a
// concurrent twin waits on their row locks and then loses; the inserts of
// the session and the code follow, and the outbox's events last. A request
// that cannot be consumed is reported as the assertion's failure when the
// assertion ID was recorded before (a replayed response uses up both), as
// if the assertion had been tried first. With Dialect.CTEWrites the whole
// is tried as one statement first, in the same order (see chain).
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
	if db.d.CTEWrites {
		if out, done, err := db.completeLoginOneStatement(ctx, l); done {
			return out, err
		}
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if l.RequestID != "" {
			r, err := db.consumePending(ctx, tx, l.ConnectionID, l.RequestID, l.Now)
			if err != nil {
				if l.AssertionID != "" {
					if seen, serr := db.assertionSeen(ctx, tx, l.ConnectionID, l.AssertionID); serr != nil {
						return part(store.PartAssertion, serr)
					} else if seen {
						return part(store.PartAssertion, fmt.Errorf("record assertion for connection %q: assertion ID seen before: %w",
							l.ConnectionID, store.ErrConsumed))
					}
				}
				return part(store.PartRequest, err)
			}
			out = r
		}
		if l.AssertionID != "" {
			if err := db.recordAssertion(ctx, tx, l.ConnectionID, l.AssertionID, l.AssertionExpiresAt); err != nil {
				return part(store.PartAssertion, err)
			}
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
	done := false
	if db.d.CTEWrites {
		if out, done, err = db.redeemCodeOneStatement(ctx, hash, now, refresh); err != nil {
			return store.Redemption{}, err
		}
	}
	if !done {
		err = db.redeemCodeTx(ctx, hash, now, refresh, &out)
	}
	if err != nil {
		return store.Redemption{}, err
	}
	if len(out.Refresh.Hash) > 0 {
		out.Refresh.CreatedAt = out.Refresh.CreatedAt.UTC().Truncate(timePrecision)
		out.Refresh.ExpiresAt = out.Refresh.ExpiresAt.UTC().Truncate(timePrecision)
	}
	return out, nil
}

// redeemCodeTx is RedeemCode as a transaction.
func (db *DB) redeemCodeTx(ctx context.Context, hash []byte, now time.Time, refresh store.RefreshToken, out *store.Redemption) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		c, err := db.consumeCode(ctx, tx, hash, now)
		if err != nil {
			return err
		}
		s, err := scanSession(db.prep(tx).QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = $1", c.SessionID))
		if err != nil {
			return notFound(fmt.Sprintf("redeem code: session %q", c.SessionID), err)
		}
		*out = store.Redemption{Code: c, Session: s}
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
