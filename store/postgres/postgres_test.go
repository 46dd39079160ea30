package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/postgres"
	"github.com/ssogate/ssogate/store/storetest"
)

// dsns remembers which DSN each test store was opened on, for its twin.
var dsns sync.Map // store.Store -> string

func open(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	dsns.Store(store.Store(st), dsn)
	tb.Cleanup(func() {
		dsns.Delete(store.Store(st))
		st.Close()
	})
	return st
}

func newStore(tb testing.TB) store.Store {
	tb.Helper()
	return open(tb, storetest.PostgresDSN(tb))
}

func opener(ctx context.Context, dsn string) (store.Store, error) { return postgres.Open(ctx, dsn) }

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) store.Store { return newStore(t) },
		// A second pool on the same schema: another replica.
		storetest.WithTwin(func(t *testing.T, first store.Store) store.Store {
			dsn, ok := dsns.Load(first)
			if !ok {
				t.Fatal("twin of an unknown store")
			}
			return open(t, dsn.(string))
		}))
}

func TestOpen(t *testing.T) {
	storetest.RunOpenTests(t, func(t *testing.T) string { return storetest.PostgresDSN(t) }, opener)
}

func TestCrash(t *testing.T) {
	storetest.Crash(t, "TestCrashHelper", storetest.PostgresDSN(t), 300, opener)
}

func TestCrashHelper(t *testing.T) { storetest.CrashHelper(t, opener) }

func TestOpenInvalid(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:secret@[::1")
	if !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("Open of a malformed DSN = %v, want ErrInvalidArgument", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %q shows the password", err)
	}
}

func BenchmarkStore(b *testing.B) { storetest.RunBenchmarks(b, newStore) }
