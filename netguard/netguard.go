// Package netguard makes the outbound HTTP requests ssogate sends to
// addresses someone else chose (IdP metadata URLs today; setup-portal
// metadata URLs, SCIM and webhook targets alike): a server-side request
// forgery is refused however it is attempted.
//
// Guarantees, unless Options.AllowPrivate is set:
//   - Every address dialled is checked at connect time, in net.Dialer's
//     Control hook, on the address the socket is about to connect to. A
//     host name that resolves to a private address, a DNS answer that
//     changes between check and use (rebinding) and a redirect to an
//     internal host are all refused the same way, because nothing but the
//     final address is trusted.
//   - Refused: loopback, link-local (169.254.0.0/16 including the cloud
//     metadata address 169.254.169.254, fe80::/10), private (10/8,
//     172.16/12, 192.168/16), shared CGNAT space (100.64/10), unique-local
//     fc00::/7, multicast, unspecified, the other IANA special-purpose
//     blocks, and IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 forms
//     of any of those.
//   - Only https: plain http (also on a redirect) is refused.
//
// Errors are generic on purpose: an *Error says "HTTP status 404",
// "connection or TLS failure", "address not allowed", "timeout" or
// "response too large", never the body, its root element, or whether a
// port was open or closed. The underlying cause stays reachable through
// errors.Unwrap for the operator's log.
//
// The caller still owns what to fetch, the size it accepts (see Fetch) and
// what the body means.
package netguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Options shape a guarded client or dialer. The zero value is the safe
// production setting.
type Options struct {
	// AllowPrivate admits every address class and plain http. Only for
	// development (`ssogate dev`) or an operator's explicit
	// allow_private_fetch setting.
	AllowPrivate bool
	// Timeout bounds a whole request, redirects and body included; default
	// 15s.
	Timeout time.Duration
	// MaxRedirects bounds redirects followed; default 5.
	MaxRedirects int
	// Resolver looks host names up; default net.DefaultResolver. Tests
	// give one that answers what they choose.
	Resolver Resolver
	// TLSConfig is used for https (tests give one trusting their CA).
	TLSConfig *tls.Config

	// allow replaces the address check (tests: admit one loopback port to
	// stand for a public server).
	allow func(netip.AddrPort) bool
}

// Resolver is the part of *net.Resolver netguard needs.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DefaultTimeout bounds a request when Options.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// ErrAddressNotAllowed is what dialling a refused address returns.
var ErrAddressNotAllowed = errors.New("address not allowed")

var (
	errPlainHTTP = errors.New("plain http is not allowed")
	errRedirects = errors.New("too many redirects")
)

// Allowed reports whether ip is a public unicast address an outbound fetch
// may reach.
func Allowed(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return false
	}
	if ip.Is4In6() {
		return Allowed(ip.Unmap())
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case isZero(b[:12]): // IPv4-compatible ::a.b.c.d (deprecated), and :: / ::1
			if ip.IsUnspecified() || ip.IsLoopback() {
				return false
			}
			return Allowed(netip.AddrFrom4([4]byte(b[12:])))
		case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b: // 64:ff9b::/96 NAT64 (and /48 local use)
			return Allowed(netip.AddrFrom4([4]byte(b[12:])))
		case b[0] == 0x20 && b[1] == 0x02: // 2002::/16 6to4 embeds an IPv4 address
			return Allowed(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range specialPurpose {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// specialPurpose are blocks that netip's predicates do not name but no
// public service lives in (IANA special-purpose registries).
var specialPurpose = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",          // "this network"
		"100.64.0.0/10",      // shared address space (CGNAT)
		"192.0.0.0/24",       // IETF protocol assignments
		"192.0.2.0/24",       // TEST-NET-1
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // TEST-NET-2
		"203.0.113.0/24",     // TEST-NET-3
		"240.0.0.0/4",        // reserved, and 255.255.255.255 broadcast
		"fc00::/7",           // unique-local (IsPrivate covers it too)
		"fec0::/10",          // site-local (deprecated)
		"100::/64",           // discard-only
		"2001::/23",          // IETF protocol assignments (Teredo, ORCHID, …)
		"2001:db8::/32",      // documentation
		"::ffff:0:0:0/96",    // IPv4-translated
		"64:ff9b:1::/48",     // local-use NAT64
		"ff00::/8",           // multicast (IsMulticast covers it too)
		"169.254.169.254/32", // cloud metadata (link-local; named for the reader)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// control returns a Control hook refusing a socket about to connect to an
// address allow refuses.
func control(allow func(netip.AddrPort) bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %q is not an IP address and port", ErrAddressNotAllowed, address)
		}
		if !allow(ap) {
			return fmt.Errorf("%w: %s", ErrAddressNotAllowed, ap.Addr())
		}
		return nil
	}
}

// Dialer returns a dialer whose connections reach allowed addresses only
// (any address with AllowPrivate). Its DialContext resolves names itself
// (with Options.Resolver) and its Control hook checks the address actually
// dialled, so it is safe for an http.Transport's DialContext.
func Dialer(o Options) *GuardedDialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !o.AllowPrivate {
		allow := o.allow
		if allow == nil {
			allow = func(ap netip.AddrPort) bool { return Allowed(ap.Addr()) }
		}
		d.Control = control(allow)
	}
	return &GuardedDialer{dialer: d, resolver: o.Resolver}
}

