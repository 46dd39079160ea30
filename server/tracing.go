package server

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/telemetry"
)

// Tracing: HTTP (otelhttp) and gRPC (otelgrpc) server spans, a span per
// store call on the login path, and one around SAML validation. Span
// attributes name connections, outcomes and refusal reasons, never values
// that grant anything: no codes, tokens, assertions, hashes or keys.

const tracerName = "github.com/ssogate/ssogate/server"

// WithTracing sends the server's spans to t (default: tracing off).
func WithTracing(t *telemetry.Tracing) Option { return func(s *Server) { s.tracing = t } }

func (s *Server) tracer() trace.Tracer { return s.tracing.Provider.Tracer(tracerName) }

// grpcTracingOptions gives the gRPC server otelgrpc's stats handler (a
// span per call) when spans are exported. With tracing off there is no
// stats handler: making no-op spans cost a fifth of a cached
// ValidateToken's server CPU (the handler copies the call's metadata and
// allocates per call). The interceptors take the caller's trace context
// instead (callerTrace), so log lines still carry the caller's trace_id.
func (s *Server) grpcTracingOptions() []grpc.ServerOption {
	if !s.tracing.Enabled {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(s.tracing.Provider), otelgrpc.WithPropagators(s.tracing.Propagator)))}
}

// callerTrace puts the caller's W3C trace context (traceparent,
// tracestate, baggage) into ctx when tracing is off; with tracing on,
// otelgrpc has already made the call's span from it.
func (s *Server) callerTrace(ctx context.Context) context.Context {
	if s.tracing.Enabled || len(metadata.ValueFromIncomingContext(ctx, "traceparent")) == 0 {
		return ctx // no trace context to take (baggage alone names no trace)
	}
	return s.tracing.Propagator.Extract(ctx, incomingCarrier{ctx})
}

// incomingCarrier reads a propagator's keys from a call's incoming
// metadata without copying all of it (metadata.FromIncomingContext does).
type incomingCarrier struct{ ctx context.Context }

func (c incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (incomingCarrier) Set(string, string) {}

func (incomingCarrier) Keys() []string { return nil }

func (s *Server) grpcClientStatsOption() grpc.DialOption {
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(s.tracing.Provider), otelgrpc.WithPropagators(s.tracing.Propagator)))
}

// validateSpan wraps SAML response validation; the refusal reason (not its
// message, which quotes the response) becomes an attribute.
func (s *Server) validateSpan(ctx context.Context, connectionID string) (context.Context, func(error)) {
	ctx, span := s.tracer().Start(ctx, "saml.ValidateResponse", trace.WithAttributes(attribute.String("ssogate.connection_id", connectionID)))
	return ctx, func(err error) {
		if err != nil {
			reason := saml.ReasonInternal
			var se *saml.Error
			if errors.As(err, &se) {
				reason = se.Reason
			}
			span.SetAttributes(attribute.String("ssogate.reason", string(reason)))
			span.SetStatus(otelcodes.Error, string(reason))
		}
		span.End()
	}
}

// tracedStore gives the store calls of the login path a span each. Other
// methods pass through untraced (embedding), so a store method added later
// needs no change here.
type tracedStore struct {
	store.Store
	tracer trace.Tracer
}

// baseStore unwraps the server's store wrappers (invalidatingStore,
// tracedStore), for optional interfaces of the backend.
func baseStore(st store.Store) store.Store {
	if i, ok := st.(invalidatingStore); ok {
		st = i.Store
	}
	if t, ok := st.(tracedStore); ok {
		return t.Store
	}
	return st
}

func (t tracedStore) span(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, "store."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			outcome := storeOutcome(err)
			span.SetAttributes(attribute.String("ssogate.store.outcome", outcome))
			if outcome == "error" {
				span.SetStatus(otelcodes.Error, "store error")
			}
		}
		span.End()
	}
}

// storeOutcome names an expected store refusal, or "error".
func storeOutcome(err error) string {
	for _, o := range []struct {
		err  error
		name string
	}{
		{store.ErrNotFound, "not_found"}, {store.ErrConflict, "conflict"}, {store.ErrConsumed, "consumed"},
		{store.ErrExpired, "expired"}, {store.ErrReused, "reused"}, {store.ErrRevoked, "revoked"},
	} {
		if errors.Is(err, o.err) {
			return o.name
		}
	}
	return "error"
}

func connAttr(id string) attribute.KeyValue { return attribute.String("ssogate.connection_id", id) }

