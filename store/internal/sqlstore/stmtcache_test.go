package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ssogate/ssogate/store"
)

// The writer's cache is filled without taking the writer's only
// connection from a transaction that holds it: a statement a transaction
// runs unprepared is prepared once the transaction has ended, and later
// transactions and direct writes run the prepared one. Reads prepare on
// the reader pool at once. After Close nothing is prepared any more.
func TestStatementCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "c.db")
	w, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db := New(w, r, Dialect{Time: func(t time.Time) any { return t.UnixMicro() }, CacheStatements: true}, store.NewOptions())
	t.Cleanup(func() { db.Close() })
	if _, err := w.ExecContext(ctx, "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	const insert = "INSERT INTO kv (k, v) VALUES ($1, $2)"
	cached := func(c *stmtCache, q string) bool {
		_, ok := c.stmts.Load(q)
		return ok
	}
	put := func(k string, v int) {
		t.Helper()
		if err := db.tx(ctx, func(tx *sql.Tx) error {
			_, err := db.prep(tx).ExecContext(ctx, insert, k, v)
			return err
		}); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	put("a", 1)
	if !cached(db.wc, insert) {
		t.Fatal("the statement a transaction ran is not prepared after it")
	}
	put("b", 2)
	if _, err := db.prep(db.w).ExecContext(ctx, insert, "c", 3); err != nil {
		t.Fatal(err)
	}
	// A failing statement through the cache reports its error.
	if err := db.tx(ctx, func(tx *sql.Tx) error {
		_, err := db.prep(tx).ExecContext(ctx, insert, "a", 4)
		return err
	}); err == nil {
		t.Fatal("a duplicate key through the cached statement: no error")
	}
	const sum = "SELECT COUNT(*), SUM(v) FROM kv"
	var n, total int
	if err := db.prep(db.r).QueryRowContext(ctx, sum).Scan(&n, &total); err != nil {
		t.Fatal(err)
	}
	if n != 3 || total != 6 {
		t.Fatalf("read %d rows summing to %d, want 3 and 6", n, total)
	}
	if !cached(db.rc, sum) || cached(db.wc, sum) {
		t.Fatal("a read is cached on the writer, or not on the readers")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.rc.get(ctx, "SELECT 1"); err == nil {
		t.Fatal("prepared a statement after Close")
	}
}
