package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// replicaCPUCap is the CPU share each capped replica gets, unless
// SSOGATE_BENCH_REPLICA_CPU says otherwise (a fraction of one core).
//
// On this 2-core machine, three replicas at 0.2 take 0.6 of a core when
// saturated. The gRPC clients in the test process spend about two thirds
// of the server's CPU per call (client-µs/call vs server-µs/call), so at
// three replicas' throughput they take about 0.4; PostgreSQL does next to
// nothing for a cached token. That is about 1 of the 2 cores, which leaves
// the other for the kernel and whatever else runs on a shared machine. At
// 0.3 the replicas and their clients want 1.5 cores and, with other load
// on the machine, the three replicas no longer get their quota (seen at
// load 5-7: 0.22 of 0.25 cores each, throttled in 60% of periods), so the
// run would measure the machine, not the replicas.
const replicaCPUCap = 0.2

// replicaCPUPeriod is the CFS enforcement period of the capped replicas.
// Shorter than the kernel's default 100 ms, so that a replica that has used
// its quota waits at most 7 ms (not 70) for the next period: the cap shows
// as throughput, with less of it as latency spikes.
const replicaCPUPeriod = 10 * time.Millisecond

// BenchmarkValidateTokenReplicas drives ValidateToken from 64 concurrent
// clients for 5 s against one `ssogate serve` replica and for 5 s against
// three (PostgreSQL, one fresh schema, the same cached token), in
// one-second slices taken in turn, and reports calls per second, p50 and
// p99 latency, server CPU per call (/proc utime + stime of the replica
// processes) and the clients' CPU per call (this process), for one and
// for three replicas and for each replica of the three, and the throughput
// ratio three/one (3/1), and context switches per call (ctxsw/call-1: the
// lone replica under 64 clients; ctxsw/call-3: one replica of three,
// under its 21): a replica that finds several calls waiting each time it
// wakes pays for the wake-up once for all of them. The clients run in this
// process; client i calls replica i mod n. A third configuration, in the
// same turns, puts 21 clients on one replica, the load each of the three
// gets: 3/1@21clients is three replicas' throughput over that, and tells
// whether three replicas fall short of 3× because each serves a third of
// the load (shorter queues, fewer calls per wake-up and syscall, more CPU
// per call) or for another reason.
//
//	SSOGATE_TEST_POSTGRES_DSN=... go test ./cmd/ssogate -run '^$' -bench ValidateTokenReplicas -benchtime 1x -count 3
//
// Two sub-benchmarks, each with its own three processes:
//
//   - uncapped: the replicas as they run by default (GOMAXPROCS = the
//     machine's cores), sharing the cores with each other and with the
//     clients. On a 2-core machine three replicas cannot get three times
//     one replica's CPU, so 3/1 there says nothing about how the service
//     scales; it shows what sharing the cores costs.
//   - capped-<cpus>cpu: each replica runs with GOMAXPROCS=1 in its own
//     cgroup whose CFS quota lets it use <cpus> of one core per 10 ms
//     period (replicaCPUCap, or e.g. SSOGATE_BENCH_REPLICA_CPU=0.3), as a
//     replica on its own slice of a machine would. One capped replica is
//     saturated by 64 clients, and three have three times its CPU with
//     cores to spare, so 3/1 is the replicas' scaling: 3.0 is linear.
//     Each replica's "cores" (CPU used over wall time) and "throttled"
//     (the share of CFS periods in which it ran out of quota) say whether
//     it was saturated: cores at the cap and throttled near 100% mean the
//     cap limited it; less means the machine or the clients did, and 3/1
//     is then not the replicas' scaling. The capped part needs a writable
//     cgroup (cgroup v1 /sys/fs/cgroup/cpu, or v2 with the cpu controller;
//     root): without one it is skipped with the reason. Its cgroups are
//     removed when it ends, also when it fails.
func BenchmarkValidateTokenReplicas(b *testing.B) {
	bin := benchBinary(b)
	b.Run("uncapped", func(b *testing.B) {
		set := startServeSet(b, bin, "postgres", 3, nil)
		benchReplicas(b, set.replicas, nil)
	})
	cpus := replicaCPUCap
	if v := os.Getenv("SSOGATE_BENCH_REPLICA_CPU"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 64 {
			b.Fatalf("SSOGATE_BENCH_REPLICA_CPU=%q: want a CPU count such as 0.3", v)
		}
		cpus = f
	}
	b.Run(fmt.Sprintf("capped-%.2fcpu", cpus), func(b *testing.B) {
		caps, err := newCPUCaps()
		if err != nil {
			b.Skipf("capped replicas skipped: %v", err)
		}
		set := startServeSet(b, bin, "postgres", 3, []string{"GOMAXPROCS=1"})
		var cgs []*cpuCap
		for i, r := range set.replicas {
			cgs = append(cgs, caps.limit(b, fmt.Sprintf("replica%d", i+1), r.cmd.Process.Pid, cpus, replicaCPUPeriod))
		}
		benchReplicas(b, set.replicas, cgs)
	})
}

