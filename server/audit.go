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

// audit appends an event that records no other change (a refused login,
// a rotation the key set stored itself). A failure to write the audit log
// is logged, never hidden, but does not fail the request that caused it.
// Where the event records a store write, use withAudit on that write's
// context instead, so that the two commit together.
func (s *Server) audit(ctx context.Context, e auditEvent) {
	if err := s.store.AppendAudit(ctx, s.auditRecord(ctx, e)); err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "request_id", requestID(ctx), "type", e.Type, "error", err)
	}
}

// withAudit returns a context whose next store write also appends the
// events, in the same transaction (the outbox: no change without its
// event, no event without its change):
//
//	err := s.store.CreateSession(s.withAudit(ctx, ev), sess)
func (s *Server) withAudit(ctx context.Context, events ...auditEvent) context.Context {
	records := make([]store.AuditEvent, len(events))
	for i, e := range events {
		records[i] = s.auditRecord(ctx, e)
	}
	return store.WithEvents(ctx, records...)
}

// auditRecord is the stored form of e, with the request id as correlation
// id. The request's own log line carries the reason; no second line.
func (s *Server) auditRecord(ctx context.Context, e auditEvent) store.AuditEvent {
	var detail []byte
	if len(e.Detail) > 0 {
		detail, _ = json.Marshal(e.Detail)
	}
	if e.Reason != "" {
		noteReason(ctx, string(e.Reason))
	}
	return store.AuditEvent{
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
	}
}
