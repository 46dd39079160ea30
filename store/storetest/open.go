package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ssogate/ssogate/store"
)

// RunOpenTests checks what happens around Open: replicas starting at once
// on a new database (each migration applied once, nobody fails), and data
// surviving a close and reopen. location returns a fresh, empty location.
func RunOpenTests(t *testing.T, location func(t *testing.T) string, open Opener) {
	t.Run("ConcurrentMigrations", func(t *testing.T) {
		loc := location(t)
		const replicas = 8
		stores := make([]store.Store, replicas)
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() { stores[i], errs[i] = open(context.Background(), loc) })
		}
		wg.Wait()
		for _, st := range stores {
			if st != nil {
				t.Cleanup(func() { st.Close() })
			}
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
		for i, st := range stores {
			mustCreateSession(t, st, session(fmt.Sprint(i), "acme", "alice"))
		}
		ss, err := stores[0].FindSessions(ctx(t), "acme", "alice@idp", "")
		wantErr(t, "FindSessions", err, nil)
		if len(ss) != replicas {
			t.Fatalf("%d sessions, want %d: the replicas do not share one schema", len(ss), replicas)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		loc := location(t)
		st, err := open(context.Background(), loc)
		wantErr(t, "Open", err, nil)
		mustCreateSession(t, st, session("s1", "acme", "alice"))
		wantErr(t, "PutCode", st.PutCode(ctx(t), code("c")), nil)
		_, err = st.ConsumeCode(ctx(t), hash("c"), t0)
		wantErr(t, "ConsumeCode", err, nil)
		wantErr(t, "Close", st.Close(), nil)

		st, err = open(context.Background(), loc)
		wantErr(t, "reopen", err, nil)
		t.Cleanup(func() { st.Close() })
		_, err = st.GetSession(ctx(t), "s1")
		wantErr(t, "GetSession after reopen", err, nil)
		_, err = st.ConsumeCode(ctx(t), hash("c"), t0)
		wantErr(t, "ConsumeCode after reopen", err, store.ErrConsumed)
	})
}