func (t tracedStore) GetConnection(ctx context.Context, id string) (c store.Connection, err error) {
	ctx, end := t.span(ctx, "GetConnection", connAttr(id))
	defer func() { end(err) }()
	return t.Store.GetConnection(ctx, id)
}

func (t tracedStore) ConnectionByDomain(ctx context.Context, domain string) (c store.Connection, err error) {
	ctx, end := t.span(ctx, "ConnectionByDomain")
	defer func() { end(err) }()
	return t.Store.ConnectionByDomain(ctx, domain)
}

func (t tracedStore) PutPendingRequest(ctx context.Context, r store.PendingRequest) (err error) {
	ctx, end := t.span(ctx, "PutPendingRequest", connAttr(r.ConnectionID))
	defer func() { end(err) }()
	return t.Store.PutPendingRequest(ctx, r)
}

func (t tracedStore) GetPendingRequest(ctx context.Context, connectionID, id string) (r store.PendingRequest, err error) {
	ctx, end := t.span(ctx, "GetPendingRequest", connAttr(connectionID))
	defer func() { end(err) }()
	return t.Store.GetPendingRequest(ctx, connectionID, id)
}

func (t tracedStore) ConsumePendingRequest(ctx context.Context, connectionID, id string, now time.Time) (r store.PendingRequest, err error) {
	ctx, end := t.span(ctx, "ConsumePendingRequest", connAttr(connectionID))
	defer func() { end(err) }()
	return t.Store.ConsumePendingRequest(ctx, connectionID, id, now)
}

func (t tracedStore) RecordAssertion(ctx context.Context, connectionID, assertionID string, expiresAt time.Time) (err error) {
	ctx, end := t.span(ctx, "RecordAssertion", connAttr(connectionID))
	defer func() { end(err) }()
	return t.Store.RecordAssertion(ctx, connectionID, assertionID, expiresAt)
}

func (t tracedStore) PutCode(ctx context.Context, c store.Code) (err error) {
	ctx, end := t.span(ctx, "PutCode", connAttr(c.ConnectionID))
	defer func() { end(err) }()
	return t.Store.PutCode(ctx, c)
}

func (t tracedStore) ConsumeCode(ctx context.Context, hash []byte, now time.Time) (c store.Code, err error) {
	ctx, end := t.span(ctx, "ConsumeCode")
	defer func() { end(err) }()
	return t.Store.ConsumeCode(ctx, hash, now)
}

func (t tracedStore) CreateSession(ctx context.Context, sess store.Session) (err error) {
	ctx, end := t.span(ctx, "CreateSession", connAttr(sess.ConnectionID))
	defer func() { end(err) }()
	return t.Store.CreateSession(ctx, sess)
}

func (t tracedStore) GetSession(ctx context.Context, id string) (sess store.Session, err error) {
	ctx, end := t.span(ctx, "GetSession")
	defer func() { end(err) }()
	return t.Store.GetSession(ctx, id)
}

func (t tracedStore) PutRefreshToken(ctx context.Context, rt store.RefreshToken) (err error) {
	ctx, end := t.span(ctx, "PutRefreshToken")
	defer func() { end(err) }()
	return t.Store.PutRefreshToken(ctx, rt)
}

func (t tracedStore) RotateRefreshToken(ctx context.Context, oldHash []byte, next store.RefreshToken, now time.Time, retryWindow time.Duration) (rot store.Rotation, err error) {
	ctx, end := t.span(ctx, "RotateRefreshToken")
	defer func() { end(err) }()
	return t.Store.RotateRefreshToken(ctx, oldHash, next, now, retryWindow)
}

func (t tracedStore) AppendAudit(ctx context.Context, e store.AuditEvent) (err error) {
	ctx, end := t.span(ctx, "AppendAudit", attribute.String("ssogate.audit.type", e.Type))
	defer func() { end(err) }()
	return t.Store.AppendAudit(ctx, e)
}

func (t tracedStore) CompleteLogin(ctx context.Context, l store.LoginCompletion) (r store.PendingRequest, err error) {
	ctx, end := t.span(ctx, "CompleteLogin", connAttr(l.ConnectionID))
	defer func() { end(err) }()
	return t.Store.CompleteLogin(ctx, l)
}

func (t tracedStore) RedeemCode(ctx context.Context, hash []byte, now time.Time, refresh store.RefreshToken) (r store.Redemption, err error) {
	ctx, end := t.span(ctx, "RedeemCode")
	defer func() { end(err) }()
	return t.Store.RedeemCode(ctx, hash, now, refresh)
}
