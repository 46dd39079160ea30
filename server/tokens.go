package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
)

// claimsOf builds the access-token claims of a session's identity.
func claimsOf(ident *ssogatev1.Identity, sessionEnd time.Time) token.Claims {
	c := token.Claims{
		Subject: ident.Subject, SessionID: ident.SessionId, Tenant: ident.TenantId, Connection: ident.ConnectionId,
		Email: ident.Email, Name: ident.Name, GivenName: ident.GivenName, FamilyName: ident.FamilyName,
		Groups: ident.Groups, Roles: ident.Roles, ACR: ident.Acr, ExpiresAt: sessionEnd,
	}
	if ident.AuthTime != nil {
		c.AuthTime = ident.AuthTime.AsTime()
	}
	for name, v := range ident.Claims {
		if c.Extra == nil {
			c.Extra = map[string]any{}
		}
		if len(v.Values) == 1 {
			c.Extra[name] = v.Values[0]
		} else {
			c.Extra[name] = v.Values
		}
	}
	return c
}

// issueTokens mints an access token and a fresh refresh token for a live
// session.
func (s *Server) issueTokens(ctx context.Context, sess store.Session) (*ssogatev1.TokenSet, error) {
	if err := sessionUsable(sess, s.now()); err != nil {
		return nil, err
	}
	ident, err := sessionIdentity(sess)
	if err != nil {
		return nil, internalError(err)
	}
	rt, err := s.tokens.IssueRefreshToken(ctx, sess.ID, sess.ExpiresAt)
	if err != nil {
		return nil, internalError(fmt.Errorf("issue refresh token: %w", err))
	}
	return s.tokenSet(ctx, ident, sess.ExpiresAt, rt.Token, rt.ExpiresAt)
}

// sessionUsable refuses tokens for a revoked or expired session.
func sessionUsable(sess store.Session, now time.Time) error {
	if !sess.RevokedAt.IsZero() {
		return apiError(codes.Unauthenticated, reasonSessionRevoked, "session is revoked", "session_id", sess.ID)
	}
	if !now.Before(sess.ExpiresAt) {
		return apiError(codes.Unauthenticated, reasonSessionExpired, "session has expired", "session_id", sess.ID)
	}
	return nil
}

func (s *Server) tokenSet(ctx context.Context, ident *ssogatev1.Identity, sessionEnd time.Time, refresh string, refreshEnd time.Time) (*ssogatev1.TokenSet, error) {
	access, claims, err := s.mintAccess(ctx, claimsOf(ident, sessionEnd))
	if err != nil {
		return nil, internalError(fmt.Errorf("mint access token: %w", err))
	}
	return &ssogatev1.TokenSet{
		AccessToken: access, TokenType: "Bearer", ExpiresAt: timestamppb.New(claims.ExpiresAt),
		RefreshToken: refresh, RefreshExpiresAt: timestamppb.New(refreshEnd), Identity: ident,
	}, nil
}

func (l loginService) RefreshToken(ctx context.Context, req *ssogatev1.RefreshTokenRequest) (*ssogatev1.RefreshTokenResponse, error) {
	s := l.s
	if req.RefreshToken == "" {
		return nil, badField(reasonFieldRequired, "refresh_token", "refresh_token is required")
	}
	rt, err := s.tokens.RotateRefreshToken(ctx, req.RefreshToken)
	if err != nil {
		why, reason := "unknown", reasonRefreshTokenInvalid
		switch {
		case errors.Is(err, token.ErrReused):
			why, reason = "reused", reasonRefreshTokenReused
		case errors.Is(err, token.ErrExpired):
			why, reason = "expired", reasonRefreshTokenExpired
		case errors.Is(err, token.ErrRevoked):
			why, reason = "revoked", reasonRefreshTokenRevoked
		case errors.Is(err, token.ErrMalformed):
			why = "malformed"
		case !errors.Is(err, token.ErrInvalid):
			return nil, internalError(fmt.Errorf("rotate refresh token: %w", err))
		}
		s.metrics.refreshRejected.WithLabelValues(why).Inc()
		return nil, apiError(codes.Unauthenticated, reason, "refresh token is "+why)
	}
	sess, err := s.store.GetSession(ctx, rt.SessionID)
	if err != nil {
		return nil, internalError(fmt.Errorf("load session: %w", err))
	}
	ident, err := sessionIdentity(sess)
	if err != nil {
		return nil, internalError(err)
	}
	set, err := s.tokenSet(ctx, ident, sess.ExpiresAt, rt.Token, rt.ExpiresAt)
	if err != nil {
		return nil, err
	}
	return &ssogatev1.RefreshTokenResponse{TokenSet: set}, nil
}

