package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ssogate/ssogate/store"
)

const sessionCols = "id, connection_id, tenant_id, subject, name_id, name_id_format, session_index," +
	" identity, created_at, expires_at, revoked_at, revoke_reason"

func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var s store.Session
	err := row.Scan(&s.ID, &s.ConnectionID, &s.TenantID, &s.Subject, &s.NameID, &s.NameIDFormat, &s.SessionIndex,
		bytesCol{&s.Identity}, timeCol{&s.CreatedAt}, timeCol{&s.ExpiresAt}, timeCol{&s.RevokedAt}, &s.RevokeReason)
	return s, err
}

// CreateSession implements store.Store.
func (db *DB) CreateSession(ctx context.Context, s store.Session) (err error) {
	defer db.classify(&err)
	if err := required("create session", "id", s.ID, "connection id", s.ConnectionID, "expiry", s.ExpiresAt); err != nil {
		return err
	}
	return db.write(ctx, func(q execer) error { return db.insertSession(ctx, q, s) })
}

func (db *DB) insertSession(ctx context.Context, q execer, s store.Session) error {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = db.now()
	}
	return db.insert(ctx, db.prep(q), fmt.Sprintf("create session %q", s.ID),
		"INSERT INTO sessions ("+sessionCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
		s.ID, s.ConnectionID, s.TenantID, s.Subject, s.NameID, s.NameIDFormat, s.SessionIndex,
		blob(s.Identity), db.t(s.CreatedAt), db.t(s.ExpiresAt), db.t(s.RevokedAt), s.RevokeReason)
}

