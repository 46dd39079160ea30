package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// RunBenchmarks measures the store calls of a login as the server makes
// them: PutPendingRequest with its login.started event (StartLogin); at the
// ACS two directory-link lookups (ListDirectoryUsers with SkipTotal) and
// CompleteLogin with its login.succeeded event; RedeemCode (ExchangeCode);
// then RotateRefreshToken (a refresh), AppendAudit (an event on its own)
// and GetConnection. LoginFlow is a whole login's share, LoginFlowParallel
// the same from 8 goroutines per CPU.
//
// Besides ns/op each reports cpu-us/op: this process's CPU time (user and
// system, from getrusage) over the timed loop, per call or per login. For
// SQLite that is all of it; PostgreSQL's own CPU is not in it. Rows a
// benchmark consumes (pending requests, codes, refresh tokens) are stored
// before the timer starts. newStore must return a fresh store and close it
// in tb.Cleanup.
func RunBenchmarks(b *testing.B, newStore func(tb testing.TB) store.Store) {
	ctx := context.Background()
	now := time.Now()
	var seq atomic.Int64
	next := func() string { return fmt.Sprint(seq.Add(1)) }

	// event is an audit event shaped like the server's: its own id, time,
	// correlation id and a small JSON detail.
	event := func(typ, id string) store.AuditEvent {
		return store.AuditEvent{ID: "ev-" + typ + "-" + id, Time: now, Type: typ, ConnectionID: "acme", TenantID: "tenant-acme",
			Subject: "alice", CorrelationID: "req-" + id, Detail: []byte(`{"request_id":"_` + id + `","test":false}`)}
	}
	pendingAt := func(id string) store.PendingRequest {
		r := pending("acme", id)
		r.CreatedAt, r.ExpiresAt = now, now.Add(10*time.Minute)
		return r
	}
	sessionAt := func(id string) store.Session {
		s := session(id, "acme", "alice")
		s.CreatedAt, s.ExpiresAt = now, now.Add(12*time.Hour)
		return s
	}
	codeAt := func(id string) store.Code {
		c := code(id)
		c.SessionID = id
		c.CreatedAt, c.ExpiresAt = now, now.Add(time.Minute)
		return c
	}
	refreshAt := func(id string) store.RefreshToken {
		return store.RefreshToken{Hash: hash("rt-" + id), CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	}
	completion := func(id string) store.LoginCompletion {
		s, c := sessionAt(id), codeAt(id)
		return store.LoginCompletion{ConnectionID: "acme", AssertionID: "_a-" + id, AssertionExpiresAt: now.Add(5 * time.Minute),
			RequestID: id, Now: now, Session: &s, Code: &c}
	}
	// directory holds users for the link lookups: the one that logs in,
	// and others around it.
	directory := func(b *testing.B, st store.Store) {
		b.Helper()
		for i := range 50 {
			name := fmt.Sprintf("user%d@acme.example", i)
			if i == 25 {
				name = "alice"
			}
			u := store.DirectoryUser{ConnectionID: "acme", ID: fmt.Sprint("u", i), UserName: name, Email: name,
				ExternalID: fmt.Sprint("x", i), Active: true, Resource: []byte(`{"userName":"` + name + `"}`), CreatedAt: now}
			if err := st.CreateDirectoryUser(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
	}
	link := func(st store.Store) error {
		users, _, err := st.ListDirectoryUsers(ctx, store.DirectoryUserQuery{ConnectionID: "acme", UserName: "alice",
			IncludeDeleted: true, Limit: 1, SkipTotal: true})
		if err == nil && len(users) != 1 {
			err = fmt.Errorf("link lookup found %d users", len(users))
		}
		return err
	}
	start := func(st store.Store, id string) error {
		return st.PutPendingRequest(store.WithEvents(ctx, event("login.started", id)), pendingAt(id))
	}
	complete := func(st store.Store, id string) error {
		_, err := st.CompleteLogin(store.WithEvents(ctx, event("login.succeeded", id)), completion(id))
		return err
	}
	redeem := func(st store.Store, id string) error {
		red, err := st.RedeemCode(ctx, hash(id), now, refreshAt(id))
		if err == nil && len(red.Refresh.Hash) == 0 {
			err = fmt.Errorf("no refresh token stored")
		}
		return err
	}
	login := func(st store.Store) error {
		id := next()
		if err := start(st, id); err != nil {
			return err
		}
		for range 2 {
			if err := link(st); err != nil {
				return err
			}
		}
		if err := complete(st, id); err != nil {
			return err
		}
		return redeem(st, id)
	}

	// prefill runs put for n fresh ids, before the timer starts.
	prefill := func(b *testing.B, n int, put func(id string) error) []string {
		b.Helper()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = next()
			if err := put(ids[i]); err != nil {
				b.Fatal(err)
			}
		}
		return ids
	}
	// timed runs op b.N times (i is the iteration), under the timer and
	// the CPU meter.
	timed := func(b *testing.B, op func(i int) error) {
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for i := range b.N {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(processCPU()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
	}

	ops := []struct {
		name string
		run  func(b *testing.B, st store.Store)
	}{
		{"PutPendingRequest", func(b *testing.B, st store.Store) {
			timed(b, func(int) error { return start(st, next()) })
		}},
		{"ListDirectoryUsers", func(b *testing.B, st store.Store) {
			directory(b, st)
			timed(b, func(int) error { return link(st) })
		}},
		{"CompleteLogin", func(b *testing.B, st store.Store) {
			ids := prefill(b, b.N, func(id string) error { return st.PutPendingRequest(ctx, pendingAt(id)) })
			timed(b, func(i int) error { return complete(st, ids[i]) })
		}},
		{"RedeemCode", func(b *testing.B, st store.Store) {
			ids := prefill(b, b.N, func(id string) error {
				if err := st.CreateSession(ctx, sessionAt(id)); err != nil {
					return err
				}
				return st.PutCode(ctx, codeAt(id))
			})
			timed(b, func(i int) error { return redeem(st, ids[i]) })
		}},
		{"RotateRefreshToken", func(b *testing.B, st store.Store) {
			if err := st.CreateSession(ctx, sessionAt("s")); err != nil {
				b.Fatal(err)
			}
			ids := prefill(b, b.N, func(id string) error {
				t := refreshAt(id)
				t.SessionID = "s"
				return st.PutRefreshToken(ctx, t)
			})
			timed(b, func(i int) error {
				next := refreshAt(ids[i] + "-next")
				next.Sealed = []byte("sealed")
				_, err := st.RotateRefreshToken(ctx, hash("rt-"+ids[i]), next, now, 30*time.Second)
				return err
			})
		}},
		{"AppendAudit", func(b *testing.B, st store.Store) {
			timed(b, func(int) error { return st.AppendAudit(ctx, event("login.failed", next())) })
		}},
		{"GetConnection", func(b *testing.B, st store.Store) {
			if err := st.CreateConnection(ctx, connection("acme", "tenant-acme", "acme.example")); err != nil {
				b.Fatal(err)
			}
			timed(b, func(int) error {
				_, err := st.GetConnection(ctx, "acme")
				return err
			})
		}},
		{"LoginFlow", func(b *testing.B, st store.Store) {
			directory(b, st)
			timed(b, func(int) error { return login(st) })
		}},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) { op.run(b, newStore(b)) })
	}
	b.Run("LoginFlowParallel", func(b *testing.B) {
		st := newStore(b)
		directory(b, st)
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := login(st); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(processCPU()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	})
}
