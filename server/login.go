package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/policy"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
)

// Lifetimes of the login flow (docs/architecture.md, "Words").
const (
	pendingRequestTTL = 10 * time.Minute
	codeTTL           = 60 * time.Second
	maxStateBytes     = 512
	maxReturnToBytes  = 2048
	// pendingLogout marks a pending request that is a LogoutRequest.
	pendingLogout = "logout"
)

type loginService struct {
	ssogatev1.UnimplementedLoginServiceServer
	s *Server
}

// randomValue returns n random bytes, base64url: codes, refresh tokens and
// session ids.
func (s *Server) randomValue(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashValue(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

// connectionFor resolves StartLogin's connection: by id, or by the email's
// domain.
func (s *Server) connectionFor(ctx context.Context, id, email string) (*conn, error) {
	switch {
	case id != "":
		return s.rpcConnection(ctx, id)
	case email != "":
		at := strings.LastIndexByte(email, '@')
		if at < 1 || at == len(email)-1 {
			return nil, badField(reasonFieldInvalid, "email", fmt.Sprintf("email %q has no domain", email))
		}
		domain := strings.ToLower(email[at+1:])
		c, err := s.registry.byDomain(ctx, domain)
		if errors.Is(err, errConnectionNotFound) {
			return nil, apiError(codes.NotFound, reasonDomainNotFound, fmt.Sprintf("no connection serves the domain %q", domain), "domain", domain)
		}
		return c, err
	default:
		return nil, badField(reasonFieldRequired, "connection_id", "set connection_id or email")
	}
}

// loginAllowed applies the lifecycle: ACTIVE logs users in; TESTING only
// serves test logins; DRAFT and DISABLED refuse.
func loginAllowed(c *ssogatev1.Connection, test bool) error {
	switch c.State {
	case ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE:
		return nil
	case ssogatev1.ConnectionState_CONNECTION_STATE_TESTING:
		if test {
			return nil
		}
		return saml.Rejectf(saml.ReasonConnectionInactive,
			"connection %q is in TESTING: only test logins are served until an admin activates it", c.Id)
	case ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT:
		if test {
			return saml.Rejectf(saml.ReasonConnectionInactive,
				"connection %q is still DRAFT: it has no IdP settings to test yet; give it the IdP's metadata (setup portal step 3, or UpdateConnection), which moves it to TESTING, then start the test again", c.Id)
		}
		return saml.Rejectf(saml.ReasonConnectionInactive, "connection %q is DRAFT: it refuses logins until it is set up and activated", c.Id)
	default:
		return saml.Rejectf(saml.ReasonConnectionInactive,
			"connection %q is %s: it refuses logins", c.Id, strings.TrimPrefix(c.State.String(), "CONNECTION_STATE_"))
	}
}

func (l loginService) StartLogin(ctx context.Context, req *ssogatev1.StartLoginRequest) (*ssogatev1.StartLoginResponse, error) {
	s := l.s
	c, err := s.connectionFor(ctx, req.ConnectionId, req.Email)
	if err != nil {
		return nil, err
	}
	if err := loginAllowed(c.msg, req.Test); err != nil {
		se := err.(*saml.Error)
		s.refusals.audit(ctx, auditEvent{Type: auditLoginFailed, ConnectionID: c.msg.Id, TenantID: c.msg.TenantId,
			Reason: se.Reason, Message: se.Message, Detail: map[string]any{"check": "lifecycle"}})
		s.metrics.loginsRefused.WithLabelValues("lifecycle").Inc()
		reason := reasonConnectionNotActive
		if c.msg.State == ssogatev1.ConnectionState_CONNECTION_STATE_TESTING {
			reason = reasonConnectionInTesting
		}
		return nil, apiError(codes.FailedPrecondition, reason, se.Message, "connection_id", c.msg.Id, "state", c.msg.State.String())
	}
	if len(req.ReturnTo) > maxReturnToBytes {
		return nil, badField(reasonFieldInvalid, "return_to", fmt.Sprintf("return_to is %d bytes; at most %d", len(req.ReturnTo), maxReturnToBytes))
	}
	if len(req.State) > maxStateBytes {
		return nil, badField(reasonFieldInvalid, "state", fmt.Sprintf("state is %d bytes; at most %d", len(req.State), maxStateBytes))
	}
	returnTo := req.ReturnTo
	if returnTo == "" {
		returnTo = c.msg.DefaultReturnUrl
	}
	if returnTo == "" && !req.Test {
		return nil, apiError(codes.InvalidArgument, reasonReturnToRequired, fmt.Sprintf("return_to is empty and connection %q has no default_return_url", c.msg.Id), "connection_id", c.msg.Id)
	}
	// A test login ends on the diagnostic page, so it needs no return_to;
	// one given is still checked.
	if returnTo != "" {
		if err := s.checkLoginReturnTo(ctx, c.msg, returnTo); err != nil {
			return nil, err
		}
	}
	areq, err := c.sp.NewAuthnRequest(saml.AuthnRequestOptions{ForceAuthn: req.ForceAuthn})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "build AuthnRequest: %v", err)
	}
	now := s.now()
	pending := store.PendingRequest{
		ID: areq.ID, ConnectionID: c.msg.Id, ReturnTo: returnTo, State: req.State, Test: req.Test,
		CreatedAt: now, ExpiresAt: now.Add(pendingRequestTTL),
	}
	redirect := areq.RedirectURL
	if hint := cmp.Or(req.LoginHint, req.Email); hint != "" && len(hint) <= 256 && redirect != "" {
		// Entra ID and others pre-fill the username from login_hint; the
		// query signature covers only SAMLRequest, RelayState and SigAlg,
		// so an extra parameter leaves it intact.
		// Appended as is: re-encoding the query could change the octets
		// the signature covers.
		redirect += "&login_hint=" + url.QueryEscape(hint)
	}
	if redirect == "" {
		// The IdP takes AuthnRequests by HTTP-POST only: keep the form,
		// and send the browser to our page that posts it.
		form, err := areq.PostForm()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "build AuthnRequest form: %v", err)
		}
		pending.Data = form
		redirect = s.cfg.ExternalURL + "/saml/" + c.msg.Id + "/authn/" + url.PathEscape(areq.ID)
	}
	if err := s.store.PutPendingRequest(ctx, pending); err != nil {
		return nil, status.Errorf(codes.Internal, "store pending request: %v", err)
	}
	s.metrics.loginsStarted.WithLabelValues(fmt.Sprint(req.Test)).Inc()
	// Browser-started logins (no API key) are counted per client and
	// minute; a backend's StartLogin is written one by one.
	s.refusals.audit(ctx, auditEvent{Type: auditLoginStarted, ConnectionID: c.msg.Id, TenantID: c.msg.TenantId,
		Detail: map[string]any{"request_id": areq.ID, "test": req.Test}})
	return &ssogatev1.StartLoginResponse{
		RedirectUrl: redirect, RequestId: areq.ID, ConnectionId: c.msg.Id,
		ExpiresAt: timestamppb.New(pending.ExpiresAt),
	}, nil
}