// replicaRun is the summary of one configuration's runs.
type replicaRun struct {
	rps, p50, p99, cpuPerCall, clientCPUPerCall float64
	per                                         []replicaShare
}

// replicaShare is one replica's part of a run.
type replicaShare struct {
	rps, p50, p99, cpuPerCall, cpuUsed float64 // cpuUsed: cores, averaged over the run
	throttled                          float64 // % of CFS periods throttled; -1 uncapped
	switchesPerCall                    float64 // the replica's context switches per call
}

// replicaSample is what a configuration's slices add up to: wall time,
// each replica's call latencies, CPU and throttling, and the clients' CPU.
type replicaSample struct {
	elapsed, client time.Duration
	lat             [][]time.Duration
	cpu             []time.Duration
	switches        []int64
	thr             []throttleStats
}

func (s *replicaSample) add(o replicaSample) {
	if s.lat == nil {
		*s = replicaSample{lat: make([][]time.Duration, len(o.lat)), cpu: make([]time.Duration, len(o.cpu)),
			switches: make([]int64, len(o.switches)), thr: make([]throttleStats, len(o.thr))}
	}
	s.elapsed += o.elapsed
	s.client += o.client
	for i := range o.lat {
		s.lat[i] = append(s.lat[i], o.lat[i]...)
		s.cpu[i] += o.cpu[i]
		s.switches[i] += o.switches[i]
		s.thr[i] = s.thr[i].add(o.thr[i])
	}
}

func (s replicaSample) summary(capped bool) replicaRun {
	var res replicaRun
	var all []time.Duration
	var cpuTotal time.Duration
	for i := range s.lat {
		all = append(all, s.lat[i]...)
		cpuTotal += s.cpu[i]
		st := latencyStats(s.lat[i], s.elapsed)
		share := replicaShare{rps: st.rps, p50: st.p50, p99: st.p99, throttled: -1,
			cpuPerCall: perCall(s.cpu[i], len(s.lat[i])), cpuUsed: s.cpu[i].Seconds() / s.elapsed.Seconds(),
			switchesPerCall: float64(s.switches[i]) / float64(max(1, len(s.lat[i])))}
		if t := s.thr[i]; capped && t.periods > 0 {
			share.throttled = 100 * float64(t.throttled) / float64(t.periods)
		}
		res.per = append(res.per, share)
	}
	st := latencyStats(all, s.elapsed)
	res.rps, res.p50, res.p99 = st.rps, st.p50, st.p99
	res.cpuPerCall = perCall(cpuTotal, len(all))
	res.clientCPUPerCall = perCall(s.client, len(all))
	return res
}

func perCall(d time.Duration, calls int) float64 {
	return float64(d.Nanoseconds()) / 1e3 / float64(calls)
}