// GetSession implements store.Store.
func (db *DB) GetSession(ctx context.Context, id string) (_ store.Session, err error) {
	defer db.classify(&err)
	s, err := scanSession(db.prep(db.r).QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = $1", id))
	if err != nil {
		return store.Session{}, notFound(fmt.Sprintf("get session %q", id), err)
	}
	return s, nil
}

// FindSessions implements store.Store.
func (db *DB) FindSessions(ctx context.Context, connectionID, nameID, sessionIndex string) (_ []store.Session, err error) {
	defer db.classify(&err)
	var q query
	q.where("connection_id = " + q.arg(connectionID))
	q.where("name_id = " + q.arg(nameID))
	if sessionIndex != "" {
		q.where("session_index = " + q.arg(sessionIndex))
	}
	rows, err := db.r.QueryContext(ctx, "SELECT "+sessionCols+" FROM sessions"+q.clause()+" ORDER BY created_at, id", q.args...)
	if err != nil {
		return nil, fmt.Errorf("find sessions of connection %q: %w", connectionID, err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("find sessions of connection %q: %w", connectionID, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find sessions of connection %q: %w", connectionID, err)
	}
	return out, nil
}

// RevokeSession implements store.Store.
func (db *DB) RevokeSession(ctx context.Context, id, reason string, at time.Time) (err error) {
	defer db.classify(&err)
	what := fmt.Sprintf("revoke session %q", id)
	return db.tx(ctx, func(tx *sql.Tx) error {
		ids, err := db.revoke(ctx, tx, reason, at, "id = $1", id)
		if err != nil || len(ids) > 0 {
			return err
		}
		// Nothing revoked: already revoked (fine, idempotent) or unknown.
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM sessions WHERE id = $1", id).Scan(&one); err != nil {
			return notFound(what, err)
		}
		return nil
	})
}

// RevokeSubject implements store.Store.
func (db *DB) RevokeSubject(ctx context.Context, connectionID, subject, reason string, at time.Time) (_ []string, err error) {
	defer db.classify(&err)
	var ids []string
	err = db.tx(ctx, func(tx *sql.Tx) (err error) {
		ids, err = db.revoke(ctx, tx, reason, at,
			"connection_id = $1 AND subject = $2 AND expires_at > $3", connectionID, subject, db.t(at))
		return err
	})
	return ids, err
}

// RevokeConnection implements store.Store.
func (db *DB) RevokeConnection(ctx context.Context, connectionID, reason string, at time.Time) (_ []string, err error) {
	defer db.classify(&err)
	var ids []string
	err = db.tx(ctx, func(tx *sql.Tx) (err error) {
		ids, err = db.revoke(ctx, tx, reason, at, "connection_id = $1 AND expires_at > $2", connectionID, db.t(at))
		return err
	})
	return ids, err
}

// revoke revokes the unrevoked sessions matching cond (whose placeholders
// are $1..$len(args)), appends one revocation each, and returns their ids
// sorted. It must run inside a write transaction.
func (db *DB) revoke(ctx context.Context, tx *sql.Tx, reason string, at time.Time, cond string, args ...any) ([]string, error) {
	if at.IsZero() {
		return nil, fmt.Errorf("revoke: time is required: %w", store.ErrInvalidArgument)
	}
	if db.d.LockRevocations != "" {
		// Taken before any session row, always, so revokers queue in one
		// order and Seq is assigned in commit order.
		if _, err := tx.ExecContext(ctx, db.d.LockRevocations); err != nil {
			return nil, fmt.Errorf("revoke: lock revocations: %w", err)
		}
	}
	n := len(args)
	args = append(args, db.t(at), reason)
	rows, err := tx.QueryContext(ctx, "UPDATE sessions SET revoked_at = $"+strconv.Itoa(n+1)+
		", revoke_reason = $"+strconv.Itoa(n+2)+" WHERE revoked_at IS NULL AND "+cond+
		" RETURNING id, connection_id, subject, expires_at", args...)
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	var revs []store.Revocation
	for rows.Next() {
		r := store.Revocation{Reason: reason, At: at}
		if err := rows.Scan(&r.SessionID, &r.ConnectionID, &r.Subject, timeCol{&r.ExpiresAt}); err != nil {
			rows.Close()
			return nil, fmt.Errorf("revoke sessions: %w", err)
		}
		revs = append(revs, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	slices.SortFunc(revs, func(a, b store.Revocation) int { return cmp.Compare(a.SessionID, b.SessionID) })
	ids := make([]string, 0, len(revs))
	for _, r := range revs {
		_, err := tx.ExecContext(ctx, "INSERT INTO revocations (session_id, connection_id, subject, reason, at, expires_at)"+
			" VALUES ($1, $2, $3, $4, $5, $6)", r.SessionID, r.ConnectionID, r.Subject, r.Reason, db.t(r.At), db.t(r.ExpiresAt))
		if err != nil {
			return nil, fmt.Errorf("append revocation of session %q: %w", r.SessionID, err)
		}
		ids = append(ids, r.SessionID)
	}
	if len(ids) > 0 && db.d.NotifyRevocations != "" {
		if _, err := tx.ExecContext(ctx, db.d.NotifyRevocations); err != nil {
			return nil, fmt.Errorf("notify revocations: %w", err)
		}
	}
	return ids, nil
}

// Revocations implements store.Store.
func (db *DB) Revocations(ctx context.Context, afterSeq int64, limit int) (_ []store.Revocation, err error) {
	defer db.classify(&err)
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.prep(db.r).QueryContext(ctx, "SELECT seq, session_id, connection_id, subject, reason, at, expires_at"+
		" FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2", afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list revocations after %d: %w", afterSeq, err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		if err := rows.Scan(&r.Seq, &r.SessionID, &r.ConnectionID, &r.Subject, &r.Reason,
			timeCol{&r.At}, timeCol{&r.ExpiresAt}); err != nil {
			return nil, fmt.Errorf("list revocations after %d: %w", afterSeq, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations after %d: %w", afterSeq, err)
	}
	return out, nil
}

// sessionExpiry reads a session's expiry and revocation time.
func (db *DB) sessionExpiry(ctx context.Context, q execer, id string) (expiresAt, revokedAt time.Time, err error) {
	err = db.prep(q).QueryRowContext(ctx, "SELECT expires_at, revoked_at FROM sessions WHERE id = $1", id).
		Scan(timeCol{&expiresAt}, timeCol{&revokedAt})
	if err != nil {
		return time.Time{}, time.Time{}, notFound(fmt.Sprintf("session %q", id), err)
	}
	return expiresAt, revokedAt, nil
}

// capAt returns the earlier of t and limit.
func capAt(t, limit time.Time) time.Time {
	if limit.Before(t) {
		return limit
	}
	return t
}

// PutRefreshToken implements store.Store.
func (db *DB) PutRefreshToken(ctx context.Context, t store.RefreshToken) (err error) {
	defer db.classify(&err)
	const what = "put refresh token"
	if err := required(what, "hash", t.Hash, "session id", t.SessionID, "expiry", t.ExpiresAt); err != nil {
		return err
	}
	return db.write(ctx, func(q execer) error {
		sessionExpires, _, err := db.sessionExpiry(ctx, q, t.SessionID)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return db.insertRefreshToken(ctx, q, t, sessionExpires)
	})
}

func (db *DB) insertRefreshToken(ctx context.Context, q execer, t store.RefreshToken, sessionExpires time.Time) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = db.now()
	}
	return db.insert(ctx, db.prep(q), "put refresh token",
		"INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, spent_at, sealed) VALUES ($1, $2, $3, $4, $5, $6)",
		t.Hash, t.SessionID, db.t(t.CreatedAt), db.t(capAt(t.ExpiresAt, sessionExpires)), db.t(t.SpentAt), blob(t.Sealed))
}

// RotateRefreshToken implements store.Store.
func (db *DB) RotateRefreshToken(ctx context.Context, oldHash []byte, next store.RefreshToken, now time.Time, retryWindow time.Duration) (_ store.Rotation, err error) {
	defer db.classify(&err)
	const what = "rotate refresh token"
	if err := required(what, "old hash", oldHash, "next hash", next.Hash, "next expiry", next.ExpiresAt); err != nil {
		return store.Rotation{}, err
	}
	var r store.Rotation
	done, reused := false, false
	if db.d.CTEWrites {
		if r, done, err = db.rotateOneStatement(ctx, oldHash, next, now); err != nil {
			return store.Rotation{}, err
		}
	}
	if !done {
		r, reused, err = db.rotateTx(ctx, oldHash, next, now, retryWindow)
	}
	if err != nil {
		return store.Rotation{}, err
	}
	if reused {
		// The caller learns which session was revoked, for its audit log.
		return r, fmt.Errorf("%s: session revoked: %w", what, store.ErrReused)
	}
	r.Old.SpentAt = r.Old.SpentAt.UTC().Truncate(timePrecision)
	r.Next.CreatedAt = r.Next.CreatedAt.UTC().Truncate(timePrecision)
	r.Next.ExpiresAt = r.Next.ExpiresAt.UTC().Truncate(timePrecision)
	return r, nil
}

// rotateTx is RotateRefreshToken as a transaction; reused reports a reuse,
// whose revocation it has committed.
func (db *DB) rotateTx(ctx context.Context, oldHash []byte, next store.RefreshToken, now time.Time, retryWindow time.Duration) (r store.Rotation, reused bool, err error) {
	const what = "rotate refresh token"
	r.Old = store.RefreshToken{Hash: oldHash, SpentAt: now, NextHash: next.Hash}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		// The winner of a race is decided here: the first statement spends
		// the token only if it is unspent and unexpired.
		err := db.prep(tx).QueryRowContext(ctx, "UPDATE refresh_tokens SET spent_at = $2, next_hash = $3"+
			" WHERE hash = $1 AND spent_at IS NULL AND expires_at > $2 RETURNING session_id, created_at, expires_at",
			oldHash, db.t(now), next.Hash).Scan(&r.Old.SessionID, timeCol{&r.Old.CreatedAt}, timeCol{&r.Old.ExpiresAt})
		if errors.Is(err, sql.ErrNoRows) {
			var spent store.RefreshToken
			err := db.prep(tx).QueryRowContext(ctx, "SELECT session_id, created_at, spent_at, expires_at, next_hash FROM refresh_tokens WHERE hash = $1",
				oldHash).Scan(&spent.SessionID, timeCol{&spent.CreatedAt}, timeCol{&spent.SpentAt}, timeCol{&spent.ExpiresAt}, bytesCol{&spent.NextHash})
			if err != nil {
				return notFound(what, err)
			}
			if spent.SpentAt.IsZero() {
				return fmt.Errorf("%s: %w", what, store.ErrExpired)
			}
			spent.Hash = oldHash
			if succ, ok, err := db.retryable(ctx, tx, spent, now, retryWindow); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			} else if ok {
				r = store.Rotation{Old: spent, Next: succ, Retry: true}
				return nil // nothing written
			}
			if _, err := db.revoke(ctx, tx, store.ReasonRefreshTokenReuse, now, "id = $1", spent.SessionID); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			reused, r.Old = true, store.RefreshToken{SessionID: spent.SessionID}
			return nil // commit the revocation
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		sessionExpires, revokedAt, err := db.sessionExpiry(ctx, tx, r.Old.SessionID)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		case !revokedAt.IsZero():
			return fmt.Errorf("%s: %w", what, store.ErrRevoked)
		case !now.Before(sessionExpires):
			return fmt.Errorf("%s: session: %w", what, store.ErrExpired)
		}
		next.SessionID = r.Old.SessionID
		next.SpentAt = time.Time{}
		next.NextHash = nil
		if next.CreatedAt.IsZero() {
			next.CreatedAt = db.now()
		}
		next.ExpiresAt = capAt(next.ExpiresAt, sessionExpires)
		r.Next = next
		return db.insertRefreshToken(ctx, tx, next, sessionExpires)
	})
	if err != nil {
		return store.Rotation{}, false, err
	}
	return r, reused, nil
}