// checkLoginReturnTo refuses (and audits) a return_to the connection does
// not allow.
func (s *Server) checkLoginReturnTo(ctx context.Context, c *ssogatev1.Connection, returnTo string) error {
	if _, err := checkReturnTo(returnTo, c.AllowedReturnUrls); err != nil {
		s.refusals.audit(ctx, auditEvent{Type: auditLoginFailed, ConnectionID: c.Id, TenantID: c.TenantId,
			Message: err.Error(), Detail: map[string]any{"check": "return_to"}})
		s.metrics.loginsRefused.WithLabelValues("return_to").Inc()
		return apiError(codes.InvalidArgument, reasonReturnToNotAllowed, err.Error(), "connection_id", c.Id)
	}
	return nil
}

// rejectLogin records a refused login in the audit log and the ACS
// outcome metric.
func (s *Server) rejectLogin(ctx context.Context, c *ssogatev1.Connection, err error) saml.Reason {
	reason := s.recordRefusal(ctx, c, err, auditLoginFailed)
	s.metrics.acsOutcomes.WithLabelValues(c.GetId(), string(reason)).Inc()
	return reason
}

// rejectLogout records a refused Single Logout message; it is no login, so
// it is no ACS outcome.
func (s *Server) rejectLogout(ctx context.Context, c *ssogatev1.Connection, err error) {
	s.recordRefusal(ctx, c, err, auditLogoutFailed)
}

// recordRefusal audits a refusal under typ (policy denials as
// login.denied) with its reason and admin-facing message.
func (s *Server) recordRefusal(ctx context.Context, c *ssogatev1.Connection, err error, typ string) saml.Reason {
	reason, msg := saml.ReasonInternal, "internal error"
	var se *saml.Error
	if errors.As(err, &se) {
		reason, msg = se.Reason, se.Message
	} else {
		s.log.ErrorContext(ctx, "refused after an internal failure", "request_id", requestID(ctx), "error", err)
	}
	if reason == saml.ReasonPolicyDenied {
		typ = auditLoginDenied
	}
	e := auditEvent{Type: typ, Reason: reason, Message: msg}
	if c != nil {
		e.ConnectionID, e.TenantID = c.Id, c.TenantId
	}
	// A refusal of a browser's message is unauthenticated traffic: counted
	// per client and minute, not one row each. Policy denials (a verified
	// user) and internal failures are written one by one.
	if reason == saml.ReasonPolicyDenied || reason == saml.ReasonInternal {
		s.audit(ctx, e)
	} else {
		s.refusals.audit(ctx, e)
	}
	return reason
}