// benchReplicas measures, per b.Loop iteration, three configurations: 64
// clients on one replica (replicas[0]), 64 on all of them, and 21 on one.
// Each gets 5 s, as 5 one-second slices interleaved with the others', so
// that the machine's other load drifts into all three alike. cgs, when not
// nil, are the replicas' CPU caps, for their throttling counters.
func benchReplicas(b *testing.B, replicas []replica, cgs []*cpuCap) {
	ctx := context.Background()
	req := &ssogatev1.ValidateTokenRequest{AccessToken: loginOn(b, replicas[0], "alice")}
	for _, rep := range replicas { // warm each replica's cache
		if v, err := rep.login.ValidateToken(ctx, req); err != nil || !v.Valid {
			b.Fatalf("ValidateToken: %v %v", v, err)
		}
	}
	const rounds, slice = 5, time.Second
	runSlice := func(replicas []replica, clients int) replicaSample {
		n := len(replicas)
		s := replicaSample{lat: make([][]time.Duration, n), cpu: make([]time.Duration, n), switches: make([]int64, n), thr: make([]throttleStats, n)}
		thrBefore := make([]throttleStats, n)
		for i, rep := range replicas {
			s.cpu[i] = -replicaCPU(b, rep)
			s.switches[i] = -replicaSwitches(b, rep)
			if cgs != nil {
				thrBefore[i] = cgs[i].stats(b)
			}
		}
		clientBefore := selfCPU()
		lat := make([][]time.Duration, clients)
		deadline := time.Now().Add(slice)
		began := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rep := replicas[c%n]
				for time.Now().Before(deadline) {
					t0 := time.Now()
					v, err := rep.login.ValidateToken(ctx, req)
					if err != nil || !v.Valid {
						b.Errorf("ValidateToken: %v %v", v, err)
						return
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			})
		}
		wg.Wait()
		s.elapsed = time.Since(began)
		s.client = selfCPU() - clientBefore
		for i, rep := range replicas {
			s.cpu[i] += replicaCPU(b, rep)
			s.switches[i] += replicaSwitches(b, rep)
			if cgs != nil {
				s.thr[i] = cgs[i].stats(b).sub(thrBefore[i])
			}
			for c := i; c < clients; c += n {
				s.lat[i] = append(s.lat[i], lat[c]...)
			}
		}
		return s
	}
	logRun := func(label string, r replicaRun) {
		b.Logf("%s: %.0f calls/s, p50 %.2f ms, p99 %.2f ms, server %.1f µs CPU/call, clients %.1f µs CPU/call",
			label, r.rps, r.p50, r.p99, r.cpuPerCall, r.clientCPUPerCall)
		for i, s := range r.per {
			thr := ""
			if s.throttled >= 0 {
				thr = fmt.Sprintf(", throttled in %.0f%% of periods", s.throttled)
			}
			b.Logf("  replica %d: %.0f calls/s, p50 %.2f ms, p99 %.2f ms, %.1f µs CPU/call, %.3f context switches/call, %.2f cores%s",
				i+1, s.rps, s.p50, s.p99, s.cpuPerCall, s.switchesPerCall, s.cpuUsed, thr)
		}
	}
	const clients = 64
	configs := []struct {
		replicas []replica
		clients  int
	}{{replicas[:1], clients}, {replicas, clients}, {replicas[:1], clients / 3}}
	for b.Loop() {
		samples := make([]replicaSample, len(configs))
		for round := range rounds {
			for k := range configs { // a different one first each round
				i := (round + k) % len(configs)
				samples[i].add(runSlice(configs[i].replicas, configs[i].clients))
			}
		}
		one, three, oneAtThird := samples[0].summary(cgs != nil), samples[1].summary(cgs != nil), samples[2].summary(cgs != nil)
		b.ReportMetric(one.rps, "rps-1")
		b.ReportMetric(three.rps, "rps-3")
		b.ReportMetric(three.rps/one.rps, "3/1")
		b.ReportMetric(one.p99, "p99-ms-1")
		b.ReportMetric(three.p99, "p99-ms-3")
		b.ReportMetric(one.cpuPerCall, "server-µs/call-1")
		b.ReportMetric(three.cpuPerCall, "server-µs/call-3")
		b.ReportMetric(three.clientCPUPerCall, "client-µs/call-3")
		b.ReportMetric(three.rps/oneAtThird.rps, "3/1@21clients")
		b.ReportMetric(one.per[0].switchesPerCall, "ctxsw/call-1")
		b.ReportMetric(three.per[1].switchesPerCall, "ctxsw/call-3")
		logRun("1 replica", one)
		logRun("3 replicas", three)
		logRun(fmt.Sprintf("1 replica, %d clients", clients/3), oneAtThird)
		b.Logf("3/1 = %.2f; 3 replicas / 1 replica with a third of the clients = %.2f",
			three.rps/one.rps, three.rps/oneAtThird.rps)
	}
}

type latStats struct{ rps, p50, p99 float64 }

// latencyStats are the rate and percentiles of calls that took lat,
// made over elapsed.
func latencyStats(lat []time.Duration, elapsed time.Duration) latStats {
	if len(lat) == 0 {
		return latStats{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return latStats{rps: float64(len(s)) / elapsed.Seconds(), p50: ms(s[len(s)/2]), p99: ms(s[len(s)*99/100])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// replicaSwitches is how many context switches a replica's threads have
// made.
func replicaSwitches(tb testing.TB, rep replica) int64 {
	tb.Helper()
	n, err := pidSwitches(rep.cmd.Process.Pid)
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	return n
}

// replicaCPU is the CPU time (user + system) a replica's process has used.
func replicaCPU(tb testing.TB, rep replica) time.Duration {
	tb.Helper()
	cpu, err := pidCPU(rep.cmd.Process.Pid)
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	return cpu
}

// selfCPU is the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
