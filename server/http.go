package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/portal"
	"github.com/ssogate/ssogate/ratelimit"
	"github.com/ssogate/ssogate/scim"
)

const requestIDHeader = "X-Request-Id"

type ctxKey int

const requestIDKey ctxKey = iota

// requestID returns the id of the request being served, or "".
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(context.WithValue(ctx, requestIDKey, id), requestNoteKey, &requestNote{})
}

// requestNote carries what a handler wants on its request's one log line:
// the rejection reason of a refused login. Set with noteReason.
type requestNote struct {
	mu     sync.Mutex
	reason string
}

const requestNoteKey ctxKey = requestIDKey + 1

func noteReason(ctx context.Context, reason string) {
	if n, ok := ctx.Value(requestNoteKey).(*requestNote); ok {
		n.mu.Lock()
		n.reason = reason
		n.mu.Unlock()
	}
}

// noteAttrs renders the note for the log line.
func noteAttrs(ctx context.Context) []slog.Attr {
	n, ok := ctx.Value(requestNoteKey).(*requestNote)
	if !ok {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.reason == "" {
		return nil
	}
	return []slog.Attr{slog.String("reason", n.reason)}
}

// newRequestID returns 128 random bits in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// acceptRequestID keeps a caller's request id only when it is short and
// plain, so that it cannot forge log lines.
func acceptRequestID(v string) string {
	if v == "" || len(v) > 64 {
		return ""
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return ""
		}
	}
	return v
}

// httpHandlers builds the HTTP routers: the public one (browser and IdP
// routes, liveness and readiness) and, when operator_addr is set, the
// operator one (/metrics, the REST gateway under /v1/, detailed readiness,
// gRPC reflection). Without operator_addr, the public router carries
// everything and operator is nil.
func (s *Server) httpHandlers(ctx context.Context) (public, operator http.Handler, err error) {
	gw := runtime.NewServeMux(
		runtime.WithErrorHandler(restError),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			// Default values (false, 0, "") are always written: a client
			// reading valid=false must find it, not an absent field.
			MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithMetadata(func(ctx context.Context, r *http.Request) metadata.MD {
			return metadata.Pairs("x-request-id", requestID(r.Context()))
		}),
	)
	conn, err := grpc.NewClient("passthrough:///ssogate-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.gatewayLis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()), s.grpcClientStatsOption())
	if err != nil {
		return nil, nil, fmt.Errorf("REST gateway connection: %w", err)
	}
	go func() { <-ctx.Done(); conn.Close() }()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		ssogatev1.RegisterLoginServiceHandler,
		ssogatev1.RegisterConnectionServiceHandler,
		ssogatev1.RegisterKeyServiceHandler,
		ssogatev1.RegisterAuditServiceHandler,
		ssogatev1.RegisterEventServiceHandler,
		ssogatev1.RegisterDirectoryServiceHandler,
	} {
		if err := register(ctx, gw, conn); err != nil {
			return nil, nil, fmt.Errorf("register REST gateway: %w", err)
		}
	}

	split := s.cfg.OperatorAddr != ""
	mux := http.NewServeMux()
	ops := mux
	if split {
		ops = http.NewServeMux()
		ops.HandleFunc("GET /healthz", s.handleHealthz)
		ops.HandleFunc("GET /readyz", s.readinessDetail)
	}
	ops.Handle("/v1/", s.restGuard(gw))
	ops.HandleFunc("GET /v1/openapi.json", s.handleOpenAPI)
	ops.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	s.browserRoutes(mux)
	mux.Handle(scim.Prefix, s.scim)
	if err := s.discoveryRoutes(mux); err != nil {
		return nil, nil, err
	}
	for _, register := range s.extraRoutes {
		register(mux)
	}
	public = s.traced(s.middleware(s.newPublicRouter(mux)))
	if !split {
		return public, nil, nil
	}
	return public, s.operatorHandler(s.traced(s.middleware(ops))), nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

// handleReadyz answers readiness on the public listener: only "not ready".
// Which check fails, and the store driver's words, go to the log and to
// readinessDetail (the operator listener's /readyz).
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.log.WarnContext(r.Context(), "not ready", "error", err)
		writeText(w, http.StatusServiceUnavailable, "not ready\n")
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

// operatorHandler serves gRPC reflection (HTTP/2 requests of content type
// application/grpc) beside the operator routes: reflection describes the
// whole API, so it leaves the public gRPC listener when operator_addr is
// set.
func (s *Server) operatorHandler(routes http.Handler) http.Handler {
	refl := grpc.NewServer()
	reflectionpb.RegisterServerReflectionServer(refl, reflection.NewServerV1(reflection.ServerOptions{Services: s.grpc}))
	s.operatorGRPC = refl
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			refl.ServeHTTP(w, r)
			return
		}
		routes.ServeHTTP(w, r)
	})
}

// traced wraps h in otelhttp outside the middleware, so the request's span
// is in the context the handlers and the log line see. With tracing off it
// only takes the caller's W3C trace context from the headers (log lines
// carry its trace_id), without otelhttp's per-request no-op span, wrapped
// body and metrics.
func (s *Server) traced(h http.Handler) http.Handler {
	if !s.tracing.Enabled {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(s.tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))))
		})
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(s.tracing.Provider), otelhttp.WithPropagators(s.tracing.Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool {
			return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics"
		}))
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// middleware gives every request an id, logs one line for it and counts
// it. The route label is the matched pattern, never the raw path, so that
// metrics stay bounded and paths with ids are not logged verbatim twice.
func (s *Server) middleware(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := acceptRequestID(r.Header.Get(requestIDHeader))
		if id == "" {
			id = newRequestID()
		}
		w.Header().Set(requestIDHeader, id)
		r = r.WithContext(withClientAddr(withRequestID(r.Context(), id), ratelimit.ClientAddr(r, s.trusted)))
		rec := &statusRecorder{ResponseWriter: w}
		mux.ServeHTTP(rec, r)
		// ServeHTTP records the matched pattern on r: no second lookup.
		pattern := r.Pattern
		if pattern == "" {
			pattern = "unmatched"
		}
		path := r.URL.Path
		if pattern == portal.OpenPattern {
			path = portal.Prefix + "[setup link secret]" // never logged
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			span.SetName(pattern) // "POST /saml/{connection_id}/acs": bounded, no ids
			span.SetAttributes(attribute.String("http.route", pattern))
		}
		elapsed := time.Since(start)
		s.metrics.httpHandled.WithLabelValues(pattern, r.Method, strconv.Itoa(rec.status)).Inc()
		s.metrics.httpDuration.WithLabelValues(pattern).Observe(elapsed.Seconds())
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", append([]slog.Attr{
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("route", pattern),
			slog.String("path", path),
			slog.Int("status", rec.status),
			slog.Float64("duration", elapsed.Seconds()),
			slog.String("remote", r.RemoteAddr),
			slog.String("client", clientAddr(r.Context()).String()),
		}, noteAttrs(r.Context())...)...)
	})
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
