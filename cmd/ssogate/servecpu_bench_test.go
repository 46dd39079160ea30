package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// idleWindow is how long BenchmarkServeCPU watches an unloaded server's
// CPU to find its background rate (poll loops, sweepers, the runtime):
// long enough that the 10 ms resolution of /proc's counters is a small
// part of it.
const idleWindow = 5 * time.Second

// BenchmarkServeCPU measures the CPU that one `ssogate serve` process (a
// separate process, started as startReplicas starts them) spends per
// operation, on SQLite and, with SSOGATE_TEST_POSTGRES_DSN, on
// PostgreSQL, one client calling at a time unless said otherwise:
//
//   - StartLogin: the gRPC call (connection, AuthnRequest, pending request).
//   - Login: the ACS POST of the IdP's signed response and ExchangeCode
//     of the code it redirects with. The responses come from the devidp
//     IdP in this process and are all made (StartLogin, sign-in, signing)
//     before the measured loop.
//   - StartLogin8, Login8: the same from 8 clients at once (as ssogate
//     loadtest -c 8 drives them).
//   - ValidateToken: a token the server has already validated (cached).
//   - ValidateToken64: the same from 64 clients at once, so that one
//     wake-up or syscall of the server serves several calls.
//
// Run it with
//
//	SSOGATE_TEST_POSTGRES_DSN=... go test ./cmd/ssogate -run '^$' -bench ServeCPU -count 3 -v
//
// (-v for the log lines with the unloaded process's CPU rate, before and
// after the sub-benchmarks). Both stores' processes are started first and
// serve all of -count's rounds; each operation runs on SQLite and then on
// PostgreSQL (BenchmarkServeCPU/<operation>/<store>), so that the two are
// measured minutes apart, not the whole run apart.
// SSOGATE_BENCH_SERVE_GOMAXPROCS=1 runs the serve processes with
// GOMAXPROCS=1 (default: the machine's cores): with one client at a time, a
// runtime with idle Ps spins up threads looking for work after each
// wake-up, and that CPU is in the process's account too.
// SSOGATE_BENCH_SERVE_BIN=/path/to/ssogate measures that binary instead
// of this tree's (an older build: run both, one after the other, a few
// times over, and compare their figures pairwise).
//
// Metrics per operation: server-µs/op is the serve process's utime + stime
// (/proc/<pid>/stat) over the loop divided by the operations; idle-µs/op
// is what the same process uses unloaded over the same wall time (its
// background rate, measured over idleWindow before the sub-benchmarks,
// times the loop's wall time); server-net-µs/op is the difference, the
// operation's own cost. pg-µs/op (PostgreSQL on this machine only) is the
// CPU of the PostgreSQL backends serving the process's connections, found
// by application_name: PostgreSQL's share of the work, which SQLite does
// inside the serve process, so compare SQLite's server-µs/op with
// PostgreSQL's server-µs/op + pg-µs/op as well. PostgreSQL's own
// background processes (WAL writer, checkpointer) are in neither. ops/s is
// the client's rate, wall clock, on a shared machine. ns/op is not
// reported: it is the client's wall time.
func BenchmarkServeCPU(b *testing.B) {
	bin := benchBinary(b)
	stores := []string{"sqlite"}
	if os.Getenv(storetest.EnvPostgresDSN) != "" {
		stores = append(stores, "postgres")
	} else {
		b.Logf("PostgreSQL left out: %s not set", storetest.EnvPostgresDSN)
	}
	var env []string
	if v := os.Getenv("SSOGATE_BENCH_SERVE_GOMAXPROCS"); v != "" {
		env = []string{"GOMAXPROCS=" + v}
	}
	ctx := context.Background()
	var meters []*serveMeter
	for _, store := range stores {
		set := startServeSet(b, bin, store, 1, env)
		m := &serveMeter{store: store, r: set.replicas[0], pg: newPGBackends(b, set)}
		// Warm up every path once (connection cache, keys, pools).
		m.validate = &ssogatev1.ValidateTokenRequest{AccessToken: loginOn(b, m.r, "alice")}
		if v, err := m.r.login.ValidateToken(ctx, m.validate); err != nil || !v.Valid {
			b.Fatalf("ValidateToken: %v %v", v, err)
		}
		meters = append(meters, m)
	}
	idle := idleRates(b, meters, idleWindow)
	for i, m := range meters {
		m.idle = idle[i]
		b.Logf("%s: the unloaded serve process uses %.2f ms CPU per second", m.store, m.idle*1e3)
	}

	ops := []struct {
		name string
		run  func(b *testing.B, m *serveMeter)
	}{
		{"StartLogin", func(b *testing.B, m *serveMeter) {
			req := &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"}
			m.start(b)
			for range b.N {
				if _, err := m.r.login.StartLogin(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			m.stop(b)
		}},
		{"Login", func(b *testing.B, m *serveMeter) {
			posted := presigned(b, m)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			acs := "http://" + m.r.httpAddr + "/saml/acme/acs"
			m.start(b)
			for i := range b.N {
				code := acsCode(b, client, acs, posted[i])
				if _, err := m.r.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
					b.Fatalf("ExchangeCode: %v", err)
				}
			}
			m.stop(b)
		}},
		// StartLogin and Login from 8 clients at once, as ssogate loadtest
		// -c 8 drives them: the per-call cost under load, where one
		// wake-up serves several calls, rather than a lone caller's.
		{"StartLogin8", func(b *testing.B, m *serveMeter) {
			req := &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"}
			m.start(b)
			inParallel(b, 8, func(int) error {
				_, err := m.r.login.StartLogin(ctx, req)
				return err
			})
			m.stop(b)
		}},
		{"Login8", func(b *testing.B, m *serveMeter) {
			posted := presigned(b, m)
			client := &http.Client{
				Transport:     &http.Transport{MaxIdleConnsPerHost: 8}, // the clients keep their connections
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			acs := "http://" + m.r.httpAddr + "/saml/acme/acs"
			m.start(b)
			inParallel(b, 8, func(i int) error {
				code, err := postForCode(client, acs, posted[i])
				if err != nil {
					return err
				}
				_, err = m.r.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code})
				return err
			})
			m.stop(b)
		}},
		{"ValidateToken", func(b *testing.B, m *serveMeter) {
			m.start(b)
			for range b.N {
				if v, err := m.r.login.ValidateToken(ctx, m.validate); err != nil || !v.Valid {
					b.Fatalf("ValidateToken: %v %v", v, err)
				}
			}
			m.stop(b)
		}},
		// The same from 64 clients at once: the server's per-call cost
		// when one wake-up or syscall serves several calls.
		{"ValidateToken64", func(b *testing.B, m *serveMeter) {
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			m.start(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v, err := m.r.login.ValidateToken(ctx, m.validate); err != nil || !v.Valid {
						b.Errorf("ValidateToken: %v %v", v, err)
						return
					}
				}
			})
			m.stop(b)
		}},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			for _, m := range meters {
				b.Run(m.store, func(b *testing.B) { op.run(b, m) })
			}
		})
	}
	for i, rate := range idleRates(b, meters, idleWindow) {
		b.Logf("%s: the unloaded serve process after the sub-benchmarks: %.2f ms CPU per second", meters[i].store, rate*1e3)
	}
}

