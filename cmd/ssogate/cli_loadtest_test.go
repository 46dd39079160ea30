package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// loadtestServer is `ssogate serve` running in-process on SQLite, with an
// admin+login key, for the load test to run against.
type loadtestServer struct {
	grpcAddr, httpAddr string
	key                string
	conns              ssogatev1.ConnectionServiceClient
	audit              ssogatev1.AuditServiceClient
}

func startLoadtestServer(t *testing.T, env map[string]string) *loadtestServer {
	t.Helper()
	s := &loadtestServer{key: "ops-" + randomToken()}
	sum := sha256.Sum256([]byte(s.key))
	all := map[string]string{"SSOGATE_API_KEYS": "ops:" + hex.EncodeToString(sum[:]) + ":login+admin"}
	for k, v := range env {
		all[k] = v
	}
	s.grpcAddr, s.httpAddr = serveInProcess(t, all)
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerKey(s.key)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	s.conns, s.audit = ssogatev1.NewConnectionServiceClient(cc), ssogatev1.NewAuditServiceClient(cc)
	return s
}

// loadtest runs `ssogate loadtest args...` with the server's key in
// SSOGATE_API_KEY; the ACS is posted to the real listener (--url) while
// the server's external_url stays the default, as behind a proxy.
func (s *loadtestServer) loadtest(ctx context.Context, t *testing.T, key string, args ...string) result {
	t.Helper()
	var stdout, stderr lockedBuffer
	args = append([]string{"loadtest", "--server", s.grpcAddr, "--url", "http://" + s.httpAddr}, args...)
	err := run(ctx, args, mapEnv(map[string]string{"SSOGATE_API_KEY": key}), &stdout, &stderr)
	r := result{stdout.String(), stderr.String(), err}
	if all := r.stdout + r.stderr; strings.Contains(all, s.key) || strings.Contains(all, key) ||
		(err != nil && (strings.Contains(err.Error(), s.key) || strings.Contains(err.Error(), key))) {
		t.Fatalf("the API key was printed:\n%s", all)
	}
	return r
}

