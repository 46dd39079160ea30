// Package postgres is the store.Store backend for several ssogate replicas
// sharing one PostgreSQL database (PostgreSQL 13 or later).
//
// It runs over a pgxpool.Pool (through pgx's database/sql adapter, so it
// shares its queries with store/sqlite). Transactions run at READ COMMITTED;
// single-use operations are decided by conditional UPDATEs and INSERT ... ON
// CONFLICT, whose row locks make a concurrent twin on another connection or
// replica wait and then see the winner's write. Transactions that append
// revocations first lock the revocations table against each other, so
// sequence numbers become visible in order and a replica polling
// Revocations never skips one. The writes of a login, with their audit
// events, are each one statement when they succeed (data-modifying CTEs,
// no BEGIN or COMMIT): one round trip; a write that fails runs again as
// its transaction, which says why.
//
// Migrations run at Open under a transaction-scoped advisory lock, keyed by
// the current schema, so replicas starting together apply each version
// once. Set search_path in the DSN (…?search_path=ssogate) to keep ssogate's
// tables in their own schema.
package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/internal/sqlstore"
)

// Store is a store.Store on PostgreSQL.
type Store struct {
	*sqlstore.DB
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string, as pgxpool.ParseConfig reads it) and brings its schema
// up to date.
func Open(ctx context.Context, dsn string, opts ...store.Option) (*Store, error) {
	return open(ctx, dsn, nil, opts...)
}

// open is Open with a hook that adjusts the pool's configuration (tests
// trace the queries).
func open(ctx context.Context, dsn string, configure func(*pgxpool.Config), opts ...store.Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can echo the DSN, password included.
		return nil, fmt.Errorf("postgres store: cannot parse DSN: %w", store.ErrInvalidArgument)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	s := &Store{DB: sqlstore.New(db, db, dialect, store.NewOptions(opts...)), pool: pool}
	const lock = "SELECT pg_advisory_xact_lock(hashtext('ssogate.migrate'), hashtext(current_schema()))"
	if err := s.Migrate(ctx, lock, "TIMESTAMPTZ", migrations); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres store %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host,
			cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// Close closes the database/sql handle and the pool under it.
func (s *Store) Close() error {
	err := s.DB.Close()
	s.pool.Close()
	return err
}

// Pool is the underlying pool, for LISTEN or diagnostics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var dialect = sqlstore.Dialect{
	Time: func(t time.Time) any { return t.UTC().Truncate(time.Microsecond) },
	IsUniqueViolation: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
	// Self-conflicting, but lets readers through.
	LockRevocations:   "LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE",
	NotifyRevocations: "SELECT pg_notify('" + RevocationChannel + "', '')",
	CTEWrites:         true,
	EventsChannel:     EventChannel,
	SkipLocked:        " FOR UPDATE SKIP LOCKED",
	Backend:           "postgres",
	Unavailable:       unavailable,
}

// unavailable classifies the errors of an unreachable or unwritable
// server: connecting failed, the connection broke, the server is shutting
// down or out of disk. Everything else (a constraint, a syntax error, a
// caller's cancelled context) is not unavailability.
func unavailable(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return "connection lost"
		case pe.Code == "53100": // disk_full
			return "disk full"
		case strings.HasPrefix(pe.Code, "53"): // insufficient resources
			return "out of resources"
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, crash, cannot connect now
			return "shutting down"
		case strings.HasPrefix(pe.Code, "58"): // system error (I/O)
			return "disk I/O error"
		}
		return ""
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return "cannot connect"
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		pgconn.SafeToRetry(err), pgconn.Timeout(err) && !errors.Is(err, context.Canceled):
		return "connection lost"
	}
	// pgx reports a connection it closed after a failure this way.
	if strings.Contains(err.Error(), "conn closed") {
		return "connection lost"
	}
	return ""
}

// EventChannel is the LISTEN/NOTIFY channel on which every committed audit
// event is announced, with the newest Sequence as payload.
const EventChannel = "ssogate_events"

// RevocationChannel is the LISTEN/NOTIFY channel on which every committed
// revocation is announced.
const RevocationChannel = "ssogate_revocations"

// ListenRevocations calls notify each time a revocation is committed by any
// replica on this database, until ctx ends (it then returns nil). The
// caller reacts by polling Revocations; a notification carries no data, and
// a burst may be announced once or many times. It holds one pool
// connection while it runs; on a connection error it returns the error and
// the caller should retry (and poll meanwhile).
func (s *Store) ListenRevocations(ctx context.Context, notify func()) error {
	return s.listen(ctx, RevocationChannel, "revocations", notify)
}

// ListenEvents calls notify each time any replica on this database commits
// audit events, until ctx ends (it then returns nil). The caller reads
// EventsAfter its cursor; a burst may be announced once or many times. On a
// connection error it returns the error and the caller should retry (and
// poll meanwhile).
func (s *Store) ListenEvents(ctx context.Context, notify func()) error {
	return s.listen(ctx, EventChannel, "events", notify)
}

func (s *Store) listen(ctx context.Context, channel, what string, notify func()) error {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen for %s: %w", what, err)
	}
	// Taken out of the pool for good: a LISTENing connection must not serve
	// queries afterwards.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen for %s: %w", what, err)
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen for %s: %w", what, err)
		}
		notify()
	}
}

var _ store.Store = (*Store)(nil)
