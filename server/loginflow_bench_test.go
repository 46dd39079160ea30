package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// BenchmarkLoginFlow measures ssogate's side of a login over the wire: POST
// the IdP's response to the ACS (validation, pending request, replay
// record, policy, session, code) and ExchangeCode over gRPC (code, tokens).
// The IdP's work (sign-in, signing) happens with the timer stopped. Run
// with both backends in one run to compare:
//
//	SSOGATE_TEST_POSTGRES_DSN=postgres://… go test -bench LoginFlow ./server
func BenchmarkLoginFlow(b *testing.B) {
	backends := []struct {
		name  string
		store func(testing.TB) string
	}{
		{"sqlite", nil},
		{"postgres", func(tb testing.TB) string { return storetest.PostgresDSN(tb) }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			var extra []func(*config.Config)
			if be.store != nil {
				dsn := be.store(b)
				extra = append(extra, func(c *config.Config) { c.Store = dsn; c.KEK = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" })
			}
			f := newIdPFixtureFor(b, "acme", "sso_url", extra...)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				posted := f.signedResponse(b, "alice")
				b.StartTimer()
				code := postForCode(b, client, f.ts.httpURL+"/saml/acme/acs", posted)
				if _, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
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
