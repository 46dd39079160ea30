package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/sqlite"
	"github.com/ssogate/ssogate/store/storetest"
)

func open(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func newStore(tb testing.TB) store.Store {
	tb.Helper()
	return open(tb, filepath.Join(tb.TempDir(), "ssogate.db"))
}

func opener(ctx context.Context, path string) (store.Store, error) { return sqlite.Open(ctx, path) }

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) store.Store { return newStore(t) },
		// A second *sql.DB pair on the same file: contention between
		// processes, not just goroutines.
		storetest.WithTwin(func(t *testing.T, first store.Store) store.Store {
			return open(t, first.(*sqlite.Store).Path())
		}))
}

func TestOpen(t *testing.T) {
	storetest.RunOpenTests(t, func(t *testing.T) string { return filepath.Join(t.TempDir(), "ssogate.db") }, opener)
}

func TestCrash(t *testing.T) {
	storetest.Crash(t, "TestCrashHelper", filepath.Join(t.TempDir(), "ssogate.db"), 300, opener)
}

func TestCrashHelper(t *testing.T) { storetest.CrashHelper(t, opener) }

func TestFileSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ssogate.db")
	open(t, path)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	var version int
	if err := db.QueryRow("SELECT MAX(version) FROM schema_migrations").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 1 {
		t.Fatalf("schema version %d", version)
	}

	// A schema newer than this program refuses to open rather than
	// guessing.
	if _, err := db.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)"); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v, want an error saying so", err)
	}
}

func TestOpenInvalid(t *testing.T) {
	for _, path := range []string{"", "a?b.db"} {
		if _, err := sqlite.Open(context.Background(), path); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("Open(%q) = %v, want ErrInvalidArgument", path, err)
		}
	}
}

func BenchmarkStore(b *testing.B) { storetest.RunBenchmarks(b, newStore) }

// TestDiskFullIsUnavailable: a write SQLite refuses for lack of space is
// store.ErrUnavailable, and its message names the store, not the file.
func TestDiskFullIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ssogate.db")
	open(t, path).Close() // migrate with room to spare
	st, err := sqlite.OpenFull(context.Background(), path, 40)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := range 10_000 {
		err = st.AppendAudit(context.Background(), store.AuditEvent{Type: "t", Message: strings.Repeat("x", 4000)})
		if err != nil {
			break
		}
		if i == 9_999 {
			t.Fatal("the file never filled up")
		}
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AppendAudit on a full file = %v, want ErrUnavailable", err)
	}
	if msg := err.Error(); msg != "store unavailable: sqlite disk full" {
		t.Fatalf("message %q, want the fixed one naming the store", msg)
	}
	// Reads still work; Ping answers.
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
