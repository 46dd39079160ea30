package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// EnvMeasurePropagation turns TestRevocationPropagation on: it measures,
// it does not assert a speed (the README quotes its figures).
const EnvMeasurePropagation = "SSOGATE_MEASURE_PROPAGATION"

// TestRevocationPropagation measures how long a RevokeSubject on one
// replica takes to be seen by ValidateToken on two others, three `ssogate
// serve` processes on one PostgreSQL, while 16 goroutines keep calling
// ValidateToken on those two. Each round logs alice in afresh, revokes her
// on replica 1 and polls replicas 2 and 3 until they refuse her token: two
// samples per round. It prints p50, p90, p99 and max.
//
//	SSOGATE_MEASURE_PROPAGATION=150 SSOGATE_TEST_POSTGRES_DSN=postgres://… \
//	  go test ./cmd/ssogate -run TestRevocationPropagation -v
func TestRevocationPropagation(t *testing.T) {
	rounds := 0
	if _, err := fmt.Sscan(os.Getenv(EnvMeasurePropagation), &rounds); err != nil || rounds <= 0 {
		t.Skipf("a measurement: set %s to the number of rounds (e.g. 150 for 300 samples)", EnvMeasurePropagation)
	}
	r, _ := startReplicas(t, nil)
	ctx := context.Background()
	login := func(user string) string { return loginOn(t, r[0], user) }

	// The load: ValidateToken of bob's (never revoked) token on replicas 2
	// and 3, as a backend checking every request would.
	bobToken := login("bob")
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadCalls atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rep := r[1+g%2]
			for loadCtx.Err() == nil {
				if _, err := rep.login.ValidateToken(loadCtx, &ssogatev1.ValidateTokenRequest{AccessToken: bobToken}); err == nil {
					loadCalls.Add(1)
				}
			}
		})
	}
	t.Cleanup(func() { stopLoad(); wg.Wait() })

	var samples []time.Duration
	loadStart, loadBefore := time.Now(), loadCalls.Load()
	for range rounds {
		access := login("alice")
		for i := 1; i < 3; i++ {
			if v, err := r[i].login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: access}); err != nil || !v.Valid {
				t.Fatalf("replica %d: fresh token not valid: %v %v", i+1, v, err)
			}
		}
		if _, err := r[0].login.RevokeSubject(ctx, &ssogatev1.RevokeSubjectRequest{ConnectionId: "acme", NameId: devidp.DefaultUsers[0].Email, Reason: "measure"}); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now() // the caller knows the revocation is committed
		var mu sync.Mutex
		var pw sync.WaitGroup
		for i := 1; i < 3; i++ {
			pw.Go(func() {
				for {
					v, err := r[i].login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: access})
					if err != nil {
						t.Error(err)
						return
					}
					if !v.Valid {
						d := time.Since(revoked)
						mu.Lock()
						samples = append(samples, d)
						mu.Unlock()
						return
					}
					if time.Since(revoked) > 10*time.Second {
						t.Errorf("replica %d accepts a revoked token after 10s", i+1)
						return
					}
				}
			})
		}
		pw.Wait()
	}
	rate := float64(loadCalls.Load()-loadBefore) / time.Since(loadStart).Seconds()
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	t.Logf("revocation propagation, RevokeSubject on replica 1 -> ValidateToken refuses on replicas 2 and 3 (PostgreSQL LISTEN/NOTIFY):")
	t.Logf("  samples %d, background load %.0f ValidateToken/s on replicas 2+3", len(samples), rate)
	t.Logf("  p50 %s  p90 %s  p99 %s  max %s", q(0.50).Round(10*time.Microsecond), q(0.90).Round(10*time.Microsecond),
		q(0.99).Round(10*time.Microsecond), samples[len(samples)-1].Round(10*time.Microsecond))
}
