// Package sqlstore is the one implementation of store.Store over
// database/sql that store/sqlite and store/postgres share. A Dialect holds
// what differs between the two: how a time is bound, how a unique violation
// looks, and how revocations are serialized.
//
// Both schemas come from one template (Migrations) in each dialect's column
// types; placeholders are $1, $2, ..., which PostgreSQL and the modernc
// SQLite driver both bind by number.
//
// Every single-use operation is decided by one conditional UPDATE or INSERT
// (or, for refresh-token rotation, one transaction whose first statement is
// that UPDATE), so a concurrent twin, in this process or another, cannot
// also win; a follow-up read then tells the loser why it lost.
//
// The writes of a login (PutPendingRequest, CompleteLogin, RedeemCode,
// RotateRefreshToken, AppendAudit, with their events) are, on PostgreSQL,
// first tried as one statement that commits all or nothing of them, and
// run as their transaction only when it does not (see chain.go): one round
// trip each instead of four to seven. On SQLite the hot statements stay
// prepared (stmtcache.go).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// Dialect is what differs between the SQL backends.
type Dialect struct {
	// Time encodes a non-zero time as a query argument. It must keep
	// microseconds and compare in the same order as the time.
	Time func(time.Time) any
	// IsUniqueViolation reports whether err is a unique-constraint failure.
	IsUniqueViolation func(error) bool
	// LockRevocations runs first in every transaction that appends
	// revocations, so that Seq order is commit order. Empty when write
	// transactions are serialized anyway (SQLite).
	LockRevocations string
	// NotifyRevocations runs after a transaction appended revocations, to
	// wake followers at commit. Empty when there is nobody to wake.
	NotifyRevocations string
	// CTEWrites: the database runs data-modifying statements in WITH
	// (PostgreSQL). Events are then appended in one statement, and the hot
	// writes are tried as one statement each, with their events, before
	// their transaction (see chain).
	CTEWrites bool
	// EventsChannel, with CTEWrites, is notified by every append of events
	// at commit, with the newest Sequence, to wake event followers
	// (pg_notify). Empty when there is nobody to wake.
	EventsChannel string
	// SkipLocked ends a SELECT that claims rows for this transaction and
	// passes over rows another transaction holds (PostgreSQL: FOR UPDATE
	// SKIP LOCKED). Empty when write transactions are serialized anyway.
	SkipLocked string
	// CacheStatements keeps the hot statements prepared (SQLite, whose
	// driver parses every statement it is handed again). PostgreSQL's
	// driver caches prepared statements per connection already.
	CacheStatements bool
	// Backend names the database in store.UnavailableError.
	Backend string
	// Unavailable classifies a driver error: "" when it is not about the
	// database being unreachable or unable to write, else one of the fixed
	// classes of store.UnavailableError.
	Unavailable func(error) string
}

// DB implements store.Store. Writes (and reads that decide a single-use
// outcome) go to w, plain reads to r; both may be the same *sql.DB.
type DB struct {
	w, r   *sql.DB
	wc, rc *stmtCache // of w and r, with Dialect.CacheStatements
	d      Dialect
	now    func() time.Time
	rand   io.Reader
}

// New returns a DB over w (writes, transactions) and r (reads).
func New(w, r *sql.DB, d Dialect, opts store.Options) *DB {
	db := &DB{w: w, r: r, d: d, now: opts.Now, rand: opts.Rand}
	if d.CacheStatements {
		db.wc, db.rc = newStmtCache(w), newStmtCache(r)
	}
	return db
}

// classify turns an error the dialect calls unavailability into a
// *store.UnavailableError, in one place for every method (each defers it).
func (db *DB) classify(err *error) {
	if *err == nil || db.d.Unavailable == nil || errors.Is(*err, store.ErrUnavailable) {
		return
	}
	if class := db.d.Unavailable(*err); class != "" {
		*err = &store.UnavailableError{Backend: db.d.Backend, Class: class, Cause: *err}
	}
}