// validateReason names a token rejection for ValidateTokenResponse.reason.
func validateReason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{token.ErrExpired, "expired"}, {token.ErrRevoked, "revoked"}, {token.ErrSignature, "signature"},
		{token.ErrUnknownKey, "signature"}, {token.ErrAlgorithm, "signature"}, {token.ErrIssuer, "issuer"},
		{token.ErrAudience, "audience"}, {token.ErrNotYetValid, "not_yet_valid"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "malformed"
}

func (l loginService) ValidateToken(ctx context.Context, req *ssogatev1.ValidateTokenRequest) (*ssogatev1.ValidateTokenResponse, error) {
	s := l.s
	start := time.Now()
	defer func() { s.metrics.validateLatency.Observe(time.Since(start).Seconds()) }()
	claims, err := s.verifyAccess(ctx, req.AccessToken)
	if err != nil {
		if !errors.Is(err, token.ErrInvalid) {
			return nil, internalError(fmt.Errorf("verify: %w", err))
		}
		reason := validateReason(err)
		s.metrics.validations.WithLabelValues(reason).Inc()
		return &ssogatev1.ValidateTokenResponse{Valid: false, Reason: reason}, nil
	}
	s.metrics.validations.WithLabelValues("valid").Inc()
	ident := &ssogatev1.Identity{
		Subject: claims.Subject, TenantId: claims.Tenant, ConnectionId: claims.Connection, SessionId: claims.SessionID,
		Email: claims.Email, Name: claims.Name, GivenName: claims.GivenName, FamilyName: claims.FamilyName,
		Groups: claims.Groups, Roles: claims.Roles, Acr: claims.ACR,
	}
	if !claims.AuthTime.IsZero() {
		ident.AuthTime = timestamppb.New(claims.AuthTime)
	}
	for name, v := range claims.Extra {
		if ident.Claims == nil {
			ident.Claims = map[string]*ssogatev1.AttributeValues{}
		}
		switch v := v.(type) {
		case string:
			ident.Claims[name] = &ssogatev1.AttributeValues{Values: []string{v}}
		case []any:
			vals := &ssogatev1.AttributeValues{}
			for _, x := range v {
				if str, ok := x.(string); ok {
					vals.Values = append(vals.Values, str)
				}
			}
			ident.Claims[name] = vals
		}
	}
	return &ssogatev1.ValidateTokenResponse{Valid: true, Identity: ident, ExpiresAt: timestamppb.New(claims.ExpiresAt)}, nil
}

func (l loginService) RevokeSession(ctx context.Context, req *ssogatev1.RevokeSessionRequest) (*ssogatev1.RevokeSessionResponse, error) {
	s := l.s
	if req.SessionId == "" {
		return nil, status.Error(codes.InvalidArgument, "session_id is required")
	}
	sess, err := s.store.GetSession(ctx, req.SessionId)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no session %q", req.SessionId)
	}
	if err != nil {
		return nil, internalError(fmt.Errorf("load session: %w", err))
	}
	revoked := auditEvent{Type: auditSessionRevoked, ConnectionID: sess.ConnectionID, TenantID: sess.TenantID,
		Subject: sess.Subject, Message: req.Reason, Detail: map[string]any{"session_id": sess.ID, "caller": caller(ctx)}}
	if err := s.revokeSessions(s.withAudit(ctx, revoked), []string{sess.ID}, cmp.Or(req.Reason, "revoked by API")); err != nil {
		return nil, internalError(err)
	}
	return &ssogatev1.RevokeSessionResponse{}, nil
}

func (l loginService) RevokeSubject(ctx context.Context, req *ssogatev1.RevokeSubjectRequest) (*ssogatev1.RevokeSubjectResponse, error) {
	s := l.s
	if req.ConnectionId == "" || (req.Subject == "") == (req.NameId == "") {
		return nil, status.Error(codes.InvalidArgument, "set connection_id and exactly one of subject or name_id")
	}
	subject := req.Subject
	if subject == "" {
		subject = token.Subject(req.ConnectionId, req.NameId)
	}
	revoked := auditEvent{Type: auditSubjectRevoked, ConnectionID: req.ConnectionId, Subject: subject,
		Message: req.Reason, Detail: map[string]any{"caller": caller(ctx)}}
	ids, err := s.store.RevokeSubject(s.withAudit(ctx, revoked), req.ConnectionId, subject,
		cmp.Or(req.Reason, "subject revoked by API"), s.now())
	if err != nil {
		return nil, internalError(fmt.Errorf("revoke subject: %w", err))
	}
	for _, id := range ids {
		s.revoked.add(id, s.now())
	}
	return &ssogatev1.RevokeSubjectResponse{SessionIds: ids}, nil
}

