package server

import (
	"context"
	"encoding/json"

	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
)

// Audit event types.
const (
	auditLoginStarted   = "login.started"
	auditLoginSucceeded = "login.succeeded"
	auditLoginFailed    = "login.failed"
	auditLoginDenied    = "login.denied"
	auditLoginTested    = "login.tested"
	auditCodeRejected   = "code.rejected"
	auditRefreshReused  = "refresh_token.reused"
	auditLogout         = "logout"
	auditLogoutFailed   = "logout.failed"
	auditSessionRevoked = "session.revoked"
	auditSubjectRevoked = "subject.revoked"
	auditKeyRotated     = "signing_key.rotated"
)

// auditEvent is what the server records; it never holds assertions, codes,
// tokens or keys.
type auditEvent struct {
	Type         string
	ConnectionID string
	TenantID     string
	Subject      string
	Reason       saml.Reason
	Message      string
	Detail       map[string]any
}

// audit appends an event, with the request id as correlation id. A failure
// to write the audit log is logged, never hidden, but does not fail the
// request that caused it.
func (s *Server) audit(ctx context.Context, e auditEvent) {
	var detail []byte
	if len(e.Detail) > 0 {
		detail, _ = json.Marshal(e.Detail)
	}
	err := s.store.AppendAudit(ctx, store.AuditEvent{
		ID:            newRequestID(),
		Time:          s.now(),
		Type:          e.Type,
		ConnectionID:  e.ConnectionID,
		TenantID:      e.TenantID,
		Subject:       e.Subject,
		Reason:        string(e.Reason),
		CorrelationID: requestID(ctx),
		Message:       e.Message,
		Detail:        detail,
	})
	if err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "request_id", requestID(ctx), "type", e.Type, "error", err)
	}
	// The request's own log line carries the reason; no second line.
	if e.Reason != "" {
		noteReason(ctx, string(e.Reason))
	}
}