// loadtestConnections lists the connections a load test left behind.
func (s *loadtestServer) loadtestConnections(t *testing.T) []string {
	t.Helper()
	resp, err := s.conns.ListConnections(context.Background(), &ssogatev1.ListConnectionsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range resp.Connections {
		if strings.HasPrefix(c.Id, "loadtest-") {
			ids = append(ids, c.Id)
		}
	}
	return ids
}

// ltResult is the documented -o json shape (loadtest.Result).
type ltResult struct {
	ConnectionID    string   `json:"connection_id"`
	Mode            string   `json:"mode"`
	Concurrency     int      `json:"concurrency"`
	DurationSeconds float64  `json:"duration_seconds"`
	ElapsedSeconds  float64  `json:"elapsed_seconds"`
	Logins          uint64   `json:"logins"`
	LoginsPerSecond float64  `json:"logins_per_second"`
	FailedLogins    uint64   `json:"failed_logins"`
	Missed          uint64   `json:"missed_starts"`
	Interrupted     bool     `json:"interrupted"`
	Steps           []ltStep `json:"steps"`
	Cleanup         string   `json:"cleanup"`
	ServerCPU       *struct {
		Replicas   int     `json:"replicas"`
		Seconds    float64 `json:"seconds"`
		PerLoginMS float64 `json:"per_login_ms"`
		Error      string  `json:"error"`
	} `json:"server_cpu"`
}

type ltStep struct {
	Name         string  `json:"name"`
	Ops          uint64  `json:"ops"`
	OpsPerSecond float64 `json:"ops_per_second"`
	Latency      struct {
		P50, P95, P99, Max float64
	} `json:"latency_ms"`
	Errors         uint64            `json:"errors"`
	ErrorsByReason map[string]uint64 `json:"errors_by_reason"`
}

// decodeResult checks that the JSON has exactly the documented fields and
// decodes it.
func decodeResult(t *testing.T, out string) ltResult {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("-o json printed no JSON object: %v\n%s", err, out)
	}
	keys := func(m map[string]any) string {
		var k []string
		for name := range m {
			k = append(k, name)
		}
		slices.Sort(k)
		return strings.Join(k, ",")
	}
	want := "cleanup,concurrency,connection_id,duration_seconds,elapsed_seconds,failed_logins,interrupted,logins,logins_per_second,missed_starts,mode,rate,steps"
	if _, ok := raw["server_cpu"]; ok { // only with -metrics
		want = strings.Replace(want, "rate,steps", "rate,server_cpu,steps", 1)
	}
	if got := keys(raw); got != want {
		t.Errorf("result fields %s, want %s", got, want)
	}
	steps, _ := raw["steps"].([]any)
	for _, s := range steps {
		m, _ := s.(map[string]any)
		if got, want := keys(m), "errors,errors_by_reason,latency_ms,name,ops,ops_per_second"; got != want {
			t.Errorf("step fields %s, want %s", got, want)
		}
		lat, _ := m["latency_ms"].(map[string]any)
		if got, want := keys(lat), "max,p50,p95,p99"; got != want {
			t.Errorf("latency fields %s, want %s", got, want)
		}
	}
	var res ltResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLoadtestAgainstServe: `ssogate loadtest -d 3s -c 4 -o json` against
// a real `ssogate serve` completes logins through all five steps with no
// error, activates its connection through a passing test login, and leaves
// no connection behind.
func TestLoadtestAgainstServe(t *testing.T) {
	s := startLoadtestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := s.loadtest(ctx, t, s.key, "-d", "3s", "-c", "4", "-o", "json")
	if r.err != nil {
		t.Fatalf("loadtest: %v\n%s", r.err, r.stderr)
	}
	res := decodeResult(t, r.stdout)
	if !regexp.MustCompile(`^loadtest-[0-9a-f]{8}$`).MatchString(res.ConnectionID) || res.Mode != "concurrency" || res.Concurrency != 4 ||
		res.DurationSeconds != 3 || res.ElapsedSeconds < 3 || res.Interrupted || res.Cleanup != "deleted" {
		t.Errorf("result %+v", res)
	}
	if res.Logins == 0 || res.FailedLogins != 0 || res.LoginsPerSecond <= 0 {
		t.Errorf("logins %d (%.1f/s), failed %d", res.Logins, res.LoginsPerSecond, res.FailedLogins)
	}
	var names []string
	for _, st := range res.Steps {
		names = append(names, st.Name)
		if st.Ops == 0 || st.Errors != 0 || len(st.ErrorsByReason) != 0 || st.OpsPerSecond <= 0 {
			t.Errorf("step %s: ops %d, errors %d %v", st.Name, st.Ops, st.Errors, st.ErrorsByReason)
		}
		if !(st.Latency.P50 > 0 && st.Latency.P50 <= st.Latency.P95 && st.Latency.P95 <= st.Latency.P99 && st.Latency.P99 <= st.Latency.Max) {
			t.Errorf("step %s: latency %+v", st.Name, st.Latency)
		}
		if st.Ops < res.Logins {
			t.Errorf("step %s: %d ops for %d complete logins", st.Name, st.Ops, res.Logins)
		}
	}
	if got := strings.Join(names, ","); got != "start_login,acs,exchange_code,validate_token,refresh_token" {
		t.Errorf("steps %s", got)
	}
	if !regexp.MustCompile(`(?m)^\s+\d+s  logins \d+ `).MatchString(r.stderr) {
		t.Errorf("no progress line on stderr:\n%s", r.stderr)
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind: %v", left)
	}
	// The connection went TESTING → a passing test login → ACTIVE (no
	// force), and the logins were real ones.
	for typ, min := range map[string]int{"login.tested": 1, "login.succeeded": int(res.Logins)} {
		n := 0
		for page := ""; ; { // pages hold at most 500 events
			ev, err := s.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: res.ConnectionID, Type: typ, PageSize: 500, PageToken: page})
			if err != nil {
				t.Fatal(err)
			}
			n += len(ev.Events)
			if page = ev.NextPageToken; page == "" {
				break
			}
		}
		if n < min {
			t.Errorf("%d %s events for %s, want at least %d", n, typ, res.ConnectionID, min)
		}
	}
}

