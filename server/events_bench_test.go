package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// BenchmarkEventThroughput measures events appended per second during a
// login loop (ACS + ExchangeCode over the wire, IdP work done before the
// timer starts), without and with one webhook endpoint receiving every
// event, per backend. Compare the two "events/s" of a backend in one run:
//
//	SSOGATE_TEST_POSTGRES_DSN=postgres://… go test -run '^$' -bench EventThroughput -benchtime 300x ./server
func BenchmarkEventThroughput(b *testing.B) {
	backends := []struct {
		name  string
		store func(testing.TB) string
	}{
		{"sqlite", nil},
		{"postgres", func(tb testing.TB) string { return storetest.PostgresDSN(tb) }},
	}
	for _, be := range backends {
		for _, hooked := range []bool{false, true} {
			name := be.name + "/no-webhook"
			if hooked {
				name = be.name + "/webhook"
			}
			b.Run(name, func(b *testing.B) {
				extra := []func(*config.Config){func(c *config.Config) { c.AllowPrivateFetch = true }}
				if be.store != nil {
					dsn := be.store(b)
					extra = append(extra, func(c *config.Config) { c.Store = dsn; c.KEK = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" })
				}
				f := newIdPFixtureFor(b, "acme", "sso_url", extra...)
				st := f.ts.srv.store
				var received atomic.Int64
				if hooked {
					recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						received.Add(1)
						w.WriteHeader(http.StatusNoContent)
					}))
					b.Cleanup(recv.Close)
					ev := ssogatev1.NewEventServiceClient(f.ts.dial(b, testEventsKey))
					if _, err := ev.CreateWebhook(context.Background(), &ssogatev1.CreateWebhookRequest{Url: recv.URL}); err != nil {
						b.Fatal(err)
					}
				}
				hookFrom := lastSequence(b, st)
				posted := make([]devidp.Posted, b.N)
				for i := range posted {
					posted[i] = f.signedResponse(b, "alice")
				}
				// The endpoint catches up with the login.started events first.
				for hooked && received.Load() < lastSequence(b, st)-hookFrom {
					time.Sleep(10 * time.Millisecond)
				}
				client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				ctx := context.Background()
				from := lastSequence(b, st)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					code := postForCode(b, client, f.ts.httpURL+"/saml/acme/acs", posted[i])
					if _, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				appended := lastSequence(b, st) - from
				b.ReportMetric(float64(appended)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
			})
		}
	}
}
