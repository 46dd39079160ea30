package ratelimit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func req(remote string, xff ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/saml/acme/login", nil)
	r.RemoteAddr = remote
	for _, h := range xff {
		r.Header.Add("X-Forwarded-For", h)
	}
	return r
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct peer", "203.0.113.9:4000", nil, "203.0.113.9"},
		{"untrusted peer's XFF ignored", "198.51.100.1:4000", []string{"1.2.3.4"}, "198.51.100.1"},
		{"trusted proxy", "10.1.1.1:4000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"forged left entries ignored", "10.1.1.1:4000", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"chain of trusted proxies", "10.1.1.1:4000", []string{"6.6.6.6, 1.2.3.4, 192.168.1.7"}, "1.2.3.4"},
		{"several headers", "10.1.1.1:4000", []string{"6.6.6.6", "1.2.3.4, 10.2.2.2"}, "1.2.3.4"},
		{"garbage stops the walk", "10.1.1.1:4000", []string{"1.2.3.4, nonsense"}, "10.1.1.1"},
		{"only trusted hops", "10.1.1.1:4000", []string{"10.9.9.9"}, "10.9.9.9"},
		{"ipv6 peer", "[2001:db8::1]:4000", nil, "2001:db8::1"},
		{"mapped peer", "[::ffff:1.2.3.4]:4000", nil, "1.2.3.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClientAddr(req(tc.remote, tc.xff...), trusted); got.String() != tc.want {
				t.Errorf("ClientAddr = %s, want %s", got, tc.want)
			}
		})
	}
	if a, b := ClientKey(netip.MustParseAddr("2001:db8:1:2::1")), ClientKey(netip.MustParseAddr("2001:db8:1:2:ffff::9")); a != b {
		t.Errorf("one /64 gives two keys: %s, %s", a, b)
	}
}

