package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache keeps the prepared statements of one *sql.DB by their text, so
// that a hot statement is parsed once per connection instead of once per
// call. (With SQLite, preparing is most of the CPU of a small statement;
// the modernc driver keeps no cache of its own.) A cached *sql.Stmt is
// prepared again by database/sql on each connection it runs on.
//
// Only statements of a bounded set of texts belong here: those of fixed
// text and the few shapes of a query builder, never one with a variable
// number of placeholders.
type stmtCache struct {
	db    *sql.DB
	stmts sync.Map // query -> *sql.Stmt

	mu     sync.Mutex
	wanted map[string]bool // asked for in a transaction, prepared after it
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, wanted: map[string]bool{}} }

// get returns the prepared statement of query, preparing it on c.db when
// it is missing. It must not run inside a transaction of c.db: preparing
// takes a connection, and the transaction may hold the only one (SQLite's
// writer).
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.Close()
		return nil, errors.New("statement cache closed")
	}
	if old, loaded := c.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return old.(*sql.Stmt), nil
	}
	return s, nil
}

// inTx returns the prepared statement of query for tx, a transaction on
// c.db, or nil when it is not prepared yet: then query is noted, to be
// prepared by prepareWanted once the transaction has ended.
func (c *stmtCache) inTx(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s, ok := c.stmts.Load(query); ok {
		// Reuses the statement prepared on tx's connection (or prepares it
		// there once); closed with the transaction.
		return tx.StmtContext(ctx, s.(*sql.Stmt))
	}
	c.mu.Lock()
	c.wanted[query] = true
	c.mu.Unlock()
	return nil
}

// prepareWanted prepares the statements transactions asked for. Errors are
// dropped: the statement runs unprepared until a later call succeeds.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	wanted := c.wanted
	c.wanted = map[string]bool{}
	c.mu.Unlock()
	for q := range wanted {
		if _, err := c.get(ctx, q); err != nil {
			return
		}
	}
}

// close closes every statement; later gets fail.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	c.stmts.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		c.stmts.Delete(k)
		return true
	})
	return errors.Join(errs...)
}

// cachedExecer runs statements through a stmtCache: on its *sql.DB
// directly, or in a transaction on it.
type cachedExecer struct {
	c *stmtCache
	q execer // c.db or a *sql.Tx on it
}

// stmt returns the prepared statement for query, or nil to run it
// unprepared (not prepared yet in a transaction, or preparing failed: then
// running it reports the error).
func (e cachedExecer) stmt(ctx context.Context, query string) *sql.Stmt {
	if tx, ok := e.q.(*sql.Tx); ok {
		return e.c.inTx(ctx, tx, query)
	}
	s, err := e.c.get(ctx, query)
	if err != nil {
		return nil
	}
	return s
}

func (e cachedExecer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := e.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return e.q.ExecContext(ctx, query, args...)
}

func (e cachedExecer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := e.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return e.q.QueryContext(ctx, query, args...)
}

func (e cachedExecer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := e.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return e.q.QueryRowContext(ctx, query, args...)
}

// prep returns q (db.w, db.r or a transaction on db.w) running its
// statements through the statement cache, when the dialect has one. For
// hot statements of bounded text only (see stmtCache); the statement's
// rows must be closed before the same text runs again in the same
// transaction, since both would use one prepared statement.
func (db *DB) prep(q execer) execer {
	switch {
	case db.wc == nil:
		return q
	case q == execer(db.r):
		return cachedExecer{db.rc, q}
	case q == execer(db.w):
		return cachedExecer{db.wc, q}
	}
	if tx, ok := q.(*sql.Tx); ok {
		return cachedExecer{db.wc, tx}
	}
	return q
}
