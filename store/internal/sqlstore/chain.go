package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// One-statement writes (Dialect.CTEWrites, PostgreSQL).
//
// A hot write and its events are first tried as one statement of
// data-modifying CTEs, which commits on its own: one round trip instead of
// BEGIN, a statement per part, the events and COMMIT. Its parts form a
// chain: each runs only once the part before it has returned a row (see
// chain.gate), so they take their row locks in the order the write's
// transaction takes them. Only the first part may find nothing to do (a
// conditional UPDATE that matches no row); then no later part writes
// anything and the statement has changed nothing. A later part either
// writes its row or fails with a unique violation, which undoes the whole
// statement. So the statement commits all of the write or none of it; when
// none (no row, or a unique violation), the write runs again as its
// transaction, which decides and reports the outcome as it always did.
// Reads inside the statement see its snapshot, as one statement of the
// transaction would; a concurrent change that commits meanwhile orders
// after the write.

// chain builds one statement of CTEs run in order.
type chain struct {
	q     query
	ctes  []string
	last  string   // the last part of the chain
	sides []string // CTEs since then that must run before the next part
}

// gate is the condition that holds a part back until the chain's last part
// has returned a row (and the side CTEs since have run). "TRUE" for the
// first part.
func (c *chain) gate() string {
	var conds []string
	if c.last != "" {
		conds = append(conds, "EXISTS (SELECT 1 FROM "+c.last+")")
	}
	for _, s := range c.sides {
		// Always true; it makes the side CTE run first.
		conds = append(conds, "(SELECT count(*) FROM "+s+") >= 0")
	}
	if len(conds) == 0 {
		return "TRUE"
	}
	return strings.Join(conds, " AND ")
}

// add appends a part of the chain; body must use gate() (taken before
// add) unless it reads from the last part itself.
func (c *chain) add(name, body string) {
	c.ctes = append(c.ctes, name+" AS ("+body+")")
	c.last, c.sides = name, nil
}

// side appends a CTE that may return no row without stopping the chain.
func (c *chain) side(name, body string) {
	c.ctes = append(c.ctes, name+" AS ("+body+")")
	c.sides = append(c.sides, name)
}

// statement is the whole statement, ending in final.
func (c *chain) statement(final string) string {
	return "WITH " + strings.Join(c.ctes, ", ") + " " + final
}

// typed adds an argument and returns its placeholder cast to typ (a
// parameter in a SELECT list has no column to take its type from).
func (q *query) typed(v any, typ string) string { return q.arg(v) + "::" + typ }

// typedList is typed for several values, comma-separated; vals alternate
// a value and its type.
func (q *query) typedList(vals ...any) string {
	ph := make([]string, 0, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		ph = append(ph, q.typed(vals[i], vals[i+1].(string)))
	}
	return strings.Join(ph, ", ")
}

// chainEvents adds the parts appending events after c's last part: the
// sequence update (a part of the chain), the rows and the notification at
// commit (sides). It returns the columns of the final SELECT that
// eventsResult scans.
func (db *DB) chainEvents(c *chain, events []store.AuditEvent) string {
	if len(events) == 0 {
		return "NULL::bigint, 0::bigint, 0::bigint"
	}
	q := &c.q
	n := q.arg(len(events))
	rows := make([]string, len(events))
	for i, e := range events {
		rows[i] = "(" + q.typedList(i+1, "bigint", e.ID, "text", db.t(e.Time), "timestamptz", e.Type, "text",
			e.ConnectionID, "text", e.TenantID, "text", e.Subject, "text", e.Reason, "text", e.CorrelationID, "text",
			e.Message, "text", blob(e.Detail), "bytea") + ")"
	}
	c.add("ev_seq", "UPDATE event_sequence SET last = last + "+n+"::bigint WHERE id = 1 AND "+c.gate()+" RETURNING last")
	notified := "1::bigint"
	if db.d.EventsChannel != "" {
		c.side("ev_notified", "SELECT pg_notify("+q.typed(db.d.EventsChannel, "text")+", last::text) FROM ev_seq")
		notified = "(SELECT count(*) FROM ev_notified)"
	}
	c.side("ev_ins", "INSERT INTO audit_events ("+auditCols+")"+
		" SELECT ev_seq.last - "+n+"::bigint + v.ord, v.id, v.time, v.type, v.connection_id, v.tenant_id, v.subject, v.reason, v.correlation_id, v.message, v.detail"+
		" FROM ev_seq, (VALUES "+strings.Join(rows, ", ")+") AS v(ord, id, time, type, connection_id, tenant_id, subject, reason, correlation_id, message, detail)"+
		" RETURNING sequence")
	return "(SELECT last FROM ev_seq), (SELECT count(*) FROM ev_ins), " + notified
}

