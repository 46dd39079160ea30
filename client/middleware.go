package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// bearerToken takes the token from an "Authorization: Bearer …" value.
func bearerToken(header string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// HTTPMiddleware lets a request through to next only with a valid access
// token in its Authorization header, and puts the Identity in its context.
// A refusal is 401 with an RFC 6750 challenge whose error_description names
// the failed check (503 when ssogate could not be reached).
func (v *Verifier) HTTPMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := v.Verify(r.Context(), bearerToken(r.Header.Get("Authorization")))
		if err != nil {
			writeRefusal(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

func writeRefusal(w http.ResponseWriter, err error) {
	code, challenge, body := http.StatusUnauthorized, `Bearer realm="ssogate"`, map[string]string{}
	switch {
	case errors.Is(err, ErrMissing):
		// RFC 6750 3.1: no error code when the request had no token.
		body["error"], body["error_description"] = "missing_token", "send the access token as Authorization: Bearer <token>"
	case errors.Is(err, ErrInvalid):
		desc := sanitize(err.Error())
		challenge += fmt.Sprintf(`, error="invalid_token", error_description=%q`, desc)
		body["error"], body["error_description"] = "invalid_token", desc
	default:
		code = http.StatusServiceUnavailable
		challenge = ""
		body["error"], body["error_description"] = "temporarily_unavailable", sanitize(err.Error())
	}
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, code, body)
}

// forbid answers 403 with RFC 6750's insufficient_scope.
func forbid(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="ssogate", error="insufficient_scope", error_description=%q`, desc))
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// sanitize keeps a header value to printable ASCII without quotes.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}

// RequireRole wraps next (behind HTTPMiddleware) so that only identities
// holding role reach it; others get 403.
func RequireRole(role string) func(http.Handler) http.Handler {
	return require(func(id *Identity) error {
		if !id.HasRole(role) {
			return fmt.Errorf("role %q required; the token has %q", role, id.Roles)
		}
		return nil
	})
}

// RequireTenant wraps next (behind HTTPMiddleware) so that only identities
// of tenant reach it; others get 403.
func RequireTenant(tenant string) func(http.Handler) http.Handler {
	return require(func(id *Identity) error {
		if id.TenantID != tenant {
			return fmt.Errorf("tenant %q required; the token is for %q", tenant, id.TenantID)
		}
		return nil
	})
}

func require(check func(*Identity) error) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := IdentityFrom(r.Context())
			if !ok {
				writeRefusal(w, ErrMissing)
				return
			}
			if err := check(id); err != nil {
				forbid(w, sanitize(err.Error()))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// grpcIdentity verifies the call's authorization metadata.
func (v *Verifier) grpcIdentity(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var raw string
	if vals := md.Get("authorization"); len(vals) == 1 {
		raw = bearerToken(vals[0])
	}
	id, err := v.Verify(ctx, raw)
	switch {
	case err == nil:
		return WithIdentity(ctx, id), nil
	case errors.Is(err, ErrInvalid):
		return nil, status.Error(codes.Unauthenticated, err.Error())
	default:
		return nil, status.Error(codes.Unavailable, err.Error())
	}
}

// UnaryServerInterceptor refuses calls without a valid access token in
// their authorization metadata (UNAUTHENTICATED, naming the check) and
// puts the Identity in the handler's context.
func (v *Verifier) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.grpcIdentity(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func (v *Verifier) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := v.grpcIdentity(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }
