package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// splitMethod turns "/pkg.Service/Method" into its two parts.
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	service, method, _ = strings.Cut(full, "/")
	return service, method
}

// incomingRequestID takes the caller's x-request-id (the REST gateway sets
// it) when it is plain, or makes one.
func incomingRequestID(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 {
		if id := acceptRequestID(v[0]); id != "" {
			return id
		}
	}
	return newRequestID()
}

// count records a call in the metrics.
func (s *Server) count(fullMethod string, start time.Time, err error) (service, method string, code codes.Code, elapsed time.Duration) {
	service, method = splitMethod(fullMethod)
	code = status.Code(err)
	elapsed = time.Since(start)
	s.metrics.grpcHandled.WithLabelValues(service, method, code.String()).Inc()
	s.metrics.grpcDuration.WithLabelValues(service, method).Observe(elapsed.Seconds())
	return service, method, code, elapsed
}

// observe records a call in the metrics and logs its line.
func (s *Server) observe(ctx context.Context, fullMethod string, start time.Time, err error) {
	service, method, code, elapsed := s.count(fullMethod, start, err)
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelError
	}
	s.log.LogAttrs(ctx, level, "grpc request", append([]slog.Attr{
		slog.String("request_id", requestID(ctx)),
		slog.String("service", service),
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Float64("duration", elapsed.Seconds()),
	}, append(callerAttrs(ctx), noteAttrs(ctx)...)...)...)
}

// callerAttrs names the API key that authenticated the call (its name,
// never the key).
func callerAttrs(ctx context.Context) []slog.Attr {
	if name := caller(ctx); name != "" {
		return []slog.Attr{slog.String("api_key", name)}
	}
	return nil
}

// recoverPanic turns a handler panic into INTERNAL instead of a crash, and
// logs the stack (stacks hold no request data).
func (s *Server) recoverPanic(ctx context.Context, err *error) {
	if p := recover(); p != nil {
		s.log.ErrorContext(ctx, "panic in handler", "request_id", requestID(ctx), "panic", p, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx = withRequestID(s.callerTrace(ctx), incomingRequestID(ctx))
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", requestID(ctx)))
	defer func() {
		// A token found valid is the hot path (a backend may ask on every
		// request it serves): counted in the metrics, not logged line by
		// line. Refusals and every other call keep their line.
		if v, ok := resp.(*ssogatev1.ValidateTokenResponse); ok && err == nil && v.GetValid() {
			s.count(info.FullMethod, start, err)
			return
		}
		s.observe(ctx, info.FullMethod, start, err)
	}()
	defer func() { err = withErrorInfo(err) }()
	defer s.recoverPanic(ctx, &err)
	authed, err := s.auth.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	ctx = authed // the log line names the caller
	resp, err = handler(ctx, req)
	return resp, s.storeFailure(ctx, err)
}

// wrappedStream carries the request id into stream handlers.
type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w wrappedStream) Context() context.Context { return w.ctx }

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx := withRequestID(s.callerTrace(ss.Context()), incomingRequestID(ss.Context()))
	defer func() { s.observe(ctx, info.FullMethod, start, err) }()
	defer func() { err = withErrorInfo(err) }()
	defer s.recoverPanic(ctx, &err)
	authed, err := s.auth.authorize(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	ctx = authed
	return s.storeFailure(ctx, handler(srv, wrappedStream{ServerStream: ss, ctx: ctx}))
}
