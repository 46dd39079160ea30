// Package sqlite is the single-file store.Store backend, the default of
// `ssogate serve` and `ssogate dev`.
//
// The database runs in WAL mode with synchronous=FULL: a method that
// returned nil has its write in the WAL and fsynced, so it survives kill -9
// and power loss. (NORMAL would survive a crashed process but could lose the
// last commits on power loss; a lost revocation would bring a session back,
// so FULL it is, at the price of one fsync per commit.)
//
// Within one process all writes go through a single connection, so writers
// queue in Go instead of spinning on SQLITE_BUSY; transactions start with
// BEGIN IMMEDIATE, so a transaction never has to upgrade a read lock and
// cannot deadlock. Several processes may share the file: they wait for each
// other through busy_timeout. Reads use a separate pool of read-only
// connections, which WAL lets run beside the writer.
//
// The file must be on a local disk (WAL needs shared memory between the
// processes using it); for several hosts use store/postgres.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/internal/sqlstore"
)

// BusyTimeout is how long a write waits for another process holding the
// database's write lock before it fails.
const BusyTimeout = 10 * time.Second

// readers is the size of the read-only connection pool.
const readers = 4

// Store is a store.Store in one SQLite file.
type Store struct {
	*sqlstore.DB
	path string
}

// Open opens (creating if needed) the database file at path and brings its
// schema up to date.
func Open(ctx context.Context, path string, opts ...store.Option) (*Store, error) {
	return open(ctx, path, "", opts...)
}

// open is Open with extra DSN parameters for the writer (tests use them to
// bound the file).
func open(ctx context.Context, path, writerParams string, opts ...store.Option) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite store: path is required: %w", store.ErrInvalidArgument)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite store: path %q must not contain '?' or '#': %w", path, store.ErrInvalidArgument)
	}
	dsn := path + fmt.Sprintf("?_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn+writerParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store %q: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	db := sqlstore.New(w, r, dialect, store.NewOptions(opts...))
	if err := db.Migrate(ctx, "", "INTEGER", migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %q: %w", path, err)
	}
	return &Store{DB: db, path: path}, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

var dialect = sqlstore.Dialect{
	// Integer microseconds: exact, ordered, and compact.
	Time: func(t time.Time) any { return t.UnixMicro() },
	IsUniqueViolation: func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	CacheStatements: true,
	Backend:         "sqlite",
	Unavailable:     unavailable,
}

// unavailable classifies the errors of a file that cannot be written or
// read: a full disk, an I/O error, a file that cannot be opened, a write
// lock held past BusyTimeout by another process.
func unavailable(err error) string {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return ""
	}
	switch e.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_FULL:
		return "disk full"
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return "disk I/O error"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return "database busy"
	}
	return ""
}

var _ store.Store = (*Store)(nil)
