package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// racers is how many goroutines contend for one value.
const racers = 50

// race runs fn from racers goroutines at once, alternating between the two
// stores, and counts the outcomes by error (nil counts as "ok").
func race(t *testing.T, a, b store.Store, fn func(i int, st store.Store) error) map[string]int {
	t.Helper()
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]int{}
		errs    []error
	)
	for i := range racers {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			<-start
			err := fn(i, st)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				results["ok"]++
			case errors.Is(err, store.ErrConsumed):
				results["consumed"]++
			case errors.Is(err, store.ErrReused):
				results["reused"]++
			case errors.Is(err, store.ErrConflict):
				results["conflict"]++
			default:
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("unexpected errors: %v", err)
	}
	return results
}

func wantOutcome(t *testing.T, got map[string]int, loser string) {
	t.Helper()
	want := map[string]int{"ok": 1, loser: racers - 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
}

func raceConsumeCode(t *testing.T, a, b store.Store) {
	wantErr(t, "PutCode", a.PutCode(ctx(t), code("hot")), nil)
	got := race(t, a, b, func(_ int, st store.Store) error {
		_, err := st.ConsumeCode(ctx(t), hash("hot"), t0)
		return err
	})
	wantOutcome(t, got, "consumed")
}

func raceConsumePendingRequest(t *testing.T, a, b store.Store) {
	wantErr(t, "PutPendingRequest", a.PutPendingRequest(ctx(t), pending("acme", "hot")), nil)
	got := race(t, a, b, func(_ int, st store.Store) error {
		_, err := st.ConsumePendingRequest(ctx(t), "acme", "hot", t0)
		return err
	})
	wantOutcome(t, got, "consumed")
}

func raceRecordAssertion(t *testing.T, a, b store.Store) {
	got := race(t, a, b, func(_ int, st store.Store) error {
		return st.RecordAssertion(ctx(t), "acme", "_hot", t0.Add(time.Hour))
	})
	wantOutcome(t, got, "consumed")
}

// raceRotateRefreshToken: many presentations of one refresh token at once.
// One rotation wins; every other presentation is reuse (two parties hold
// the token), so the session ends revoked, with one revocation entry.
func raceRotateRefreshToken(t *testing.T, a, b store.Store) {
	mustCreateSession(t, a, session("s1", "acme", "alice"))
	wantErr(t, "PutRefreshToken", a.PutRefreshToken(ctx(t), refresh("hot", "s1", t0.Add(time.Hour))), nil)
	got := race(t, a, b, func(i int, st store.Store) error {
		_, err := st.RotateRefreshToken(ctx(t), hash("hot"), refresh(fmt.Sprintf("next-%d", i), "", t0.Add(time.Hour)), t0, 0)
		return err
	})
	wantOutcome(t, got, "reused")
	s, err := a.GetSession(ctx(t), "s1")
	wantErr(t, "GetSession", err, nil)
	if s.RevokeReason != store.ReasonRefreshTokenReuse {
		t.Fatalf("session after the race = %+v, want revoked for reuse", s)
	}
	if rs := revocations(t, a, 0); len(rs) != 1 {
		t.Fatalf("revocations = %d, want 1", len(rs))
	}
}

// raceRotateRefreshTokenRetry: many presentations of one refresh token at
// once with a retry window (a client retrying over a flaky network, on
// several replicas). One rotation wins; every other presentation gets the
// same successor; the session stays live and exactly one successor exists.
func raceRotateRefreshTokenRetry(t *testing.T, a, b store.Store) {
	mustCreateSession(t, a, session("s1", "acme", "alice"))
	wantErr(t, "PutRefreshToken", a.PutRefreshToken(ctx(t), refresh("hot", "s1", t0.Add(time.Hour))), nil)
	var mu sync.Mutex
	var succ [][]byte
	var retries int
	got := race(t, a, b, func(i int, st store.Store) error {
		r, err := st.RotateRefreshToken(ctx(t), hash("hot"), sealedRefresh(fmt.Sprintf("next-%d", i), t0.Add(time.Hour)), t0, 30*time.Second)
		if err == nil {
			mu.Lock()
			succ = append(succ, r.Next.Hash)
			if r.Retry {
				retries++
			}
			mu.Unlock()
		}
		return err
	})
	if got["ok"] != racers || len(got) != 1 {
		t.Fatalf("outcomes %v, want every presentation to succeed", got)
	}
	for _, h := range succ[1:] {
		if !bytes.Equal(h, succ[0]) {
			t.Fatal("presentations got different successors")
		}
	}
	if retries != len(succ)-1 {
		t.Fatalf("%d retries of %d presentations, want all but one", retries, len(succ))
	}
	if s, _ := a.GetSession(ctx(t), "s1"); !s.RevokedAt.IsZero() {
		t.Fatalf("session after the retry race = %+v, want live", s)
	}
	if rs := revocations(t, a, 0); len(rs) != 0 {
		t.Fatalf("revocations = %d, want 0", len(rs))
	}
}

func raceUpdateConnection(t *testing.T, a, b store.Store) {
	mustCreateConnection(t, a, connection("acme", "t", "acme.com"))
	got := race(t, a, b, func(i int, st store.Store) error {
		c := connection("acme", "t", fmt.Sprintf("d%d.com", i))
		_, err := st.UpdateConnection(ctx(t), c, 1)
		return err
	})
	wantOutcome(t, got, "conflict")
	c, err := b.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection", err, nil)
	if c.Version != 2 || len(c.Domains) != 1 {
		t.Fatalf("connection after the race = %+v", c)
	}
}

func raceClaimDomain(t *testing.T, a, b store.Store) {
	got := race(t, a, b, func(i int, st store.Store) error {
		return st.CreateConnection(ctx(t), connection(fmt.Sprintf("c%d", i), "t", fmt.Sprintf("own%d.com", i), "contested.com"))
	})
	wantOutcome(t, got, "conflict")
	cs, _, err := a.ListConnections(ctx(t), store.ListConnectionsQuery{PageSize: racers})
	wantErr(t, "ListConnections", err, nil)
	if len(cs) != 1 {
		t.Fatalf("%d connections after the race, want 1 (the losers roll back)", len(cs))
	}
}

// raceRevocationFollower: while sessions are revoked from both stores, a
// follower polls Revocations(lastSeq) as a replica does. It must end up
// with every revocation: a Seq must never become visible after a larger one.
func raceRevocationFollower(t *testing.T, a, b store.Store) {
	for i := range racers {
		mustCreateSession(t, a, session(fmt.Sprintf("s%02d", i), "acme", "alice"))
	}
	var done atomic.Bool
	seen := map[string]bool{}
	follower := make(chan error)
	c := ctx(t)
	go func() {
		var last int64
		for {
			finished := done.Load() // read before polling: a final poll after the end
			rs, err := b.Revocations(c, last, 7)
			if err != nil {
				follower <- err
				return
			}
			for _, r := range rs {
				if r.Seq <= last {
					follower <- fmt.Errorf("seq %d after %d", r.Seq, last)
					return
				}
				last = r.Seq
				seen[r.SessionID] = true
			}
			if finished && len(rs) == 0 {
				follower <- nil
				return
			}
		}
	}()
	got := race(t, a, b, func(i int, st store.Store) error {
		return st.RevokeSession(ctx(t), fmt.Sprintf("s%02d", i), "r", t0)
	})
	done.Store(true)
	wantErr(t, "follower", <-follower, nil)
	if got["ok"] != racers {
		t.Fatalf("outcomes = %v", got)
	}
	if len(seen) != racers {
		t.Fatalf("follower saw %d of %d revocations: one became visible after a larger Seq", len(seen), racers)
	}
}

func raceSweep(t *testing.T, a, b store.Store) {
	for i := range racers {
		c := code(fmt.Sprint(i))
		c.ExpiresAt = t0
		wantErr(t, "PutCode", a.PutCode(ctx(t), c), nil)
	}
	var total atomic.Int64
	got := race(t, a, b, func(_ int, st store.Store) error {
		n, err := st.Sweep(ctx(t), t0.Add(time.Second))
		total.Add(n)
		return err
	})
	if got["ok"] != racers || total.Load() != racers {
		t.Fatalf("outcomes = %v, deleted %d rows in all, want %d", got, total.Load(), racers)
	}
}