// TestLoadtestServerCPU: with -metrics the load test reads the servers'
// process CPU counter before and after the load and reports it per login
// (here the server shares the test's process, so the client's CPU is in
// it too: the test checks the arithmetic and the plumbing, not a size). A
// URL that is no ssogate /metrics gives an error in the result, not a
// failed run; a malformed one is refused before anything is created.
func TestLoadtestServerCPU(t *testing.T) {
	s := startLoadtestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	metrics := "http://" + s.httpAddr + "/metrics"
	r := s.loadtest(ctx, t, s.key, "-d", "2s", "-c", "2", "-metrics", metrics, "-o", "json")
	if r.err != nil {
		t.Fatalf("loadtest: %v\n%s", r.err, r.stderr)
	}
	res := decodeResult(t, r.stdout)
	cpu := res.ServerCPU
	if cpu == nil || cpu.Error != "" || cpu.Replicas != 1 || cpu.Seconds <= 0 || res.Logins == 0 {
		t.Fatalf("server_cpu %+v for %d logins", cpu, res.Logins)
	}
	if want := cpu.Seconds * 1000 / float64(res.Logins); cpu.PerLoginMS < want*0.999 || cpu.PerLoginMS > want*1.001 {
		t.Errorf("per_login_ms %.4f, want %.4f (%.3f s / %d logins)", cpu.PerLoginMS, want, cpu.Seconds, res.Logins)
	}

	table := s.loadtest(ctx, t, s.key, "-d", "1s", "-c", "1", "-metrics", metrics+", http://"+s.httpAddr+"/healthz")
	if table.err != nil {
		t.Fatalf("loadtest: %v\n%s", table.err, table.stderr)
	}
	if !strings.Contains(table.stdout, "server CPU: not measured: metrics http://"+s.httpAddr+"/healthz: ") {
		t.Errorf("a /metrics URL without the counter is not reported:\n%s", table.stdout)
	}

	bad := s.loadtest(ctx, t, s.key, "-d", "1s", "-c", "1", "-metrics", "ssogate:9090/metrics")
	if bad.err == nil || !strings.Contains(bad.err.Error(), `metrics URL "ssogate:9090/metrics": want an absolute http(s) URL`) {
		t.Errorf("malformed -metrics: %v", bad.err)
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind: %v", left)
	}
}

// TestLoadtestRate: -rate paces the starts: at 10/s for 2 s, 20 ticks
// (21 at most, the first being at 0 s), each a login started or, with
// every slot busy, a start missed.
func TestLoadtestRate(t *testing.T) {
	s := startLoadtestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := s.loadtest(ctx, t, s.key, "-rate", "10/s", "-c", "16", "-d", "2s", "-o", "json")
	if r.err != nil {
		t.Fatalf("loadtest: %v\n%s", r.err, r.stderr)
	}
	res := decodeResult(t, r.stdout)
	if res.Mode != "rate" || res.Concurrency != 16 {
		t.Errorf("mode %q, concurrency %d", res.Mode, res.Concurrency)
	}
	started := res.Steps[0].Ops + res.Steps[0].Errors
	if ticks := started + res.Missed; ticks < 18 || ticks > 21 || res.Logins != started || res.Logins == 0 {
		t.Errorf("%d logins started and %d missed at 10/s for 2s (%d complete, %d failed)", started, res.Missed, res.Logins, res.FailedLogins)
	}
}

// TestLoadtestReportsRateLimitedACS: a server whose per-client ACS limit
// is below the load test's rate answers 429, reported as the acs step's
// "HTTP 429"; the steps before it stay clean.
func TestLoadtestReportsRateLimitedACS(t *testing.T) {
	s := startLoadtestServer(t, map[string]string{"SSOGATE_RATE_LIMIT_CLIENT_RATE": "2", "SSOGATE_RATE_LIMIT_CLIENT_BURST": "5"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := s.loadtest(ctx, t, s.key, "-d", "2s", "-c", "2", "-o", "json")
	if r.err != nil {
		t.Fatalf("loadtest: %v\n%s", r.err, r.stderr)
	}
	res := decodeResult(t, r.stdout)
	byName := map[string]ltStep{}
	for _, st := range res.Steps {
		byName[st.Name] = st
	}
	acs := byName["acs"]
	if acs.ErrorsByReason["HTTP 429"] == 0 || acs.Errors != acs.ErrorsByReason["HTTP 429"] || acs.Ops == 0 {
		t.Errorf("acs: ops %d, errors %d %v; want some 429s and nothing else", acs.Ops, acs.Errors, acs.ErrorsByReason)
	}
	if st := byName["start_login"]; st.Errors != 0 {
		t.Errorf("start_login errors %v", st.ErrorsByReason)
	}
	if res.FailedLogins != acs.Errors || res.Cleanup != "deleted" {
		t.Errorf("failed logins %d, acs errors %d, cleanup %q", res.FailedLogins, acs.Errors, res.Cleanup)
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind: %v", left)
	}
}

// TestLoadtestReportsDeletedConnection: the connection deleted under the
// running load test makes StartLogin fail with the ErrorInfo reason
// CONNECTION_NOT_FOUND, the table lists it, and the end says the
// connection was already gone (and fails, so a script notices).
func TestLoadtestReportsDeletedConnection(t *testing.T) {
	s := startLoadtestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- s.loadtest(ctx, t, s.key, "-d", "4s", "-c", "2") }()
	id := s.waitActive(ctx, t)
	time.Sleep(time.Second) // some logins succeed first
	if _, err := s.conns.DeleteConnection(ctx, &ssogatev1.DeleteConnectionRequest{ConnectionId: id}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "was deleted by someone else during the run") {
		t.Errorf("loadtest error: %v", r.err)
	}
	if !regexp.MustCompile(`(?m)^  start_login\s+CONNECTION_NOT_FOUND\s+\d+$`).MatchString(r.stdout) {
		t.Errorf("no start_login CONNECTION_NOT_FOUND line in the table:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^logins: [1-9]\d* complete .*, [1-9]\d* failed$`).MatchString(r.stdout) {
		t.Errorf("want logins before and failures after the delete:\n%s", r.stdout)
	}
}

// waitActive returns the ID of the load test's connection once it is
// ACTIVE: the load is running.
func (s *loadtestServer) waitActive(ctx context.Context, t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the load test's connection never became ACTIVE")
		}
		resp, err := s.conns.ListConnections(ctx, &ssogatev1.ListConnectionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Connections {
			if strings.HasPrefix(c.Id, "loadtest-") && c.State == ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
				return c.Id
			}
		}
	}
}

