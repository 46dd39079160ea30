package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// RunBenchmarks measures the store's share of a login, the hot write path:
// PutPendingRequest (StartLogin), then at the ACS ConsumePendingRequest,
// RecordAssertion, CreateSession, PutCode, then ConsumeCode (ExchangeCode).
// Each sub-benchmark reports ops/s (logins/s for the whole flow).
// newStore must return a fresh store and close it in tb.Cleanup.
func RunBenchmarks(b *testing.B, newStore func(tb testing.TB) store.Store) {
	ctx := context.Background()
	now := time.Now()
	var seq atomic.Int64
	next := func() string { return fmt.Sprint(seq.Add(1)) }

	// prefill stores n pending requests and codes named 1..n ahead of the
	// timed loop of the Consume benchmarks.
	prefill := func(b *testing.B, st store.Store, put func(id string) error) []string {
		b.Helper()
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = next()
			if err := put(ids[i]); err != nil {
				b.Fatal(err)
			}
		}
		return ids
	}
	pendingAt := func(id string) store.PendingRequest {
		r := pending("acme", id)
		r.CreatedAt, r.ExpiresAt = now, now.Add(10*time.Minute)
		return r
	}
	codeAt := func(id string) store.Code {
		c := code(id)
		c.CreatedAt, c.ExpiresAt = now, now.Add(time.Minute)
		return c
	}
	sessionAt := func(id string) store.Session {
		s := session(id, "acme", "alice")
		s.CreatedAt, s.ExpiresAt = now, now.Add(12*time.Hour)
		return s
	}
	login := func(st store.Store) error {
		id := next()
		if err := st.PutPendingRequest(ctx, pendingAt(id)); err != nil {
			return err
		}
		if _, err := st.ConsumePendingRequest(ctx, "acme", id, now); err != nil {
			return err
		}
		if err := st.RecordAssertion(ctx, "acme", "_"+id, now.Add(5*time.Minute)); err != nil {
			return err
		}
		if err := st.CreateSession(ctx, sessionAt(id)); err != nil {
			return err
		}
		if err := st.PutCode(ctx, codeAt(id)); err != nil {
			return err
		}
		_, err := st.ConsumeCode(ctx, hash(id), now)
		return err
	}

	report := func(b *testing.B, unit string) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	}
	ops := []struct {
		name string
		run  func(b *testing.B, st store.Store)
	}{
		{"RecordAssertion", func(b *testing.B, st store.Store) {
			for b.Loop() {
				if err := st.RecordAssertion(ctx, "acme", "_"+next(), now.Add(5*time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"ConsumePendingRequest", func(b *testing.B, st store.Store) {
			ids := prefill(b, st, func(id string) error { return st.PutPendingRequest(ctx, pendingAt(id)) })
			b.ResetTimer()
			for i := range b.N {
				if _, err := st.ConsumePendingRequest(ctx, "acme", ids[i], now); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"CreateSession", func(b *testing.B, st store.Store) {
			for b.Loop() {
				if err := st.CreateSession(ctx, sessionAt(next())); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"PutCode", func(b *testing.B, st store.Store) {
			for b.Loop() {
				if err := st.PutCode(ctx, codeAt(next())); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"ConsumeCode", func(b *testing.B, st store.Store) {
			ids := prefill(b, st, func(id string) error { return st.PutCode(ctx, codeAt(id)) })
			b.ResetTimer()
			for i := range b.N {
				if _, err := st.ConsumeCode(ctx, hash(ids[i]), now); err != nil {
					b.Fatal(err)
				}
			}
		}},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			st := newStore(b)
			b.ReportAllocs()
			op.run(b, st)
			report(b, "ops/s")
		})
	}
	b.Run("LoginFlow", func(b *testing.B) {
		st := newStore(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := login(st); err != nil {
				b.Fatal(err)
			}
		}
		report(b, "logins/s")
	})
	b.Run("LoginFlowParallel", func(b *testing.B) {
		st := newStore(b)
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := login(st); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b, "logins/s")
	})
}
