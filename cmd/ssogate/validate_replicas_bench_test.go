package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// BenchmarkValidateTokenReplicas drives ValidateToken from 64 concurrent
// clients for 5 s against one `ssogate serve` replica and then against
// three (PostgreSQL, started by startReplicas), with the same cached token,
// and reports calls per second, p50 and p99 latency, and the servers' CPU
// per call (from /proc: utime + stime of the replica processes), for each,
// and the throughput ratio three/one. The clients run in this process, on
// the same cores as the servers.
//
//	SSOGATE_TEST_POSTGRES_DSN=... go test ./cmd/ssogate -run '^$' -bench ValidateTokenReplicas -benchtime 1x
func BenchmarkValidateTokenReplicas(b *testing.B) {
	r, _ := startReplicas(b, nil)
	ctx := context.Background()
	req := &ssogatev1.ValidateTokenRequest{AccessToken: loginOn(b, r[0], "alice")}
	const clients, runFor = 64, 5 * time.Second
	type result struct {
		rps, p50, p99, cpuPerCall float64
	}
	run := func(replicas []replica) result {
		for _, rep := range replicas { // warm each replica's cache
			if v, err := rep.login.ValidateToken(ctx, req); err != nil || !v.Valid {
				b.Fatalf("ValidateToken: %v %v", v, err)
			}
		}
		cpuBefore := serverCPU(b, replicas)
		var calls atomic.Int64
		lat := make([][]time.Duration, clients)
		deadline := time.Now().Add(runFor)
		began := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rep := replicas[c%len(replicas)]
				for time.Now().Before(deadline) {
					t0 := time.Now()
					v, err := rep.login.ValidateToken(ctx, req)
					if err != nil || !v.Valid {
						b.Errorf("ValidateToken: %v %v", v, err)
						return
					}
					lat[c] = append(lat[c], time.Since(t0))
					calls.Add(1)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(began)
		cpu := serverCPU(b, replicas) - cpuBefore
		all := slices.Concat(lat...)
		slices.Sort(all)
		n := float64(calls.Load())
		return result{
			rps: n / elapsed.Seconds(), p50: ms(all[len(all)/2]), p99: ms(all[len(all)*99/100]),
			cpuPerCall: float64(cpu.Microseconds()) / n,
		}
	}
	for b.Loop() {
		one := run(r[:1])
		three := run(r[:])
		b.ReportMetric(one.rps, "rps-1")
		b.ReportMetric(three.rps, "rps-3")
		b.ReportMetric(three.rps/one.rps, "3/1")
		b.ReportMetric(one.p99, "p99-ms-1")
		b.ReportMetric(three.p99, "p99-ms-3")
		b.ReportMetric(one.cpuPerCall, "server-µs/call-1")
		b.ReportMetric(three.cpuPerCall, "server-µs/call-3")
		b.Logf("1 replica: %.0f calls/s, p50 %.2f ms, p99 %.2f ms, %.1f µs server CPU per call", one.rps, one.p50, one.p99, one.cpuPerCall)
		b.Logf("3 replicas: %.0f calls/s, p50 %.2f ms, p99 %.2f ms, %.1f µs server CPU per call (3/1 = %.2f)", three.rps, three.p50, three.p99, three.cpuPerCall, three.rps/one.rps)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// serverCPU is the CPU time (user + system) the replicas' processes have
// used, from /proc/<pid>/stat in clock ticks (100 per second on Linux).
func serverCPU(tb testing.TB, replicas []replica) time.Duration {
	tb.Helper()
	var total time.Duration
	for _, rep := range replicas {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rep.cmd.Process.Pid))
		if err != nil {
			tb.Skipf("no /proc: %v", err)
		}
		// Fields after the command name, which is in parentheses.
		fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
}