// pendingConsumer adapts the store to saml.RequestConsumer for one
// response and remembers what it consumed.
type pendingConsumer struct {
	s        *Server
	consumed *store.PendingRequest
}

func (p *pendingConsumer) ConsumeRequest(ctx context.Context, connectionID, requestID string) error {
	r, err := p.s.store.ConsumePendingRequest(ctx, connectionID, requestID, p.s.now())
	switch {
	case err == nil && string(r.Data) == pendingLogout:
		return fmt.Errorf("%w: %s answers a LogoutRequest, not an AuthnRequest", saml.ErrRequestUnknown, requestID)
	case err == nil && strings.HasPrefix(string(r.Data), pendingConsent):
		return fmt.Errorf("%w: %s is no AuthnRequest", saml.ErrRequestUnknown, requestID)
	case err == nil:
		p.consumed = &r
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", saml.ErrRequestUnknown, err)
	case errors.Is(err, store.ErrConsumed):
		return fmt.Errorf("%w: %v", saml.ErrRequestUsed, err)
	case errors.Is(err, store.ErrExpired):
		return fmt.Errorf("%w: %v", saml.ErrRequestExpired, err)
	default:
		return err
	}
}

// replayCache adapts the store to saml.ReplayCache.
type replayCache struct{ s *Server }

func (r replayCache) RecordAssertion(ctx context.Context, connectionID, assertionID string, expiresAt time.Time) error {
	err := r.s.store.RecordAssertion(ctx, connectionID, assertionID, expiresAt)
	if errors.Is(err, store.ErrConsumed) {
		return fmt.Errorf("%w: %v", saml.ErrAssertionSeen, err)
	}
	return err
}

// loginResult is a verified, admitted login.
type loginResult struct {
	conn     *conn
	identity *saml.Identity
	pending  *store.PendingRequest // nil when IdP-initiated
	roles    []string
	// denied is set when the policy refused (the test page shows it).
	denied error
}

// verifyLogin runs every check on one posted SAMLResponse: the connection's
// lifecycle, the SAML validation, and the access policy. A test login
// (pending.Test) returns its result even when the policy denies, for the
// diagnostic page.
func (s *Server) verifyLogin(ctx context.Context, c *conn, samlResponse string) (*loginResult, error) {
	if c.msg.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE &&
		c.msg.State != ssogatev1.ConnectionState_CONNECTION_STATE_TESTING {
		return nil, loginAllowed(c.msg, true)
	}
	consumer := &pendingConsumer{s: s}
	vctx, endSpan := s.validateSpan(ctx, c.msg.Id)
	ident, err := c.sp.ValidateResponse(vctx, saml.ResponseInput{SAMLResponse: samlResponse, Requests: consumer, Replay: replayCache{s}})
	endSpan(err)
	if err != nil {
		return nil, err
	}
	res := &loginResult{conn: c, identity: ident, pending: consumer.consumed}
	test := res.pending != nil && res.pending.Test
	if err := loginAllowed(c.msg, test); err != nil {
		return nil, err
	}
	if err := bindEmail(c.msg, ident); err != nil {
		if test {
			res.denied = err
			return res, nil
		}
		return nil, err
	}
	ident.Mapped.Groups = nameGroups(c.msg.GroupNames, ident.Mapped.Groups)
	fromDirectory, err := s.admitDirectory(ctx, c.msg, ident)
	if err != nil {
		return nil, err
	}
	if err := groupOverage(c.msg, c.policy, ident, fromDirectory); err != nil {
		if test {
			res.denied = err
			return res, nil
		}
		return nil, err
	}
	roles, err := c.policy.Decide(policy.Subject{Groups: ident.Mapped.Groups, Attributes: ident.Attributes})
	if err != nil {
		var d *policy.Denied
		if !errors.As(err, &d) {
			return nil, err
		}
		denial := saml.Rejectf(saml.ReasonPolicyDenied, "%s", d.Message)
		if test {
			res.denied = denial
			return res, nil
		}
		return nil, denial
	}
	res.roles = roles
	return res, nil
}