// maxPresigned bounds the Login benchmarks' -benchtime: their responses
// are all signed before the loop, and the first must still be valid (the
// IdP's assertion lifetime, the pending request's 10 minutes) when the
// last is posted: 2,000 were not, here.
const maxPresigned = 1000

// presigned makes b.N responses for m's replica to consume.
func presigned(b *testing.B, m *serveMeter) []devidp.Posted {
	b.Helper()
	if b.N > maxPresigned {
		b.Fatalf("-benchtime %dx: at most %dx, the responses signed before the loop expire", b.N, maxPresigned)
	}
	posted := make([]devidp.Posted, b.N)
	for i := range posted {
		posted[i] = signedResponse(b, m.r, "alice")
	}
	return posted
}

// inParallel runs op(i) for every i in [0, b.N) from clients goroutines,
// failing b at the first error.
func inParallel(b *testing.B, clients int, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(i); err != nil {
					b.Errorf("call %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// idleRates is the CPU, in seconds per second, that each meter's process
// uses over window with no requests.
func idleRates(b *testing.B, meters []*serveMeter, window time.Duration) []float64 {
	b.Helper()
	before := make([]time.Duration, len(meters))
	for i, m := range meters {
		before[i] = replicaCPU(b, m.r)
	}
	began := time.Now()
	time.Sleep(window)
	elapsed := time.Since(began)
	rates := make([]float64, len(meters))
	for i, m := range meters {
		rates[i] = (replicaCPU(b, m.r) - before[i]).Seconds() / elapsed.Seconds()
	}
	return rates
}

// serveMeter reads a serve process's CPU (and its PostgreSQL backends')
// around a benchmark's loop and reports it per operation.
type serveMeter struct {
	store    string
	r        replica
	pg       *pgBackends                     // nil: not measured
	idle     float64                         // the process's unloaded CPU, seconds per second
	validate *ssogatev1.ValidateTokenRequest // a token r has validated

	cpu    time.Duration
	pgSnap map[int]time.Duration
	began  time.Time
}

// start resets b's timer and takes the first reading.
func (m *serveMeter) start(b *testing.B) {
	b.Helper()
	if m.pg != nil {
		snap, err := m.pg.snapshot()
		if err != nil {
			b.Fatal(err)
		}
		m.pgSnap = snap
	}
	m.cpu = replicaCPU(b, m.r)
	m.began = time.Now()
	b.ResetTimer()
}

// stop stops b's timer, takes the second reading and reports the metrics
// BenchmarkServeCPU describes.
func (m *serveMeter) stop(b *testing.B) {
	b.Helper()
	b.StopTimer()
	wall := time.Since(m.began)
	cpu := replicaCPU(b, m.r) - m.cpu
	n := float64(b.N)
	perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / n }
	idle := time.Duration(m.idle * float64(wall))
	b.ReportMetric(perOp(cpu), "server-µs/op")
	b.ReportMetric(perOp(idle), "idle-µs/op")
	b.ReportMetric(perOp(cpu-idle), "server-net-µs/op")
	b.ReportMetric(n/wall.Seconds(), "ops/s")
	if m.pg != nil {
		pgCPU, gone := m.pg.cpuSince(b, m.pgSnap)
		b.ReportMetric(perOp(pgCPU), "pg-µs/op")
		if gone > 0 {
			b.Logf("%d PostgreSQL backends closed during the loop; their CPU in it is not counted", gone)
		}
	}
	// Not ns/op: the client's wall time per call is ops/s's inverse and
	// says little about the server on a shared machine.
	b.ReportMetric(0, "ns/op")
}

// signedResponse starts a login on r and signs user in at the devidp IdP
// (in this process): the form the IdP would have the browser post to r's
// ACS.
func signedResponse(tb testing.TB, r replica, user string) devidp.Posted {
	tb.Helper()
	ctx := context.Background()
	start, err := r.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"})
	if err != nil {
		tb.Fatal(err)
	}
	jar, _ := cookiejar.New(nil) // a fresh browser: the IdP asks for the password
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar}, start.RedirectUrl, user, user)
	if err != nil {
		tb.Fatal(err)
	}
	return posted
}

// acsCode posts an IdP's form to an ACS and returns the code of the
// redirect it answers with.
func acsCode(tb testing.TB, client *http.Client, acs string, posted devidp.Posted) string {
	tb.Helper()
	code, err := postForCode(client, acs, posted)
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// postForCode is acsCode for any goroutine: it returns its failure.
func postForCode(client *http.Client, acs string, posted devidp.Posted) (string, error) {
	resp, err := client.PostForm(acs, url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("ACS: status %d", resp.StatusCode)
	}
	return loc.Query().Get("code"), nil
}
