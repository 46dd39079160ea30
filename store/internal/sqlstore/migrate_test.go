package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ssogate/ssogate/store"
)

// A version this build lacks (nil: written on another branch) is skipped
// and not recorded; a later build that has it applies it, although newer
// versions were applied before it.
func TestMigrateVersionArrivingLate(t *testing.T) {
	ctx := context.Background()
	w, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	w.SetMaxOpenConns(1)
	db := New(w, w, Dialect{Time: func(t time.Time) any { return t.UnixMicro() }}, store.NewOptions())
	v1 := Migration{`CREATE TABLE one (id INTEGER)`}
	v2 := Migration{`CREATE TABLE two (id INTEGER)`}
	v3 := Migration{`CREATE TABLE three (id INTEGER)`}
	versions := func() string {
		t.Helper()
		rows, err := w.Query("SELECT version FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		return fmt.Sprint(vs)
	}
	if err := db.Migrate(ctx, "", "INTEGER", []Migration{v1, nil, v3}); err != nil {
		t.Fatalf("Migrate with a gap: %v", err)
	}
	if got := versions(); got != "[1 3]" {
		t.Fatalf("versions after a build without 2: %s, want [1 3]", got)
	}
	if err := db.Migrate(ctx, "", "INTEGER", []Migration{v1, v2, v3}); err != nil {
		t.Fatalf("Migrate with 2 arriving: %v", err)
	}
	if got := versions(); got != "[1 2 3]" {
		t.Fatalf("versions after 2 arrived: %s, want [1 2 3]", got)
	}
	if _, err := w.Exec("INSERT INTO two (id) VALUES (1)"); err != nil {
		t.Fatalf("version 2 was recorded but not applied: %v", err)
	}
	// Running again applies nothing twice.
	if err := db.Migrate(ctx, "", "INTEGER", []Migration{v1, v2, v3}); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
}
