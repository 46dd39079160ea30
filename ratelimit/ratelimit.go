// Package ratelimit keeps one client, or one connection's worth of
// clients, from flooding the unauthenticated HTTP routes (SAML login, ACS
// and SLO; the setup portal and SCIM alike).
//
// Guarantees:
//   - Token buckets (golang.org/x/time/rate) per route and client address,
//     and per route and connection id; a request passes only when both
//     have a token. A refused request is told when to retry (429 and
//     Retry-After from Middleware).
//   - The client address is the TCP peer, or, when the peer is one of
//     TrustedProxies, the right-most X-Forwarded-For hop that is not a
//     trusted proxy (a client cannot forge its way past the proxy it
//     reached us through). IPv6 clients are keyed by their /64, since one
//     host commonly holds a whole /64.
//   - Memory is bounded: at most MaxKeys buckets; a bucket idle long enough
//     to have refilled is indistinguishable from a new one and is evicted;
//     when the table is full of live buckets, new keys share one overflow
//     bucket per scope (they are limited together rather than not at all).
//
// The caller chooses the route names (keep them few: they are metric
// labels) and how to find a request's connection id.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Config sets the limits. Rates are requests per second; a zero rate
// turns that scope's limit off.
type Config struct {
	ClientRate      float64
	ClientBurst     int
	ConnectionRate  float64
	ConnectionBurst int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// MaxKeys bounds the buckets held; default 100,000 (~20 MB).
	MaxKeys int
	// Registerer, when set, gets ssogate_rate_limited_total{route,scope}.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Scopes a refusal is counted under.
const (
	ScopeClient     = "client"
	ScopeConnection = "connection"
)

// Limiter decides whether a request may proceed. Safe for concurrent use.
type Limiter struct {
	cfg     Config
	now     func() time.Time
	limited *prometheus.CounterVec

	mu        sync.Mutex
	buckets   map[string]*bucket
	overflow  map[string]*rate.Limiter // per scope
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// New validates cfg and builds a Limiter.
func New(cfg Config) (*Limiter, error) {
	if cfg.ClientRate < 0 || cfg.ConnectionRate < 0 || math.IsNaN(cfg.ClientRate) || math.IsNaN(cfg.ConnectionRate) {
		return nil, errors.New("ratelimit: rates must not be negative")
	}
	if cfg.ClientRate > 0 && cfg.ClientBurst < 1 || cfg.ConnectionRate > 0 && cfg.ConnectionBurst < 1 {
		return nil, errors.New("ratelimit: a limited scope needs a burst of at least 1")
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	l := &Limiter{cfg: cfg, now: cfg.Now, buckets: map[string]*bucket{}, overflow: map[string]*rate.Limiter{}}
	if l.now == nil {
		l.now = time.Now
	}
	l.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_rate_limited_total",
		Help: "Requests refused by a rate limit, by route and scope (client or connection).",
	}, []string{"route", "scope"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(l.limited); err != nil {
			return nil, fmt.Errorf("ratelimit: register metric: %w", err)
		}
	}
	return l, nil
}

// Decision is the verdict on one request.
type Decision struct {
	OK bool
	// RetryAfter is when a token will be there again (refusals only).
	RetryAfter time.Duration
	// Scope is the limit that refused: ScopeClient or ScopeConnection.
	Scope string
}

// Route is the limit of one named route. Its Allow is the small interface
// a package with its own routes declares (setup portal, SCIM):
//
//	type limiter interface {
//		Allow(r *http.Request, connectionID string) (ok bool, retryAfter time.Duration)
//	}
type Route struct {
	l    *Limiter
	name string
}

// Route returns the limit of the route called name (a metric label: keep
// names few and fixed, e.g. "setup", "scim").
func (l *Limiter) Route(name string) Route { return Route{l: l, name: name} }

// Allow reports whether r may proceed for connectionID ("" when the route
// has none), and if not, when to retry; answer a refusal with
// TooManyRequests. The refusal is counted in the metric.
func (rt Route) Allow(r *http.Request, connectionID string) (ok bool, retryAfter time.Duration) {
	d := rt.l.Check(r, rt.name, connectionID)
	return d.OK, d.RetryAfter
}

// Check is Allow with the route named (buckets and metrics are per route)
// and the refusing scope reported. The refusal is counted in the metric.
func (l *Limiter) Check(r *http.Request, route, connectionID string) Decision {
	now := l.now()
	if l.cfg.ClientRate > 0 {
		key := ClientKey(ClientAddr(r, l.cfg.TrustedProxies))
		if d := l.take(ScopeClient, route+"|c|"+key, l.cfg.ClientRate, l.cfg.ClientBurst, now); !d.OK {
			l.limited.WithLabelValues(route, ScopeClient).Inc()
			return d
		}
	}
	if l.cfg.ConnectionRate > 0 && connectionID != "" {
		if d := l.take(ScopeConnection, route+"|k|"+connectionID, l.cfg.ConnectionRate, l.cfg.ConnectionBurst, now); !d.OK {
			l.limited.WithLabelValues(route, ScopeConnection).Inc()
			return d
		}
	}
	return Decision{OK: true}
}

func (l *Limiter) take(scope, key string, r float64, burst int, now time.Time) Decision {
	l.mu.Lock()
	lim := l.bucketLocked(scope, key, r, burst, now)
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return Decision{RetryAfter: time.Second, Scope: scope}
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return Decision{RetryAfter: d, Scope: scope}
	}
	return Decision{OK: true}
}

// bucketLocked finds or makes key's bucket, keeping the table bounded.
func (l *Limiter) bucketLocked(scope, key string, r float64, burst int, now time.Time) *rate.Limiter {
	if b, ok := l.buckets[key]; ok {
		b.last = now
		return b.lim
	}
	if len(l.buckets) >= l.cfg.MaxKeys && now.Sub(l.lastSweep) >= time.Second {
		l.sweepLocked(now)
	}
	if len(l.buckets) >= l.cfg.MaxKeys {
		o, ok := l.overflow[scope]
		if !ok {
			o = rate.NewLimiter(rate.Limit(r), burst)
			l.overflow[scope] = o
		}
		return o
	}
	b := &bucket{lim: rate.NewLimiter(rate.Limit(r), burst), last: now}
	l.buckets[key] = b
	return b.lim
}

// sweepLocked drops buckets idle long enough to have refilled to burst:
// a fresh bucket would decide the same.
func (l *Limiter) sweepLocked(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(l.buckets, k)
		}
	}
}