// revokeSessions revokes in the store and in memory at once.
func (s *Server) revokeSessions(ctx context.Context, ids []string, reason string) error {
	now := s.now()
	for _, id := range ids {
		if err := s.store.RevokeSession(ctx, id, reason, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("revoke session: %w", err)
		}
		s.revoked.add(id, now)
	}
	return nil
}

func (l loginService) StartLogout(ctx context.Context, req *ssogatev1.StartLogoutRequest) (*ssogatev1.StartLogoutResponse, error) {
	s := l.s
	sid := req.SessionId
	if sid == "" && req.AccessToken != "" {
		claims, err := s.verifyAccess(ctx, req.AccessToken)
		if err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "access_token: %v", err)
		}
		sid = claims.SessionID
	}
	if sid == "" {
		return nil, status.Error(codes.InvalidArgument, "set session_id or access_token")
	}
	sess, err := s.store.GetSession(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no session %q", sid)
	}
	if err != nil {
		return nil, internalError(fmt.Errorf("load session: %w", err))
	}
	c, err := s.registry.get(ctx, sess.ConnectionID)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "connection %q: %v", sess.ConnectionID, err)
	}
	returnTo := req.ReturnTo
	if returnTo != "" {
		if _, err := checkReturnTo(returnTo, c.msg.AllowedReturnUrls); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	logout := auditEvent{Type: auditLogout, ConnectionID: sess.ConnectionID, TenantID: sess.TenantID, Subject: sess.Subject,
		Detail: map[string]any{"session_id": sess.ID, "initiator": "sp"}}
	if err := s.revokeSessions(s.withAudit(ctx, logout), []string{sess.ID}, "logout"); err != nil {
		return nil, internalError(err)
	}
	resp := &ssogatev1.StartLogoutResponse{SessionId: sess.ID}
	if c.msg.GetIdentityProvider().GetSloUrl() == "" {
		return resp, nil
	}
	lr, err := c.sp.NewLogoutRequest(sess.NameID, sess.NameIDFormat, sess.SessionIndex, "")
	if err != nil {
		return nil, internalError(fmt.Errorf("build LogoutRequest: %w", err))
	}
	// Remember where the browser goes when the IdP answers.
	now := s.now()
	if err := s.store.PutPendingRequest(ctx, store.PendingRequest{ID: lr.ID, ConnectionID: c.msg.Id, ReturnTo: returnTo,
		Data: []byte(pendingLogout), CreatedAt: now, ExpiresAt: now.Add(pendingRequestTTL)}); err != nil {
		return nil, internalError(fmt.Errorf("store pending logout: %w", err))
	}
	resp.RedirectUrl = lr.RedirectURL
	return resp, nil
}

// mintAccess signs an access token.
func (s *Server) mintAccess(_ context.Context, c token.Claims) (string, token.Claims, error) {
	return s.tokens.Mint(c)
}

// verifyAccess checks an access token, signature and revocation included.
// A token verified before is served from the cache until it expires; its
// session's revocation is checked on every call all the same.
func (s *Server) verifyAccess(ctx context.Context, raw string) (*token.Claims, error) {
	if claims, ok := s.verified.get(raw, s.now()); ok {
		if s.revoked.Revoked(claims.SessionID) {
			return nil, fmt.Errorf("%w: session %q", token.ErrRevoked, claims.SessionID)
		}
		return claims, nil
	}
	claims, err := s.tokens.Verify(ctx, raw)
	if errors.Is(err, token.ErrUnknownKey) && s.reloadKeys(ctx) {
		// Another replica may have made a key this one has not loaded yet
		// (replicas that bootstrap together each create one).
		claims, err = s.tokens.Verify(ctx, raw)
	}
	if err != nil {
		return nil, err
	}
	s.verified.put(raw, claims)
	return claims, nil
}

// keyReloadMinInterval bounds how often a request may reload the key set:
// tokens with made-up kids must not turn into store queries.
const keyReloadMinInterval = time.Second

// reloadKeys reloads the signing keys from the store unless that happened
// less than keyReloadMinInterval ago; it reports whether it reloaded.
func (s *Server) reloadKeys(ctx context.Context) bool {
	now := s.now()
	last := s.keysLoaded.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < keyReloadMinInterval {
		return false
	}
	if !s.keysLoaded.CompareAndSwap(last, now.UnixNano()) {
		return false
	}
	if err := s.keys.Reload(ctx); err != nil {
		s.log.WarnContext(ctx, "reload signing keys", "request_id", requestID(ctx), "error", err)
		return false
	}
	return true
}

// jwks renders the published keys, first picking up keys other replicas
// made (at most once a second), so that offline verifiers fetching from any
// replica see every key that signs.
func (s *Server) jwks(ctx context.Context) ([]byte, error) {
	s.reloadKeys(ctx)
	return s.keys.JWKS()
}