func TestLimits(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	l, err := New(Config{ClientRate: 1, ClientBurst: 3, ConnectionRate: 2, ConnectionBurst: 5, Registerer: reg, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	// One client: its burst, then refused with a Retry-After near 1/rate.
	for i := range 3 {
		if d := l.Check(req("1.1.1.1:1"), "login", "acme"); !d.OK {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	d := l.Check(req("1.1.1.1:1"), "login", "acme")
	if d.OK || d.Scope != ScopeClient || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("over the client burst: %+v", d)
	}
	// Another route has its own bucket; another client too.
	if d := l.Check(req("1.1.1.1:1"), "acs", "acme"); !d.OK {
		t.Fatalf("acs refused because of login: %+v", d)
	}
	if d := l.Check(req("2.2.2.2:1"), "login", "acme"); !d.OK {
		t.Fatalf("second client refused: %+v", d)
	}
	// The connection's bucket (5 on login: 3 + 1 used) runs out across clients.
	if d := l.Check(req("3.3.3.3:1"), "login", "acme"); !d.OK {
		t.Fatalf("fifth on the connection: %+v", d)
	}
	d = l.Check(req("4.4.4.4:1"), "login", "acme")
	if d.OK || d.Scope != ScopeConnection {
		t.Fatalf("over the connection burst: %+v", d)
	}
	if d := l.Check(req("4.4.4.4:1"), "login", "other"); !d.OK {
		t.Fatalf("another connection refused: %+v", d)
	}
	// Time refills.
	c.add(time.Second)
	if d := l.Check(req("1.1.1.1:1"), "login", "acme"); !d.OK {
		t.Fatalf("after a second: %+v", d)
	}
	if got := testutil.ToFloat64(l.limited.WithLabelValues("login", ScopeClient)); got != 1 {
		t.Errorf("client refusals counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(l.limited.WithLabelValues("login", ScopeConnection)); got != 1 {
		t.Errorf("connection refusals counted %v, want 1", got)
	}
}

func TestBoundedKeys(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l, err := New(Config{ClientRate: 1, ClientBurst: 2, MaxKeys: 100, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10_000 {
		l.Check(req(fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255)), "acs", "")
	}
	if n := l.Len(); n > 100 {
		t.Fatalf("%d buckets held, cap 100", n)
	}
	// The overflow bucket still limits the keys that did not fit.
	refused := 0
	for i := range 10 {
		if !l.Check(req(fmt.Sprintf("11.0.0.%d:1", i)), "acs", "").OK {
			refused++
		}
	}
	if refused == 0 {
		t.Error("keys beyond the cap are not limited at all")
	}
	// Refilled buckets are evicted.
	c.add(10 * time.Second)
	l.Sweep()
	if n := l.Len(); n != 0 {
		t.Errorf("%d buckets left after they all refilled", n)
	}
}

func TestMiddleware(t *testing.T) {
	l, err := New(Config{ClientRate: 0.5, ClientBurst: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := l.Middleware("login", func(r *http.Request) string { return "acme" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	codes := []int{}
	var last *httptest.ResponseRecorder
	for range 2 {
		last = httptest.NewRecorder()
		h.ServeHTTP(last, req("1.1.1.1:1"))
		codes = append(codes, last.Code)
	}
	if codes[0] != http.StatusNoContent || codes[1] != http.StatusTooManyRequests {
		t.Fatalf("codes %v, want [204 429]", codes)
	}
	if ra := last.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (1 token at 0.5/s)", ra)
	}
	if !strings.Contains(last.Body.String(), "try again") {
		t.Errorf("429 body %q says nothing useful", last.Body.String())
	}
}

func TestRouteAllow(t *testing.T) {
	l, err := New(Config{ClientRate: 1, ClientBurst: 1})
	if err != nil {
		t.Fatal(err)
	}
	var scim interface {
		Allow(*http.Request, string) (bool, time.Duration)
	} = l.Route("scim")
	if ok, _ := scim.Allow(req("1.1.1.1:1"), "acme"); !ok {
		t.Fatal("first refused")
	}
	if ok, retry := scim.Allow(req("1.1.1.1:1"), "acme"); ok || retry <= 0 {
		t.Fatalf("second: %v %v, want refused with a retry time", ok, retry)
	}
	if ok, _ := l.Route("setup").Allow(req("1.1.1.1:1"), "acme"); !ok {
		t.Fatal("another route shares the scim bucket")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{ClientRate: 1}); err == nil {
		t.Error("a rate without a burst was accepted")
	}
	if _, err := New(Config{ClientRate: -1, ClientBurst: 1}); err == nil {
		t.Error("a negative rate was accepted")
	}
}

func TestGate(t *testing.T) {
	g := NewGate(1, 1000, 50*time.Millisecond)
	post := func(n int64) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/acs", strings.NewReader(strings.Repeat("x", int(n))))
		return r
	}
	rel, ok := g.Admit(t.Context(), post(600), 800)
	if !ok {
		t.Fatal("first request refused")
	}
	// The slot is taken: a second waits, then is refused.
	if _, ok := g.Admit(t.Context(), post(10), 800); ok {
		t.Fatal("a second request admitted while the only slot is held")
	}
	rel()
	// Bytes: 600 + 600 > 1000 even with free slots.
	g2 := NewGate(10, 1000, 50*time.Millisecond)
	rel1, ok := g2.Admit(t.Context(), post(600), 800)
	if !ok {
		t.Fatal("first refused")
	}
	if _, ok := g2.Admit(t.Context(), post(600), 800); ok {
		t.Fatal("byte budget exceeded")
	}
	undeclared := post(10)
	undeclared.ContentLength = -1
	if _, ok := g2.Admit(t.Context(), undeclared, 800); ok {
		t.Fatal("an undeclared body is weighed at the route bound (800), which no longer fits")
	}
	rel1()
	h := g.Middleware(800, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	hold, _ := g.Admit(t.Context(), post(1), 800)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, post(1))
	hold()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("busy gate: %d %v", rec.Code, rec.Header())
	}
}