// eventsResult is what chainEvents' columns say was written.
type eventsResult struct {
	last               sql.NullInt64
	inserted, notified int64
}

func (r *eventsResult) dest() []any { return []any{&r.last, &r.inserted, &r.notified} }

// check returns the last Sequence, or an error unless every event was
// written and announced.
func (r eventsResult) check(events []store.AuditEvent) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	if !r.last.Valid || r.inserted != int64(len(events)) || r.notified != 1 {
		return 0, fmt.Errorf("append audit events: %d of %d written, %d notifications", r.inserted, len(events), r.notified)
	}
	return r.last.Int64, nil
}

// oneStatement runs c's statement on the writer, outside a transaction, and
// scans its row into dest. done is false, with no error, when the statement
// changed nothing and the caller must run its transaction: the final SELECT
// found no row (the chain's first part found nothing to do), or a part
// violated a unique constraint.
func (db *DB) oneStatement(ctx context.Context, what string, c *chain, final string, dest ...any) (done bool, err error) {
	if len(c.ctes) == 0 {
		return false, nil // nothing to write
	}
	err = db.w.QueryRowContext(ctx, c.statement(final), c.q.args...).Scan(dest...)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows), db.d.IsUniqueViolation(err):
		return false, nil
	}
	return true, fmt.Errorf("%s: %w", what, err)
}

// appendAuditOneStatement is AppendAudit's events in one statement.
func (db *DB) appendAuditOneStatement(ctx context.Context) (bool, error) {
	events, committed := store.PendingEvents(ctx)
	events, err := db.fillEvents(events)
	if err != nil {
		return true, err
	}
	var c chain
	ev := db.chainEvents(&c, events)
	var res eventsResult
	if done, err := db.oneStatement(ctx, "append audit events", &c, "SELECT "+ev, res.dest()...); !done || err != nil {
		return done, err
	}
	if _, err := res.check(events); err != nil {
		return true, err
	}
	committed()
	return true, nil
}

// putPendingOneStatement is PutPendingRequest with its events in one
// statement. Without events the INSERT is one statement anyway: done is
// false.
func (db *DB) putPendingOneStatement(ctx context.Context, what string, r store.PendingRequest) (bool, error) {
	events, committed := store.PendingEvents(ctx)
	if len(events) == 0 {
		return false, nil
	}
	events, err := db.fillEvents(events)
	if err != nil {
		return true, err
	}
	var c chain
	q := &c.q
	c.add("p", "INSERT INTO pending_requests ("+pendingCols+") VALUES ("+
		strings.Join([]string{q.arg(r.ConnectionID), q.arg(r.ID), q.arg(r.ReturnTo), q.arg(r.State), q.arg(r.Test),
			q.arg(blob(r.Data)), q.arg(db.t(r.CreatedAt)), q.arg(db.t(r.ExpiresAt)), q.arg(db.t(r.ConsumedAt))}, ", ")+
		") RETURNING 1")
	ev := db.chainEvents(&c, events)
	var res eventsResult
	if done, err := db.oneStatement(ctx, what, &c, "SELECT "+ev, res.dest()...); !done || err != nil {
		return done, err
	}
	if _, err := res.check(events); err != nil {
		return true, err
	}
	committed()
	return true, nil
}