// Sweep evicts refilled buckets now; a server calls it periodically so idle
// keys do not linger until the table fills.
func (l *Limiter) Sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(l.now())
}

// Len is the number of buckets held (tests, metrics).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Middleware wraps next with the limit for route: a refused request gets
// 429 Too Many Requests with Retry-After (whole seconds, at least 1) and a
// plain message. connectionID extracts the connection id (nil: none).
func (l *Limiter) Middleware(route string, connectionID func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if connectionID != nil {
			id = connectionID(r)
		}
		d := l.Check(r, route, id)
		if !d.OK {
			TooManyRequests(w, d.RetryAfter)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TooManyRequests writes the 429 answer.
func TooManyRequests(w http.ResponseWriter, retryAfter time.Duration) {
	secs := int(math.Ceil(retryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = fmt.Fprintf(w, "Too many requests from your network. Please wait %d seconds and try again.\n", secs)
}

// ClientAddr is the address of the client behind r: the TCP peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For entry that is
// not a trusted proxy. An unparsable peer yields the zero Addr.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	var list []string
	for _, h := range hops {
		list = append(list, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(list) - 1; i >= 0; i-- {
		ip := parseHostAddr(strings.TrimSpace(list[i]))
		if !ip.IsValid() {
			break // garbage: trust nothing to its left
		}
		client = ip
		if !isTrusted(ip, trusted) {
			break
		}
	}
	return client
}

func parseHostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientKey is the bucket key of a client address: IPv4 as is, IPv6 by
// its /64.
func ClientKey(ip netip.Addr) string {
	if !ip.IsValid() {
		return "unknown"
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
