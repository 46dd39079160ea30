package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// TestRevocationWaitsForRevocationInFlight: while another transaction has
// appended a revocation (taken its Seq) and not yet committed, a revocation
// waits. Otherwise its larger Seq could commit first and a follower polling
// past it would never see the smaller one.
func TestRevocationWaitsForRevocationInFlight(t *testing.T) {
	st := newStore(t).(*postgres.Store)
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"s1", "s2"} {
		err := st.CreateSession(ctx, store.Session{ID: id, ConnectionID: "acme", Subject: id, CreatedAt: now,
			ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) })
	for _, q := range []string{
		"UPDATE sessions SET revoked_at = now(), revoke_reason = 'a' WHERE id = 's1'",
		"INSERT INTO revocations (session_id, connection_id, subject, reason, at, expires_at)" +
			" VALUES ('s1', 'acme', 's1', 'a', now(), now() + interval '1 hour')",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	done := make(chan error, 1)
	go func() { done <- st.RevokeSession(ctx, "s2", "b", now) }()
	select {
	case err := <-done:
		t.Fatalf("RevokeSession returned (%v) while another revocation was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	rs, err := st.Revocations(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].SessionID != "s1" || rs[1].SessionID != "s2" {
		t.Fatalf("revocations = %+v, want s1 then s2", rs)
	}
}

func TestListenRevocations(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	listener, revoker := open(t, dsn), open(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	woken := make(chan struct{}, 10)
	listening := make(chan error, 1)
	go func() {
		listening <- listener.ListenRevocations(ctx, func() { woken <- struct{}{} })
	}()

	// LISTEN may not be in place yet: revoke one session after another
	// until a notification arrives.
	now := time.Now()
	deadline := time.After(10 * time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprintf("s%d", i)
		if err := revoker.CreateSession(ctx, store.Session{ID: id, ConnectionID: "acme", CreatedAt: now,
			ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := revoker.RevokeSession(ctx, id, "r", now); err != nil {
			t.Fatal(err)
		}
		select {
		case <-woken:
		case <-time.After(200 * time.Millisecond):
			continue
		case <-deadline:
			t.Fatal("no notification of a committed revocation")
		}
		break
	}
	cancel()
	if err := <-listening; err != nil {
		t.Fatalf("ListenRevocations after cancel = %v, want nil", err)
	}
}

// queryCounter counts the statements sent, BEGIN and COMMIT included.
type queryCounter struct {
	mu  sync.Mutex
	sql []string
}

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.sql = append(c.sql, d.SQL)
	c.mu.Unlock()
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements counted since the last take.
func (c *queryCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.sql
	c.sql = nil
	return out
}

// TestHotWritesOneStatement: each write of a login, with its events, is
// one statement (one round trip, no BEGIN or COMMIT) when it succeeds;
// what it stored reads back.
func TestHotWritesOneStatement(t *testing.T) {
	ctx := context.Background()
	var qc queryCounter
	st, err := postgres.OpenTraced(ctx, storetest.PostgresDSN(t), &qc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	ev := func(typ string) context.Context {
		return store.WithEvents(ctx, store.AuditEvent{Type: typ, ConnectionID: "acme"})
	}
	one := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if sent := qc.take(); len(sent) != 1 {
			t.Fatalf("%s sent %d statements, want 1: %q", what, len(sent), sent)
		}
	}
	qc.take()
	one("PutPendingRequest", st.PutPendingRequest(ev("login.started"), store.PendingRequest{ConnectionID: "acme", ID: "r1",
		CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	sess := store.Session{ID: "s1", ConnectionID: "acme", Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	code := store.Code{Hash: []byte("code-hash"), SessionID: "s1", ConnectionID: "acme", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	consumed, err := st.CompleteLogin(ev("login.succeeded"), store.LoginCompletion{ConnectionID: "acme", AssertionID: "_a1",
		AssertionExpiresAt: now.Add(time.Minute), RequestID: "r1", Now: now, Session: &sess, Code: &code})
	one("CompleteLogin", err)
	if consumed.ID != "r1" || !consumed.ConsumedAt.Equal(now) {
		t.Fatalf("CompleteLogin returned %+v", consumed)
	}
	red, err := st.RedeemCode(ctx, code.Hash, now, store.RefreshToken{Hash: []byte("rt1"), ExpiresAt: now.Add(24 * time.Hour)})
	one("RedeemCode", err)
	if red.Session.ID != "s1" || red.Code.SessionID != "s1" || red.Refresh.SessionID != "s1" || !red.Refresh.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("RedeemCode returned %+v", red)
	}
	rot, err := st.RotateRefreshToken(ctx, []byte("rt1"), store.RefreshToken{Hash: []byte("rt2"), Sealed: []byte("sealed"),
		ExpiresAt: now.Add(24 * time.Hour)}, now, time.Minute)
	one("RotateRefreshToken", err)
	if rot.Retry || rot.Old.SessionID != "s1" || rot.Next.SessionID != "s1" || !rot.Next.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("RotateRefreshToken returned %+v", rot)
	}
	one("AppendAudit", st.AppendAudit(ctx, store.AuditEvent{Type: "login.failed"}))

	// A retry of the rotation is answered by the transaction: the
	// successor as stored.
	retry, err := st.RotateRefreshToken(ctx, []byte("rt1"), store.RefreshToken{Hash: []byte("rt3"), ExpiresAt: now.Add(time.Hour)}, now, time.Minute)
	if err != nil || !retry.Retry || string(retry.Next.Hash) != "rt2" || string(retry.Next.Sealed) != "sealed" {
		t.Fatalf("retried rotation: %+v, %v", retry, err)
	}
	events, err := st.EventsAfter(ctx, store.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, " "); got != "login.started login.succeeded login.failed" {
		t.Fatalf("events %s", got)
	}
}