// retryable decides whether presenting the spent token again is a retry:
// spent less than window ago, its successor unspent and unexpired, the
// session live. It returns the successor when it is.
func (db *DB) retryable(ctx context.Context, tx *sql.Tx, spent store.RefreshToken, now time.Time, window time.Duration) (store.RefreshToken, bool, error) {
	if window <= 0 || len(spent.NextHash) == 0 || !now.Before(spent.SpentAt.Add(window)) {
		return store.RefreshToken{}, false, nil
	}
	succ := store.RefreshToken{Hash: spent.NextHash}
	err := db.prep(tx).QueryRowContext(ctx, "SELECT session_id, created_at, expires_at, spent_at, sealed FROM refresh_tokens WHERE hash = $1",
		spent.NextHash).Scan(&succ.SessionID, timeCol{&succ.CreatedAt}, timeCol{&succ.ExpiresAt}, timeCol{&succ.SpentAt}, bytesCol{&succ.Sealed})
	if errors.Is(err, sql.ErrNoRows) {
		return store.RefreshToken{}, false, nil
	}
	if err != nil {
		return store.RefreshToken{}, false, fmt.Errorf("read successor: %w", err)
	}
	if !succ.SpentAt.IsZero() || !now.Before(succ.ExpiresAt) || len(succ.Sealed) == 0 {
		return store.RefreshToken{}, false, nil
	}
	sessionExpires, revokedAt, err := db.sessionExpiry(ctx, tx, succ.SessionID)
	if err != nil || !revokedAt.IsZero() || !now.Before(sessionExpires) {
		return store.RefreshToken{}, false, err
	}
	return succ, true, nil
}
