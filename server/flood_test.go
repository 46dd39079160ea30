package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// browser is one client address (behind the trusted proxy the tests play,
// X-Forwarded-For) that does not follow redirects.
type browser struct {
	t      *testing.T
	ip     string
	client *http.Client
}

func newBrowser(t *testing.T, ip string) *browser {
	return &browser{t: t, ip: ip, client: &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, u string, form url.Values) acsAnswer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.ip != "" {
		req.Header.Set("X-Forwarded-For", b.ip)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return acsAnswer{status: resp.StatusCode, header: resp.Header, body: string(data), requestID: resp.Header.Get(requestIDHeader)}
}

func (b *browser) loginURL(f *wireFixture, connID string) string {
	return f.ts.httpURL + "/saml/" + connID + "/login?" + url.Values{"return_to": {wireReturnTo}, "state": {"s-" + b.ip}}.Encode()
}

// fullLogin runs a browser-started login end to end: our login route, the
// IdP's sign-in, the ACS, and the backend's ExchangeCode.
func (b *browser) fullLogin(f *wireFixture, connID, user string) {
	b.t.Helper()
	start := b.do(http.MethodGet, b.loginURL(f, connID), nil)
	if start.status != http.StatusFound {
		b.t.Fatalf("client %s: login start = %d %s", b.ip, start.status, start.body)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(context.Background(), &http.Client{Jar: jar, Timeout: 10 * time.Second}, start.header.Get("Location"), user, user)
	if err != nil {
		b.t.Fatalf("client %s: sign in at the IdP: %v", b.ip, err)
	}
	acs := b.do(http.MethodPost, f.ts.httpURL+"/saml/"+connID+"/acs", url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	code := wantCodeRedirect(b.t, acs, wireReturnTo)
	if _, err := f.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
		b.t.Fatalf("client %s: ExchangeCode: %v", b.ip, err)
	}
}

// flood sends n requests from b with workers in parallel and counts the
// answers by status.
func (b *browser) flood(n, workers int, send func() acsAnswer) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for range jobs {
				a := send()
				mu.Lock()
				counts[a.status]++
				mu.Unlock()
			}
		})
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return counts
}

// TestFloodIsLimitedPerClient: one client's flood of logins and ACS posts
// is answered 429 (with Retry-After, counted in the metric), while other
// clients behind the same proxy sign in end to end meanwhile.
func TestFloodIsLimitedPerClient(t *testing.T) {
	f := newWireFixtureWith(t, []wireConn{{id: "acme"}}, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.RateLimit = config.RateLimitConfig{ClientRate: 1, ClientBurst: 10, ConnectionRate: 100, ConnectionBurst: 1000}
	})
	attacker := newBrowser(t, "198.51.100.66")
	var logins, posts map[int]int
	var noRetryAfter atomic.Int64
	checked := func(a acsAnswer) acsAnswer {
		if a.status == http.StatusTooManyRequests && a.header.Get("Retry-After") == "" {
			noRetryAfter.Add(1)
		}
		return a
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		logins = attacker.flood(300, 4, func() acsAnswer { return checked(attacker.do(http.MethodGet, attacker.loginURL(f, "acme"), nil)) })
	})
	wg.Go(func() {
		posts = attacker.flood(300, 4, func() acsAnswer {
			return checked(attacker.do(http.MethodPost, f.ts.httpURL+"/saml/acme/acs", url.Values{"SAMLResponse": {"PHNhbWxwOlJlc3BvbnNlLz4="}}))
		})
	})
	for i := range 3 {
		newBrowser(t, fmt.Sprintf("203.0.113.%d", i+1)).fullLogin(f, "acme", "alice")
	}
	wg.Wait()
	for name, counts := range map[string]map[int]int{"login": logins, "acs": posts} {
		if counts[http.StatusTooManyRequests] < 250 {
			t.Errorf("%s flood answers %v, want most of the 300 refused with 429", name, counts)
		}
	}
	if n := noRetryAfter.Load(); n > 0 {
		t.Errorf("%d answers 429 without Retry-After", n)
	}
	newBrowser(t, "203.0.113.9").fullLogin(f, "acme", "bob")
	m := f.metrics(t)
	for _, route := range []string{routeLogin, routeACS} {
		if got := m[metricSeries("ssogate_rate_limited_total", "route", route, "scope", "client")]; got < 250 {
			t.Errorf("ssogate_rate_limited_total{route=%q,scope=client} = %v", route, got)
		}
	}
}

// TestRefusalsAggregatedInAudit: 2,000 bad ACS posts from one client
// write a handful of audit rows whose counts sum to 2,000; a flood of
// browser logins stores a bounded number of pending requests and
// login.started rows.
func TestRefusalsAggregatedInAudit(t *testing.T) {
	// The ACS flood is about the audit log, not the limit: limits off.
	f := newWireFixtureWith(t, []wireConn{{id: "acme"}}, func(c *config.Config) { c.RateLimit = config.RateLimitConfig{} })
	b := newBrowser(t, "")
	posts := b.flood(2000, 8, func() acsAnswer {
		return b.do(http.MethodPost, f.ts.httpURL+"/saml/acme/acs", url.Values{"SAMLResponse": {"not base64 at all!"}})
	})
	if posts[http.StatusBadRequest] != 2000 {
		t.Fatalf("bad ACS posts answered %v, want 2000 × 400", posts)
	}
	f.ts.srv.refusals.flush(context.Background(), true)
	rows, total := auditCounts(t, f, auditLoginFailed)
	if rows > 4 || total != 2000 {
		t.Errorf("2000 bad posts: %d login.failed rows with counts summing to %d; want a handful summing to 2000", rows, total)
	}

	// Logins, limited: at most the client's budget gets through.
	f = newWireFixtureWith(t, []wireConn{{id: "acme"}}, func(c *config.Config) {
		c.RateLimit = config.RateLimitConfig{ClientRate: 5, ClientBurst: 20}
	})
	start := time.Now()
	logins := b.flood(500, 8, func() acsAnswer { return b.do(http.MethodGet, b.loginURL(f, "acme"), nil) })
	elapsed := time.Since(start)
	budget := 20 + int(5*elapsed.Seconds()) + 1
	if logins[http.StatusFound] > budget || logins[http.StatusTooManyRequests] == 0 {
		t.Errorf("500 browser logins in %s: %v; want at most %d started (burst 20 + 5/s), the rest 429", elapsed, logins, budget)
	}
	f.ts.srv.refusals.flush(context.Background(), true)
	rows, total = auditCounts(t, f, auditLoginStarted)
	if rows > 4 || total != logins[http.StatusFound] {
		t.Errorf("%d started logins: %d login.started rows with counts summing to %d", logins[http.StatusFound], rows, total)
	}
}

// auditCounts returns how many events of typ there are and the sum of
// their counts (an event without a count counts one).
func auditCounts(t *testing.T, f *wireFixture, typ string) (rows, total int) {
	t.Helper()
	token := ""
	for {
		resp, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{Type: typ, PageSize: 500, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			rows++
			n := 1
			if v, ok := ev.GetDetail().GetFields()["count"]; ok {
				n = int(v.GetNumberValue())
			}
			total += n
		}
		if token = resp.NextPageToken; token == "" {
			return rows, total
		}
	}
}
