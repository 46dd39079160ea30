package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/ratelimit"
)

// Route names of the limited browser routes (metric labels).
const (
	routeLogin = "login"
	routeAuthn = "authn" // the POST-binding AuthnRequest page
	routeACS   = "acs"
	routeSLO   = "slo"
)

// validationWait is how long an ACS or SLO message waits for a
// validation slot before it is refused with 503.
const validationWait = 2 * time.Second

// newEdge builds the rate limiter and the validation gate from the
// configuration.
func (s *Server) newEdge(cfg config.Config) error {
	for _, p := range cfg.TrustedProxies {
		pfx, err := config.ParsePrefix(p)
		if err != nil {
			return err
		}
		s.trusted = append(s.trusted, pfx)
	}
	lim, err := ratelimit.New(ratelimit.Config{
		ClientRate: cfg.RateLimit.ClientRate, ClientBurst: cfg.RateLimit.ClientBurst,
		ConnectionRate: cfg.RateLimit.ConnectionRate, ConnectionBurst: cfg.RateLimit.ConnectionBurst,
		TrustedProxies: s.trusted, Registerer: s.metrics.registry, Now: s.now,
	})
	if err != nil {
		return err
	}
	s.limiter = lim
	slots := cfg.SAML.MaxConcurrentValidations
	if slots == 0 {
		slots = 2 * runtime.GOMAXPROCS(0)
	}
	s.gate = ratelimit.NewGate(slots, int64(cfg.SAML.MaxInflightBytes), validationWait)
	s.refusals = newRefusalLog(s)
	return nil
}

// Limiter is the rate limiter of the browser routes, for other packages'
// unauthenticated routes (setup portal, SCIM) to share: one table, one
// metric.
func (s *Server) Limiter() *ratelimit.Limiter { return s.limiter }

func pathConnection(r *http.Request) string { return r.PathValue("connection_id") }

// limited wraps a browser route in its rate limit.
func (s *Server) limited(route string, h http.HandlerFunc) http.Handler {
	return s.limiter.Middleware(route, pathConnection, h)
}

// validating wraps an ACS or SLO route in its rate limit and the gate that
// bounds concurrent validations and body bytes in flight.
func (s *Server) validating(route string, h http.HandlerFunc) http.Handler {
	maxBody := int64(s.cfg.SAML.MaxBodyBytes) + 4096
	gated := s.gate.Middleware(maxBody, func(*http.Request) {
		s.metrics.overloaded.WithLabelValues(route).Inc()
	}, h)
	return s.limiter.Middleware(route, pathConnection, gated)
}

// clientAddrKey carries the request's client address (after
// trusted_proxies) in its context.
type clientAddrKey struct{}

func withClientAddr(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, ip)
}

// clientAddr is the client address of the HTTP request being served, or
// the zero Addr (gRPC calls).
func clientAddr(ctx context.Context) netip.Addr {
	ip, _ := ctx.Value(clientAddrKey{}).(netip.Addr)
	return ip
}

// restGuard bounds a REST request and checks its API key before a byte of
// the body is read: a caller without a known key costs a header parse.
// The scope is checked later, by the gRPC interceptor, as for any call.
func (s *Server) restGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(presented) == "" {
			writeStatus(w, http.StatusUnauthorized, status.Convert(apiError(codes.Unauthenticated, reasonAPIKeyMissing, `missing API key: send "Authorization: Bearer <key>"`)))
			return
		}
		if !s.auth.known(strings.TrimSpace(presented)) {
			writeStatus(w, http.StatusUnauthorized, status.Convert(apiError(codes.Unauthenticated, reasonAPIKeyUnknown, "unknown API key")))
			return
		}
		limit := int64(s.cfg.MaxRequestBytes)
		if r.ContentLength > limit {
			writeStatus(w, http.StatusRequestEntityTooLarge, status.Convert(apiError(codes.ResourceExhausted, reasonRequestTooLarge, tooLargeMessage(limit))))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeStatus(w, http.StatusRequestEntityTooLarge, status.Convert(apiError(codes.ResourceExhausted, reasonRequestTooLarge, tooLargeMessage(limit))))
				return
			}
			if err != nil {
				writeStatus(w, http.StatusBadRequest, status.Convert(apiError(codes.InvalidArgument, reasonInvalidJSON, "the request body could not be read")))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLargeMessage(limit int64) string {
	return fmt.Sprintf("request body larger than max_request_bytes (%d bytes); send less, or raise the setting", limit)
}