// GuardedDialer dials with the address check of Dialer.
type GuardedDialer struct {
	dialer   *net.Dialer
	resolver Resolver
}

// DialContext connects to addr ("host:port"), trying each resolved address
// in turn; every one passes the connect-time check.
func (g *GuardedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		r := g.resolver
		if r == nil {
			r = net.DefaultResolver
		}
		lookup := "ip"
		switch network {
		case "tcp4":
			lookup = "ip4"
		case "tcp6":
			lookup = "ip6"
		}
		if ips, err = r.LookupNetIP(ctx, lookup, host); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, ip := range ips {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no address for %s", host)
	}
	return nil, errors.Join(errs...)
}

// guardedTransport refuses plain http before any dial.
type guardedTransport struct {
	next         http.RoundTripper
	allowPrivate bool
}

func (t guardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !(t.allowPrivate && r.URL.Scheme == "http") {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%w: %s", errPlainHTTP, r.URL.Scheme)
	}
	return t.next.RoundTrip(r)
}

// NewClient returns the one kind of *http.Client for outbound fetches: the
// guarded dialer, https only (unless AllowPrivate), bounded redirects, a
// whole-request timeout, no proxy from the environment (a proxy would dial
// on our behalf, past the check), no cookies.
func NewClient(o Options) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxRedirects := o.MaxRedirects
	if maxRedirects <= 0 {
		maxRedirects = 5
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           Dialer(o).DialContext,
		TLSClientConfig:       o.TLSConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport: guardedTransport{next: tr, allowPrivate: o.AllowPrivate},
		Timeout:   timeout,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("%w: stopped after %d", errRedirects, maxRedirects)
			}
			return nil
		},
	}
}

// Error is a failed fetch, told in words safe to show whoever chose the
// URL. Problem is one of the fixed phrases below; Status is the HTTP
// status when the server answered.
type Error struct {
	Problem string
	Status  int
	cause   error
}

// The phrases an Error's Problem may hold (besides "HTTP status N").
const (
	ProblemNotAllowed = "address not allowed"
	ProblemTimeout    = "timeout"
	ProblemConnect    = "connection or TLS failure"
	ProblemPlainHTTP  = "https required"
	ProblemRedirects  = "too many redirects"
	ProblemTooLarge   = "response too large"
)

func (e *Error) Error() string { return e.Problem }

// Unwrap returns the detailed cause, for the operator's log only.
func (e *Error) Unwrap() error { return e.cause }

// Classify turns an error of a NewClient client's Do (or of reading its
// answer) into an *Error, for callers that send their own requests
// (webhook POSTs, SCIM) and must not pass the cause on. Dial failures (refused,
// reset, unreachable) and TLS failures read the same, so open and closed
// ports cannot be told apart.
func Classify(err error) *Error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrAddressNotAllowed):
		return &Error{Problem: ProblemNotAllowed, cause: err}
	case errors.Is(err, errPlainHTTP):
		return &Error{Problem: ProblemPlainHTTP, cause: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Problem: ProblemTimeout, cause: err}
	}
	if errors.Is(err, errRedirects) {
		return &Error{Problem: ProblemRedirects, cause: err}
	}
	return &Error{Problem: ProblemConnect, cause: err}
}

// Fetch GETs url with c (a NewClient client) and returns the body of a 200
// answer, at most maxBytes of it. Every failure is an *Error.
func Fetch(ctx context.Context, c *http.Client, rawURL, accept string, maxBytes int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, &Error{Problem: "not a valid URL", cause: err}
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, Classify(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, &Error{Problem: fmt.Sprintf("HTTP status %d", resp.StatusCode), Status: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, Classify(err)
	}
	if int64(len(body)) > maxBytes {
		return nil, &Error{Problem: fmt.Sprintf("%s (more than %d bytes)", ProblemTooLarge, maxBytes)}
	}
	return body, nil
}