// completeLoginOneStatement is CompleteLogin in one statement: the pending
// request's conditional UPDATE first (the only part that may find nothing
// to do), then the assertion, the session and the code as plain INSERTs
// (a recorded assertion ID is a unique violation), then the events. It
// leaves every failure to the transaction (done false).
func (db *DB) completeLoginOneStatement(ctx context.Context, l store.LoginCompletion) (out store.PendingRequest, done bool, err error) {
	events, committed := store.PendingEvents(ctx)
	events, err = db.fillEvents(events)
	if err != nil {
		return store.PendingRequest{}, true, err
	}
	var c chain
	q := &c.q
	var conn string // the connection's placeholder, once a part uses it
	if l.RequestID != "" || l.AssertionID != "" {
		conn = q.typed(l.ConnectionID, "text")
	}
	if l.RequestID != "" {
		now := q.typed(db.t(l.Now), "timestamptz")
		c.add("p", "UPDATE pending_requests SET consumed_at = "+now+" WHERE connection_id = "+conn+" AND id = "+
			q.typed(l.RequestID, "text")+" AND consumed_at IS NULL AND expires_at > "+now+" RETURNING "+pendingCols)
	}
	if l.AssertionID != "" {
		gate := c.gate()
		c.add("a", "INSERT INTO assertions (connection_id, assertion_id, expires_at) SELECT "+conn+", "+
			q.typedList(l.AssertionID, "text", db.t(l.AssertionExpiresAt), "timestamptz")+" WHERE "+gate+" RETURNING 1")
	}
	if l.Session != nil {
		s := *l.Session
		if s.CreatedAt.IsZero() {
			s.CreatedAt = db.now()
		}
		gate := c.gate()
		c.add("s", "INSERT INTO sessions ("+sessionCols+") SELECT "+q.typedList(s.ID, "text", s.ConnectionID, "text",
			s.TenantID, "text", s.Subject, "text", s.NameID, "text", s.NameIDFormat, "text", s.SessionIndex, "text",
			blob(s.Identity), "bytea", db.t(s.CreatedAt), "timestamptz", db.t(s.ExpiresAt), "timestamptz",
			db.t(s.RevokedAt), "timestamptz", s.RevokeReason, "text")+" WHERE "+gate+" RETURNING 1")
	}
	if l.Code != nil {
		k := *l.Code
		if k.CreatedAt.IsZero() {
			k.CreatedAt = db.now()
		}
		gate := c.gate()
		c.add("c", "INSERT INTO codes ("+codeCols+") SELECT "+q.typedList(k.Hash, "bytea", k.SessionID, "text",
			k.ConnectionID, "text", blob(k.Data), "bytea", db.t(k.CreatedAt), "timestamptz", db.t(k.ExpiresAt), "timestamptz")+
			" WHERE "+gate+" RETURNING 1")
	}
	ev := db.chainEvents(&c, events)
	var res eventsResult
	dest := res.dest()
	final := "SELECT " + ev
	if l.RequestID != "" {
		// No row when the request could not be consumed.
		final += ", " + pendingCols + " FROM p"
		dest = append(dest, &out.ConnectionID, &out.ID, &out.ReturnTo, &out.State, &out.Test, bytesCol{&out.Data},
			timeCol{&out.CreatedAt}, timeCol{&out.ExpiresAt}, timeCol{&out.ConsumedAt})
	}
	if done, err := db.oneStatement(ctx, "complete login", &c, final, dest...); !done || err != nil {
		return store.PendingRequest{}, done, err
	}
	if _, err := res.check(events); err != nil {
		return store.PendingRequest{}, true, err
	}
	committed()
	return out, true, nil
}