// Ping checks the writer (which is the one that matters for a login).
func (db *DB) Ping(ctx context.Context) (err error) {
	defer db.classify(&err)
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes both handles.
func (db *DB) Close() error {
	var err error
	if db.wc != nil {
		err = errors.Join(db.wc.close(), db.rc.close())
	}
	err = errors.Join(err, db.w.Close())
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// tx runs fn in a write transaction and commits if fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if db.wc != nil {
		// Once the transaction has let go of the writer, prepare what it
		// ran unprepared (stmtCache.inTx).
		defer db.wc.prepareWanted(context.WithoutCancel(ctx))
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	events, committed := store.PendingEvents(ctx)
	if len(events) > 0 {
		if _, err := db.appendEvents(ctx, tx, events); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed()
	return nil
}

// write runs fn on the writer: directly, or in a transaction when ctx
// carries events to append with its change (store.WithEvents).
func (db *DB) write(ctx context.Context, fn func(execer) error) error {
	if events, _ := store.PendingEvents(ctx); len(events) == 0 {
		return fn(db.w)
	}
	return db.tx(ctx, func(tx *sql.Tx) error { return fn(tx) })
}

// timePrecision is what both backends keep of a time.
const timePrecision = time.Microsecond

// t encodes a time argument; the zero time is NULL.
func (db *DB) t(v time.Time) any {
	if v.IsZero() {
		return nil
	}
	return db.d.Time(v)
}

// blob encodes a byte argument; empty is NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// timeCol scans a time column written by either dialect: NULL, integer
// microseconds since the epoch (SQLite) or a timestamp (PostgreSQL).
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.p = time.Time{}
	case int64:
		*c.p = time.UnixMicro(v).UTC()
	case time.Time:
		*c.p = v.UTC()
	default:
		return fmt.Errorf("scan time: unexpected %T", src)
	}
	return nil
}

// bytesCol scans a byte column; NULL and empty both become nil.
type bytesCol struct{ p *[]byte }

func (c bytesCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.p = nil
	case []byte:
		*c.p = nil
		if len(v) > 0 {
			*c.p = append([]byte(nil), v...)
		}
	case string:
		*c.p = nil
		if v != "" {
			*c.p = []byte(v)
		}
	default:
		return fmt.Errorf("scan bytes: unexpected %T", src)
	}
	return nil
}

// execer is what *sql.DB and *sql.Tx share.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// insert runs an INSERT and maps a unique violation to store.ErrConflict.
func (db *DB) insert(ctx context.Context, q execer, what, query string, args ...any) error {
	if _, err := q.ExecContext(ctx, query, args...); err != nil {
		if db.d.IsUniqueViolation(err) {
			return fmt.Errorf("%s: %w", what, store.ErrConflict)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// affected runs a statement and returns how many rows it changed.
func affected(ctx context.Context, q execer, what, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// mustAffect runs a statement and returns store.ErrNotFound if it changed
// no row.
func mustAffect(ctx context.Context, q execer, what, query string, args ...any) error {
	n, err := affected(ctx, q, what, query, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// notFound maps sql.ErrNoRows to store.ErrNotFound and wraps the rest.
func notFound(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// required returns store.ErrInvalidArgument naming the first empty field;
// fields alternate a name and a string, []byte or time.Time value.
func required(what string, fields ...any) error {
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		empty := false
		switch v := fields[i+1].(type) {
		case string:
			empty = v == ""
		case []byte:
			empty = len(v) == 0
		case time.Time:
			empty = v.IsZero()
		}
		if empty {
			return fmt.Errorf("%s: %s is required: %w", what, name, store.ErrInvalidArgument)
		}
	}
	return nil
}

// lostRace tells the loser of a single-use race why it lost.
func lostRace(what string, consumedAt, expiresAt, now time.Time) error {
	if !consumedAt.IsZero() {
		return fmt.Errorf("%s: %w", what, store.ErrConsumed)
	}
	if !now.Before(expiresAt) {
		return fmt.Errorf("%s: %w", what, store.ErrExpired)
	}
	// Unconsumed and unexpired yet the conditional update missed: the row
	// changed between the two statements (a sweep, a clock skew between
	// callers). Report it as used; the value is not redeemable now.
	return fmt.Errorf("%s: %w", what, store.ErrConsumed)
}

// query builds a statement with numbered placeholders.
type query struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

// list adds the arguments and returns their placeholders, comma-separated.
func (q *query) list(vs []string) string {
	ph := make([]string, len(vs))
	for i, v := range vs {
		ph[i] = q.arg(v)
	}
	return strings.Join(ph, ", ")
}

// where adds a condition.
func (q *query) where(cond string) { q.conds = append(q.conds, cond) }

// clause renders " WHERE a AND b" (or "").
func (q *query) clause() string {
	if len(q.conds) == 0 {
		return ""
	}
	s := " WHERE " + q.conds[0]
	for _, c := range q.conds[1:] {
		s += " AND " + c
	}
	return s
}

// pageSize applies the defaults and the cap.
func pageSize(n int) int {
	switch {
	case n <= 0:
		return store.DefaultPageSize
	case n > store.MaxPageSize:
		return store.MaxPageSize
	}
	return n
}

var _ store.Store = (*DB)(nil)

// collectRows scans every row of a query with scan; err is the query's error.
func collectRows[T any](what string, rows *sql.Rows, err error, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
