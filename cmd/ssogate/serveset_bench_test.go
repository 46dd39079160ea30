package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ssogate/ssogate/store/storetest"
)

// serveSet is n `ssogate serve` processes on one store, configured by
// startServeProcesses, for the benchmarks that measure the server
// processes alone.
type serveSet struct {
	replicas []replica
	// pgApp is the application_name the replicas' PostgreSQL connections
	// carry, so that their backends can be found ("" on SQLite).
	pgApp string
}

// startServeSet starts n replicas of bin on store "sqlite" (a fresh file;
// n must be 1) or "postgres" (a fresh schema; skipped without
// SSOGATE_TEST_POSTGRES_DSN), each with env added to its environment.
func startServeSet(tb testing.TB, bin, store string, n int, env []string) serveSet {
	tb.Helper()
	var set serveSet
	var storeURL string
	switch store {
	case "sqlite":
		if n != 1 {
			tb.Fatalf("startServeSet: %d replicas on one SQLite file", n)
		}
		storeURL = "sqlite://" + filepath.Join(tb.TempDir(), "ssogate.db")
	case "postgres":
		set.pgApp = "ssogate-bench-" + hex.EncodeToString(randomBytes(tb, 6))
		storeURL = withDSNParam(tb, storetest.PostgresDSN(tb), "application_name", set.pgApp)
	default:
		tb.Fatalf("startServeSet: unknown store %q", store)
	}

	set.replicas, _ = startServeProcesses(tb, bin, storeURL, n, nil, env)
	return set
}

// withDSNParam sets one parameter of a postgres:// URL or key=value DSN.
func withDSNParam(tb testing.TB, dsn, key, value string) string {
	tb.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("DSN is not a URL: %v", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK), 100 on every Linux build that matters here).
const clockTick = 10 * time.Millisecond

// pidCPU is the CPU time (user + system, all threads, exited ones
// included) that process pid has used, from /proc/<pid>/stat, to the
// nearest clock tick.
func pidCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// pidSwitches is how many times the threads of process pid have been
// switched off a CPU (voluntary and involuntary context switches, summed
// over /proc/<pid>/task/*/status): a server that sleeps and wakes once per
// call pays the switch once per call, one that finds several calls queued
// at each wake-up pays it once for all of them.
func pidSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("/proc/%d/task: %d tasks, %v", pid, len(tasks), err)
	}
	var n int64
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited since the glob
		}
		for line := range strings.Lines(string(raw)) {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s: %s: %w", t, k, err)
				}
				n += c
			}
		}
	}
	return n, nil
}

// pgBackends finds the PostgreSQL backend processes that serve one
// serveSet (by its application_name) and reads their CPU from /proc. It
// works only when PostgreSQL runs on this machine, visible in /proc.
type pgBackends struct {
	conn *pgx.Conn
	app  string
}

// newPGBackends connects to SSOGATE_TEST_POSTGRES_DSN for set's backends,
// or returns nil (and logs why) when their CPU cannot be read here.
func newPGBackends(tb testing.TB, set serveSet) *pgBackends {
	tb.Helper()
	if set.pgApp == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Getenv(storetest.EnvPostgresDSN))
	if err != nil {
		tb.Fatalf("connect to PostgreSQL for pg_stat_activity: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	p := &pgBackends{conn: conn, app: set.pgApp}
	snap, err := p.snapshot()
	if err == nil && len(snap) == 0 {
		err = fmt.Errorf("no backend has application_name %s", set.pgApp)
	}
	if err != nil {
		tb.Logf("PostgreSQL backends' CPU not measured: %v", err)
		return nil
	}
	return p
}

// snapshot is the CPU used so far by each backend of the set, by pid.
func (p *pgBackends) snapshot() (map[int]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := p.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", p.app)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_activity: %w", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("pg_stat_activity: %w", err)
	}
	snap := map[int]time.Duration{}
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "postgres") {
			return nil, fmt.Errorf("backend %d is not a postgres process in this machine's /proc (%q, %v)", pid, comm, err)
		}
		cpu, err := pidCPU(int(pid))
		if err != nil {
			return nil, err
		}
		snap[int(pid)] = cpu
	}
	return snap, nil
}

// cpuSince is the CPU the set's backends used since before, and how many
// of before's backends have gone (their CPU since before is lost).
func (p *pgBackends) cpuSince(tb testing.TB, before map[int]time.Duration) (time.Duration, int) {
	tb.Helper()
	after, err := p.snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	var total time.Duration
	gone := 0
	for pid, cpu := range after {
		total += cpu - before[pid] // a new backend's CPU counts from 0
	}
	for pid := range before {
		if _, ok := after[pid]; !ok {
			gone++
		}
	}
	return total, gone
}