// identityOf builds the API identity of a verified login.
func (s *Server) identityOf(res *loginResult, sessionID string, sessionEnd time.Time) *ssogatev1.Identity {
	id := res.identity
	out := &ssogatev1.Identity{
		Subject:          token.Subject(res.conn.msg.Id, id.NameID),
		TenantId:         res.conn.msg.TenantId,
		ConnectionId:     res.conn.msg.Id,
		SessionId:        sessionID,
		NameId:           id.NameID,
		NameIdFormat:     id.NameIDFormat,
		Email:            id.Mapped.Email,
		Name:             id.Mapped.Name,
		GivenName:        id.Mapped.GivenName,
		FamilyName:       id.Mapped.FamilyName,
		Groups:           id.Mapped.Groups,
		Roles:            res.roles,
		Attributes:       map[string]*ssogatev1.AttributeValues{},
		Acr:              id.AuthnContextClassRef,
		SessionExpiresAt: timestamppb.New(sessionEnd),
	}
	if !id.AuthnInstant.IsZero() {
		out.AuthTime = timestamppb.New(id.AuthnInstant)
	}
	for name, values := range id.Attributes {
		out.Attributes[name] = &ssogatev1.AttributeValues{Values: values}
	}
	if len(id.Mapped.Extra) > 0 {
		out.Claims = map[string]*ssogatev1.AttributeValues{}
		for name, values := range id.Mapped.Extra {
			out.Claims[name] = &ssogatev1.AttributeValues{Values: values}
		}
	}
	return out
}

// sessionEnd caps a session by the service maximum, the connection's, and
// the IdP's SessionNotOnOrAfter.
func (s *Server) sessionEnd(res *loginResult, now time.Time) time.Time {
	end := now.Add(s.cfg.Token.SessionMax)
	if d := res.conn.msg.MaxSessionDuration; d != nil && now.Add(d.AsDuration()).Before(end) {
		end = now.Add(d.AsDuration())
	}
	if t := res.identity.SessionNotOnOrAfter; !t.IsZero() && t.Before(end) {
		end = t
	}
	return end
}

// createSession stores the session of an admitted login.
func (s *Server) createSession(ctx context.Context, res *loginResult) (store.Session, error) {
	sid, err := s.randomValue(16)
	if err != nil {
		return store.Session{}, err
	}
	now := s.now()
	end := s.sessionEnd(res, now)
	ident := s.identityOf(res, sid, end)
	raw, err := protojson.Marshal(ident)
	if err != nil {
		return store.Session{}, fmt.Errorf("encode identity: %w", err)
	}
	sess := store.Session{
		ID: sid, ConnectionID: res.conn.msg.Id, TenantID: res.conn.msg.TenantId, Subject: ident.Subject,
		NameID: res.identity.NameID, NameIDFormat: res.identity.NameIDFormat, SessionIndex: res.identity.SessionIndex,
		Identity: raw, CreatedAt: now, ExpiresAt: end,
	}
	if s.beforeSession != nil {
		s.beforeSession()
	}
	// login.succeeded commits with the session; a directory recheck that
	// then refuses the user revokes it and says so in events of its own.
	succeeded := auditEvent{Type: auditLoginSucceeded, ConnectionID: res.conn.msg.Id, TenantID: res.conn.msg.TenantId,
		Subject: ident.Subject, Detail: map[string]any{"session_id": sid, "idp_initiated": res.pending == nil}}
	if err := s.store.CreateSession(s.withAudit(ctx, succeeded), sess); err != nil {
		return store.Session{}, fmt.Errorf("create session: %w", err)
	}
	if err := s.recheckDirectory(ctx, res.conn.msg, sess); err != nil {
		return store.Session{}, err
	}
	s.metrics.acsOutcomes.WithLabelValues(res.conn.msg.Id, "SUCCESS").Inc()
	return sess, nil
}

// codeData travels with a code to ExchangeCode.
type codeData struct {
	ReturnTo string `json:"return_to"`
	State    string `json:"state"`
}

func decodeCodeData(raw []byte) codeData {
	var d codeData
	_ = json.Unmarshal(raw, &d) // written by mintCode; empty on absence
	return d
}

// mintCode stores a one-time code for a session and returns its value.
func (s *Server) mintCode(ctx context.Context, sessionID, connectionID string, data codeData) (string, error) {
	code, err := s.randomValue(32)
	if err != nil {
		return "", err
	}
	raw, _ := json.Marshal(data)
	now := s.now()
	if err := s.store.PutCode(ctx, store.Code{Hash: hashValue(code), SessionID: sessionID, ConnectionID: connectionID,
		Data: raw, CreatedAt: now, ExpiresAt: now.Add(codeTTL)}); err != nil {
		return "", fmt.Errorf("store code: %w", err)
	}
	return code, nil
}