// redeemCodeOneStatement is RedeemCode in one statement: the code's
// conditional UPDATE joined with its session (no row: unknown, used,
// expired, or no session), the refresh token's INSERT when the session is
// live, then the events.
func (db *DB) redeemCodeOneStatement(ctx context.Context, hash []byte, now time.Time, refresh store.RefreshToken) (out store.Redemption, done bool, err error) {
	events, committed := store.PendingEvents(ctx)
	events, err = db.fillEvents(events)
	if err != nil {
		return store.Redemption{}, true, err
	}
	var c chain
	q := &c.q
	at := q.typed(db.t(now), "timestamptz")
	sess := strings.Split(sessionCols, ", ")
	for i, col := range sess {
		sess[i] = "s." + col + " AS s_" + col
	}
	c.add("c", "UPDATE codes SET consumed_at = "+at+" FROM sessions s WHERE codes.hash = "+q.typed(hash, "bytea")+
		" AND codes.consumed_at IS NULL AND codes.expires_at > "+at+" AND s.id = codes.session_id RETURNING codes."+
		strings.ReplaceAll(codeCols, ", ", ", codes.")+", "+strings.Join(sess, ", "))
	stored := "0::bigint"
	if len(refresh.Hash) > 0 {
		if refresh.CreatedAt.IsZero() {
			refresh.CreatedAt = db.now()
		}
		c.side("r", "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, spent_at, sealed) SELECT "+
			q.typed(refresh.Hash, "bytea")+", c.s_id, "+q.typed(db.t(refresh.CreatedAt), "timestamptz")+", LEAST("+
			q.typed(db.t(refresh.ExpiresAt), "timestamptz")+", c.s_expires_at), NULL, "+q.typed(blob(refresh.Sealed), "bytea")+
			" FROM c WHERE c.s_revoked_at IS NULL AND c.s_expires_at > "+at+" RETURNING 1")
		stored = "(SELECT count(*) FROM r)"
	}
	ev := db.chainEvents(&c, events)
	var res eventsResult
	var n int64
	k, s := &out.Code, &out.Session
	dest := append(res.dest(), &n, bytesCol{&k.Hash}, &k.SessionID, &k.ConnectionID, bytesCol{&k.Data},
		timeCol{&k.CreatedAt}, timeCol{&k.ExpiresAt},
		&s.ID, &s.ConnectionID, &s.TenantID, &s.Subject, &s.NameID, &s.NameIDFormat, &s.SessionIndex,
		bytesCol{&s.Identity}, timeCol{&s.CreatedAt}, timeCol{&s.ExpiresAt}, timeCol{&s.RevokedAt}, &s.RevokeReason)
	final := "SELECT " + ev + ", " + stored + ", c.* FROM c"
	if done, err := db.oneStatement(ctx, "redeem code", &c, final, dest...); !done || err != nil {
		return store.Redemption{}, done, err
	}
	if _, err := res.check(events); err != nil {
		return store.Redemption{}, true, err
	}
	committed()
	if n == 1 {
		refresh.SessionID = s.ID
		refresh.SpentAt, refresh.NextHash = time.Time{}, nil
		refresh.ExpiresAt = capAt(refresh.ExpiresAt, s.ExpiresAt)
		out.Refresh = refresh
	}
	return out, true, nil
}

// rotateOneStatement is RotateRefreshToken's plain rotation in one
// statement: the old token's conditional UPDATE joined with its session,
// which must be live (no row: anything else, left to the transaction),
// the successor's INSERT, then the events.
func (db *DB) rotateOneStatement(ctx context.Context, oldHash []byte, next store.RefreshToken, now time.Time) (r store.Rotation, done bool, err error) {
	events, committed := store.PendingEvents(ctx)
	events, err = db.fillEvents(events)
	if err != nil {
		return store.Rotation{}, true, err
	}
	if next.CreatedAt.IsZero() {
		next.CreatedAt = db.now()
	}
	var c chain
	q := &c.q
	at, nextHash := q.typed(db.t(now), "timestamptz"), q.typed(next.Hash, "bytea")
	c.add("o", "UPDATE refresh_tokens SET spent_at = "+at+", next_hash = "+nextHash+" FROM sessions s"+
		" WHERE refresh_tokens.hash = "+q.typed(oldHash, "bytea")+" AND refresh_tokens.spent_at IS NULL AND refresh_tokens.expires_at > "+at+
		" AND s.id = refresh_tokens.session_id AND s.revoked_at IS NULL AND s.expires_at > "+at+
		" RETURNING refresh_tokens.session_id, refresh_tokens.created_at, refresh_tokens.expires_at, s.expires_at AS session_expires")
	c.add("n", "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, spent_at, sealed) SELECT "+nextHash+
		", o.session_id, "+q.typed(db.t(next.CreatedAt), "timestamptz")+", LEAST("+q.typed(db.t(next.ExpiresAt), "timestamptz")+
		", o.session_expires), NULL, "+q.typed(blob(next.Sealed), "bytea")+" FROM o RETURNING 1")
	ev := db.chainEvents(&c, events)
	var res eventsResult
	var sessionExpires time.Time
	r.Old = store.RefreshToken{Hash: oldHash, SpentAt: now, NextHash: next.Hash}
	dest := append(res.dest(), &r.Old.SessionID, timeCol{&r.Old.CreatedAt}, timeCol{&r.Old.ExpiresAt}, timeCol{&sessionExpires})
	if done, err := db.oneStatement(ctx, "rotate refresh token", &c, "SELECT "+ev+", o.* FROM o", dest...); !done || err != nil {
		return store.Rotation{}, done, err
	}
	if _, err := res.check(events); err != nil {
		return store.Rotation{}, true, err
	}
	committed()
	next.SessionID = r.Old.SessionID
	next.SpentAt, next.NextHash = time.Time{}, nil
	next.ExpiresAt = capAt(next.ExpiresAt, sessionExpires)
	r.Next = next
	return r, true, nil
}
