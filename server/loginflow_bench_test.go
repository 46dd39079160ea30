package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// benchBackends are the stores the login benchmarks run on; PostgreSQL
// only with SSOGATE_TEST_POSTGRES_DSN (or skipped).
var benchBackends = []struct {
	name  string
	store func(testing.TB) string
}{
	{"sqlite", nil},
	{"postgres", func(tb testing.TB) string { return storetest.PostgresDSN(tb) }},
}

func benchConfig(b *testing.B, store func(testing.TB) string) []func(*config.Config) {
	if store == nil {
		return nil
	}
	dsn := store(b)
	return []func(*config.Config){func(c *config.Config) { c.Store = dsn; c.KEK = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }}
}

// cpuMeter adds up this process's CPU time (user + system) over the
// timed parts of a benchmark: ssogate's server and the test's client
// share the process, the IdP's work is left out with the timer. The
// database server's own CPU (PostgreSQL) is not in it; SQLite's is.
type cpuMeter struct {
	total time.Duration
	mark  time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) start() { m.mark = processCPU() }
func (m *cpuMeter) stop()  { m.total += processCPU() - m.mark }

// report adds "cpu-ms/op" (per unit, e.g. per login).
func (m *cpuMeter) report(b *testing.B, unit string) {
	b.ReportMetric(float64(m.total)/float64(time.Millisecond)/float64(b.N), "cpu-ms/"+unit)
}

// BenchmarkLoginFlow measures ssogate's side of a login over the wire: POST
// the IdP's response to the ACS (validation, pending request, replay
// record, policy, session, code) and ExchangeCode over gRPC (code, tokens).
// The IdP's work (sign-in, signing) happens with the timer stopped; the
// CPU of the timed part is reported as cpu-ms/login. Run with both
// backends in one run to compare:
//
//	SSOGATE_TEST_POSTGRES_DSN=postgres://… go test -run '^$' -bench LoginFlow ./server
//
// Issue 17, 5 interleaved rounds of 80 logins at load 1.5–2.4, main
// (7494819) → the one-transaction login and the connection cache
// (medians, [per-round ratio range]; this process's CPU, so the test's
// HTTP and gRPC clients are in it and PostgreSQL's own CPU is not):
// PostgreSQL 7.17 → 7.00 cpu-ms/login (0.94 [0.77–1.05]), SQLite 8.49 →
// 7.70 (0.86 [0.80–0.93]), SQLite/PostgreSQL 1.19 → 1.15; wall per login
// 12.0 → 10.0 ms and 10.2 → 8.8 ms. A profile puts most of the ACS in SAML
// validation (decrypting the assertion above all), the store under 1.5 ms.
func BenchmarkLoginFlow(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			f := newIdPFixtureFor(b, "acme", "sso_url", benchConfig(b, be.store)...)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ctx := context.Background()
			var cpu cpuMeter
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				posted := f.signedResponse(b, "alice")
				b.StartTimer()
				cpu.start()
				code := postForCode(b, client, f.ts.httpURL+"/saml/acme/acs", posted)
				if _, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
					b.Fatal(err)
				}
				cpu.stop()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
			cpu.report(b, "login")
		})
	}
}

// BenchmarkStartLogin measures StartLogin over gRPC (connection lookup,
// AuthnRequest, the pending request and its event), as cpu-ms/start.
// Issue 17, same rounds: PostgreSQL 2.32 → 1.46 cpu-ms (0.81 [0.55–0.86]),
// SQLite 1.91 → 1.49 (0.75 [0.53–0.95]); the gRPC round trip and the
// client are most of what is left.
func BenchmarkStartLogin(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			f := newIdPFixtureFor(b, "acme", "sso_url", benchConfig(b, be.store)...)
			ctx := context.Background()
			req := &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.com/cb"}
			var cpu cpuMeter
			b.ReportAllocs()
			b.ResetTimer()
			cpu.start()
			for i := 0; i < b.N; i++ {
				if _, err := f.login.StartLogin(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop()
			cpu.report(b, "start")
		})
	}
}

func postForCode(tb testing.TB, client *http.Client, acs string, posted devidp.Posted) string {
	tb.Helper()
	resp, err := client.PostForm(acs, url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		tb.Fatalf("ACS: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}