// withQuery appends parameters to a return URL, keeping its own.
func withQuery(raw string, params map[string]string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func sessionIdentity(sess store.Session) (*ssogatev1.Identity, error) {
	ident := &ssogatev1.Identity{}
	if err := protojson.Unmarshal(sess.Identity, ident); err != nil {
		return nil, fmt.Errorf("stored identity of session: %w", err)
	}
	return ident, nil
}

func (l loginService) ExchangeCode(ctx context.Context, req *ssogatev1.ExchangeCodeRequest) (*ssogatev1.ExchangeCodeResponse, error) {
	s := l.s
	start := time.Now()
	defer func() { s.metrics.exchangeLatency.WithLabelValues("code").Observe(time.Since(start).Seconds()) }()
	if req.Code == "" {
		return nil, badField(reasonFieldRequired, "code", "code is required")
	}
	code, err := s.store.ConsumeCode(ctx, hashValue(req.Code), s.now())
	if err != nil {
		reason, apiReason := "unknown", reasonCodeUnknown
		switch {
		case errors.Is(err, store.ErrConsumed):
			reason, apiReason = "reused", reasonCodeUsed
		case errors.Is(err, store.ErrExpired):
			reason, apiReason = "expired", reasonCodeExpired
		case !errors.Is(err, store.ErrNotFound):
			return nil, status.Errorf(codes.Internal, "consume code: %v", err)
		}
		s.audit(ctx, auditEvent{Type: auditCodeRejected, Message: "code " + reason, Detail: map[string]any{"code": reason}})
		s.metrics.codeRejected.WithLabelValues(reason).Inc()
		return nil, apiError(codes.InvalidArgument, apiReason, fmt.Sprintf("code is %s: codes work once, within %s", reason, codeTTL))
	}
	sess, err := s.store.GetSession(ctx, code.SessionID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "load session: %v", err)
	}
	set, err := s.issueTokens(ctx, sess)
	if err != nil {
		return nil, err
	}
	pending := decodeCodeData(code.Data)
	return &ssogatev1.ExchangeCodeResponse{TokenSet: set, State: pending.State, ReturnTo: pending.ReturnTo}, nil
}

func (l loginService) ExchangeAssertion(ctx context.Context, req *ssogatev1.ExchangeAssertionRequest) (*ssogatev1.ExchangeAssertionResponse, error) {
	s := l.s
	start := time.Now()
	defer func() { s.metrics.exchangeLatency.WithLabelValues("assertion").Observe(time.Since(start).Seconds()) }()
	c, err := s.rpcConnection(ctx, req.ConnectionId)
	if err != nil {
		return nil, err
	}
	res, err := s.verifyLogin(ctx, c, req.SamlResponse)
	if err == nil && res.pending != nil && res.pending.Test {
		err = saml.Rejectf(saml.ReasonConnectionInactive, "test logins end on the ACS diagnostic page, not in ExchangeAssertion")
	}
	if err != nil {
		reason := s.rejectLogin(ctx, c.msg, err)
		return nil, rejectionStatus(reason, err)
	}
	sess, err := s.createSession(ctx, res)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	set, err := s.issueTokens(ctx, sess)
	if err != nil {
		return nil, err
	}
	return &ssogatev1.ExchangeAssertionResponse{TokenSet: set}, nil
}

// rejectionStatus maps a login rejection to a gRPC status carrying the
// admin-facing message and the reason (as the API enum name).
func rejectionStatus(reason saml.Reason, err error) error {
	var se *saml.Error
	msg := "internal error"
	if errors.As(err, &se) {
		msg = se.Message
	}
	code := codes.PermissionDenied
	switch reason {
	case saml.ReasonInternal:
		code = codes.Internal
	case saml.ReasonConnectionInactive:
		code = codes.FailedPrecondition
	case saml.ReasonConnectionNotFound:
		code = codes.NotFound
	case saml.ReasonBodyTooLarge, saml.ReasonMalformedEncoding, saml.ReasonMalformedXML,
		saml.ReasonForbiddenXML, saml.ReasonXMLTooComplex, saml.ReasonUnsupportedVersion:
		code = codes.InvalidArgument
	}
	return apiError(code, string(reason), fmt.Sprintf("REJECTION_REASON_%s: %s", reason, msg))
}