// TestLoadtestInterrupted: cancelling the run (what Ctrl-C does through
// main's signal context) stops the load, prints what ran, and still
// deletes the connection.
func TestLoadtestInterrupted(t *testing.T) {
	s := startLoadtestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	done := make(chan result, 1)
	began := time.Now()
	go func() { done <- s.loadtest(runCtx, t, s.key, "-d", "60s", "-c", "2") }()
	s.waitActive(ctx, t)
	time.Sleep(time.Second)
	interrupt()
	r := <-done
	if time.Since(began) > 30*time.Second {
		t.Errorf("the interrupted run took %s", time.Since(began))
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "interrupted after") {
		t.Errorf("loadtest error: %v", r.err)
	}
	// The logins cut short by the interrupt are the run ending, not the
	// server failing: no errors.
	if strings.Contains(r.stdout, "errors by reason") || !regexp.MustCompile(`(?m)^logins: [1-9]\d* complete .*, 0 failed$`).MatchString(r.stdout) {
		t.Errorf("the interrupt counted as errors:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "INTERRUPTED") || !regexp.MustCompile(`(?m)^connection loadtest-[0-9a-f]{8}: deleted$`).MatchString(r.stdout) {
		t.Errorf("output:\n%s", r.stdout)
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind after an interrupt: %v", left)
	}
}

// TestLoadtestCleansUpOnFailure: a load test that cannot reach the ACS
// stops at its test login, says why, and deletes its connection; an
// unknown key is refused by its reason, without printing it, and creates
// nothing.
func TestLoadtestCleansUpOnFailure(t *testing.T) {
	s := startLoadtestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	err := run(ctx, []string{"loadtest", "--server", s.grpcAddr, "--url", "http://127.0.0.1:1", "-c", "1", "-d", "1s"},
		mapEnv(map[string]string{"SSOGATE_API_KEY": s.key}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "test login: POST http://127.0.0.1:1/saml/loadtest-") {
		t.Errorf("unreachable ACS: %v", err)
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind after a failed test login: %v", left)
	}
	// The ACS behind a path the server does not serve (a proxy prefix
	// that is not there): the test login gets a 404, the run stops
	// before any load.
	stdout.Reset()
	err = run(ctx, []string{"loadtest", "--server", s.grpcAddr, "--url", "http://" + s.httpAddr + "/sso", "-c", "1", "-d", "1s"},
		mapEnv(map[string]string{"SSOGATE_API_KEY": s.key}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "/sso/saml/loadtest-") || !strings.Contains(err.Error(), "answered 404 Not Found") {
		t.Errorf("ACS at a wrong path: %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("a run that never started printed a result:\n%s", stdout.String())
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind after a refused test login: %v", left)
	}
	r := s.loadtest(ctx, t, "not-"+s.key[4:], "-c", "1", "-d", "1s")
	if r.err == nil || !strings.Contains(r.err.Error(), "API_KEY_UNKNOWN") {
		t.Errorf("unknown key: %v", r.err)
	}
	if left := s.loadtestConnections(t); len(left) != 0 {
		t.Errorf("connections left behind by an unknown key: %v", left)
	}
	for _, bad := range [][]string{{"-c", "0"}, {"-c", "100000"}, {"-rate", "5000/s"}, {"-rate", "fast"}, {"-c", "1", "-d", "2h"}} {
		if r := s.loadtest(ctx, t, s.key, bad...); r.err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}
