package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ssogate/ssogate/internal/testenv"
)

// Environment variables of the PostgreSQL tests.
const (
	// EnvPostgresDSN names the database tests may use, e.g.
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
	EnvPostgresDSN = "SSOGATE_TEST_POSTGRES_DSN"
	// EnvRequire lists (comma-separated) what tests must not skip; with
	// "postgres" in it a missing or unreachable database fails the test.
	EnvRequire = "SSOGATE_TEST_REQUIRE"
)

// PostgresDSN returns a DSN for a fresh, empty schema of the test database
// (search_path set to it), dropped in t.Cleanup. Without
// SSOGATE_TEST_POSTGRES_DSN, or when the database does not answer, the test
// is skipped, or failed when SSOGATE_TEST_REQUIRE contains "postgres".
// Each call makes a new schema, so tests and test runs never share tables.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgresDSN)
	if base == "" {
		testenv.Missing(t, "postgres", EnvPostgresDSN+" not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		testenv.Missing(t, "postgres", fmt.Sprintf("%s does not answer: %v", EnvPostgresDSN, err))
	}
	defer conn.Close(ctx)

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("schema name: %v", err)
	}
	schema := "ssogate_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, base, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s is not a URL: %v", EnvPostgresDSN, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}
