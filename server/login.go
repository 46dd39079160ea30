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
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
		return nil, internalError(fmt.Errorf("build AuthnRequest: %w", err))
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
			return nil, internalError(fmt.Errorf("build AuthnRequest form: %w", err))
		}
		pending.Data = form
		redirect = s.cfg.ExternalURL + "/saml/" + c.msg.Id + "/authn/" + url.PathEscape(areq.ID)
	}
	// Browser-started logins (no API key) are counted per client and
	// minute; a backend's StartLogin is written one by one, in the same
	// transaction as its pending request.
	started := auditEvent{Type: auditLoginStarted, ConnectionID: c.msg.Id, TenantID: c.msg.TenantId,
		Detail: map[string]any{"request_id": areq.ID, "test": req.Test}}
	browser := clientAddr(ctx).IsValid()
	putCtx := ctx
	if !browser {
		putCtx = s.withAudit(ctx, started)
	}
	if err := s.store.PutPendingRequest(putCtx, pending); err != nil {
		return nil, internalError(fmt.Errorf("store pending request: %w", err))
	}
	s.metrics.loginsStarted.WithLabelValues(fmt.Sprint(req.Test)).Inc()
	if browser {
		s.refusals.audit(ctx, started)
	}
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

// pendingReader is saml.RequestConsumer for a login: during validation it
// only reads the pending request (its settings decide the checks that
// follow); consuming it is left to the one transaction that completes the
// login (completeLogin), which also decides, atomically across replicas,
// whether it was used or expired.
type pendingReader struct {
	s       *Server
	id      string
	pending *store.PendingRequest
}

func (p *pendingReader) ConsumeRequest(ctx context.Context, connectionID, requestID string) error {
	r, err := p.s.store.GetPendingRequest(ctx, connectionID, requestID)
	switch {
	case err == nil && string(r.Data) == pendingLogout:
		return fmt.Errorf("%w: %s answers a LogoutRequest, not an AuthnRequest", saml.ErrRequestUnknown, requestID)
	case err == nil && strings.HasPrefix(string(r.Data), pendingConsent):
		return fmt.Errorf("%w: %s is no AuthnRequest", saml.ErrRequestUnknown, requestID)
	case err == nil:
		p.id, p.pending = requestID, &r
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", saml.ErrRequestUnknown, err)
	default:
		return err
	}
}

// replayIntent is saml.ReplayCache for a login: it remembers the assertion
// ID for completeLogin, which records it in the same transaction as the
// rest of the login.
type replayIntent struct {
	id      string
	expires time.Time
}

func (r *replayIntent) RecordAssertion(_ context.Context, _, assertionID string, expiresAt time.Time) error {
	r.id, r.expires = assertionID, expiresAt
	return nil
}

// replayCache adapts the store to saml.ReplayCache (Single Logout, where
// recording is the whole of the single-use write).
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
	// What completeLogin makes single-use: the assertion ID (until
	// assertionExpires) and the pending request. Empty once done (a login
	// resumed after the consent page).
	assertionID      string
	assertionExpires time.Time
	requestID        string
}

// verifyLogin runs every check on one posted SAMLResponse: the connection's
// lifecycle, the SAML validation, and the access policy. A test login
// (pending.Test) returns its result even when the policy denies, for the
// diagnostic page. Nothing is written yet: the caller ends every admitted
// result with completeLogin. A refused one has its assertion and request
// used up here, so that it cannot be tried again.
func (s *Server) verifyLogin(ctx context.Context, c *conn, samlResponse string) (*loginResult, error) {
	if c.msg.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE &&
		c.msg.State != ssogatev1.ConnectionState_CONNECTION_STATE_TESTING {
		return nil, loginAllowed(c.msg, true)
	}
	reader, replay := &pendingReader{s: s}, &replayIntent{}
	vctx, endSpan := s.validateSpan(ctx, c.msg.Id)
	ident, err := c.sp.ValidateResponse(vctx, saml.ResponseInput{SAMLResponse: samlResponse, Requests: reader, Replay: replay})
	endSpan(err)
	if err != nil {
		return nil, err
	}
	res := &loginResult{conn: c, identity: ident, pending: reader.pending,
		assertionID: replay.id, assertionExpires: replay.expires, requestID: reader.id}
	if err := s.admitLogin(ctx, res); err != nil {
		// Used up even though refused; a single-use refusal (replayed,
		// already used) is the better answer.
		if cerr := s.completeLogin(ctx, res, nil, nil); cerr != nil {
			var se *saml.Error
			if errors.As(cerr, &se) {
				return nil, cerr
			}
			s.log.ErrorContext(ctx, "use up a refused login", "request_id", requestID(ctx), "error", cerr)
		}
		return nil, err
	}
	return res, nil
}

// admitLogin applies the lifecycle, the email binding, the directory and
// the access policy to a validated response.
func (s *Server) admitLogin(ctx context.Context, res *loginResult) error {
	c, ident := res.conn, res.identity
	test := res.pending != nil && res.pending.Test
	if err := loginAllowed(c.msg, test); err != nil {
		return err
	}
	if err := bindEmail(c.msg, ident); err != nil {
		if test {
			res.denied = err
			return nil
		}
		return err
	}
	ident.Mapped.Groups = nameGroups(c.msg.GroupNames, ident.Mapped.Groups)
	fromDirectory, err := s.admitDirectory(ctx, c.msg, ident)
	if err != nil {
		return err
	}
	if err := groupOverage(c.msg, c.policy, ident, fromDirectory); err != nil {
		if test {
			res.denied = err
			return nil
		}
		return err
	}
	roles, err := c.policy.Decide(policy.Subject{Groups: ident.Mapped.Groups, Attributes: ident.Attributes})
	if err != nil {
		var d *policy.Denied
		if !errors.As(err, &d) {
			return err
		}
		denial := saml.Rejectf(saml.ReasonPolicyDenied, "%s", d.Message)
		if test {
			res.denied = denial
			return nil
		}
		return denial
	}
	res.roles = roles
	return nil
}

// completeLogin commits, in one store transaction, what res makes
// single-use (its assertion ID and pending request), the session and the
// code when given, and the events ctx carries. A lost race or a replay is
// refused with the reason saml would give: ASSERTION_REPLAYED, or
// IN_RESPONSE_TO_USED / _EXPIRED / _UNKNOWN. Afterwards res has nothing
// left to use up.
func (s *Server) completeLogin(ctx context.Context, res *loginResult, sess *store.Session, code *store.Code) error {
	l := store.LoginCompletion{ConnectionID: res.conn.msg.Id, AssertionID: res.assertionID, AssertionExpiresAt: res.assertionExpires,
		RequestID: res.requestID, Now: s.now(), Session: sess, Code: code}
	if l.AssertionID == "" && l.RequestID == "" && sess == nil && code == nil {
		return nil
	}
	consumed, err := s.store.CompleteLogin(ctx, l)
	if err != nil {
		return completionRefusal(l, err)
	}
	if l.RequestID != "" {
		res.pending = &consumed
	}
	res.assertionID, res.requestID = "", ""
	return nil
}

// completionRefusal names a failed CompleteLogin as saml.ValidateResponse
// names the same outcome.
func completionRefusal(l store.LoginCompletion, err error) error {
	var ce *store.CompletionError
	if !errors.As(err, &ce) {
		return err
	}
	irt := truncate(l.RequestID, 128)
	switch {
	case ce.Part == store.PartAssertion && errors.Is(err, store.ErrConsumed):
		return &saml.Error{Reason: saml.ReasonAssertionReplayed, Err: fmt.Errorf("%w: %v", saml.ErrAssertionSeen, err),
			Message: fmt.Sprintf("assertion %q was already used", truncate(l.AssertionID, 128))}
	case ce.Part == store.PartRequest && errors.Is(err, store.ErrNotFound):
		return &saml.Error{Reason: saml.ReasonInResponseToUnknown, Err: fmt.Errorf("%w: %v", saml.ErrRequestUnknown, err),
			Message: fmt.Sprintf("InResponseTo %q is not a login started for connection %q", irt, l.ConnectionID)}
	case ce.Part == store.PartRequest && errors.Is(err, store.ErrConsumed):
		return &saml.Error{Reason: saml.ReasonInResponseToUsed, Err: fmt.Errorf("%w: %v", saml.ErrRequestUsed, err),
			Message: fmt.Sprintf("the login %q was already completed; a Response is accepted once", irt)}
	case ce.Part == store.PartRequest && errors.Is(err, store.ErrExpired):
		return &saml.Error{Reason: saml.ReasonInResponseToExpired, Err: fmt.Errorf("%w: %v", saml.ErrRequestExpired, err),
			Message: fmt.Sprintf("the login %q expired before the IdP answered", irt)}
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
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

// newSession builds the session of an admitted login and the
// login.succeeded event that commits with it.
func (s *Server) newSession(ctx context.Context, res *loginResult) (store.Session, auditEvent, error) {
	sid, err := s.randomValue(16)
	if err != nil {
		return store.Session{}, auditEvent{}, err
	}
	now := s.now()
	end := s.sessionEnd(res, now)
	ident := s.identityOf(res, sid, end)
	raw, err := proto.Marshal(ident)
	if err != nil {
		return store.Session{}, auditEvent{}, fmt.Errorf("encode identity: %w", err)
	}
	sess := store.Session{
		ID: sid, ConnectionID: res.conn.msg.Id, TenantID: res.conn.msg.TenantId, Subject: ident.Subject,
		NameID: res.identity.NameID, NameIDFormat: res.identity.NameIDFormat, SessionIndex: res.identity.SessionIndex,
		Identity: raw, CreatedAt: now, ExpiresAt: end,
	}
	succeeded := auditEvent{Type: auditLoginSucceeded, ConnectionID: res.conn.msg.Id, TenantID: res.conn.msg.TenantId,
		Subject: ident.Subject, Detail: map[string]any{"session_id": sid, "idp_initiated": res.pending == nil}}
	return sess, succeeded, nil
}

// createSession completes an admitted login with its session, and a code
// for it when data is not nil, in one transaction (completeLogin) with its
// login.succeeded event. It returns the session and the code's value.
func (s *Server) createSession(ctx context.Context, res *loginResult, data *codeData) (store.Session, string, error) {
	sess, succeeded, err := s.newSession(ctx, res)
	if err != nil {
		return store.Session{}, "", err
	}
	var code string
	var row *store.Code
	if data != nil {
		if code, row, err = s.newCode(sess.ID, res.conn.msg.Id, *data); err != nil {
			return store.Session{}, "", err
		}
	}
	if s.beforeSession != nil {
		s.beforeSession()
	}
	// login.succeeded commits with the session; a directory recheck that
	// then refuses the user revokes it and says so in events of its own.
	if err := s.completeLogin(s.withAudit(ctx, succeeded), res, &sess, row); err != nil {
		return store.Session{}, "", fmt.Errorf("create session: %w", err)
	}
	if err := s.recheckDirectory(ctx, res.conn.msg, sess); err != nil {
		return store.Session{}, "", err
	}
	s.metrics.acsOutcomes.WithLabelValues(res.conn.msg.Id, "SUCCESS").Inc()
	return sess, code, nil
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

// newCode makes a one-time code for a session: its value, and the row
// that stores it by hash.
func (s *Server) newCode(sessionID, connectionID string, data codeData) (string, *store.Code, error) {
	code, err := s.randomValue(32)
	if err != nil {
		return "", nil, err
	}
	raw, _ := json.Marshal(data)
	now := s.now()
	return code, &store.Code{Hash: hashValue(code), SessionID: sessionID, ConnectionID: connectionID,
		Data: raw, CreatedAt: now, ExpiresAt: now.Add(codeTTL)}, nil
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
	// Sessions store their identity as binary protobuf (protojson was 4.5%
	// of a login's CPU, written once and read on every refresh); sessions
	// stored before that hold its protojson, which always starts with '{'
	// (as a first byte of binary protobuf, 0x7b would be the tag of a
	// group, field 15, which proto3 never writes).
	unmarshal := proto.Unmarshal
	if len(sess.Identity) > 0 && sess.Identity[0] == '{' {
		unmarshal = protojson.Unmarshal
	}
	if err := unmarshal(sess.Identity, ident); err != nil {
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
	// The code is spent and the session's first refresh token stored in
	// one transaction: a redeemed code always has its tokens.
	rt, err := s.tokens.PrepareRefreshToken()
	if err != nil {
		return nil, internalError(fmt.Errorf("issue refresh token: %w", err))
	}
	now := s.now()
	red, err := s.store.RedeemCode(ctx, hashValue(req.Code), now, store.RefreshToken{Hash: rt.Hash, CreatedAt: now, ExpiresAt: rt.ExpiresAt})
	if err != nil {
		reason, apiReason := "unknown", reasonCodeUnknown
		switch {
		case errors.Is(err, store.ErrConsumed):
			reason, apiReason = "reused", reasonCodeUsed
		case errors.Is(err, store.ErrExpired):
			reason, apiReason = "expired", reasonCodeExpired
		case !errors.Is(err, store.ErrNotFound):
			return nil, internalError(fmt.Errorf("consume code: %w", err))
		}
		s.audit(ctx, auditEvent{Type: auditCodeRejected, Message: "code " + reason, Detail: map[string]any{"code": reason}})
		s.metrics.codeRejected.WithLabelValues(reason).Inc()
		return nil, apiError(codes.InvalidArgument, apiReason, fmt.Sprintf("code is %s: codes work once, within %s", reason, codeTTL))
	}
	sess := red.Session
	if err := sessionUsable(sess, now); err != nil {
		return nil, err
	}
	if len(red.Refresh.Hash) == 0 {
		return nil, internalError(fmt.Errorf("redeem code: no refresh token stored for session %q", sess.ID))
	}
	ident, err := sessionIdentity(sess)
	if err != nil {
		return nil, internalError(err)
	}
	set, err := s.tokenSet(ctx, ident, sess.ExpiresAt, rt.Token, red.Refresh.ExpiresAt)
	if err != nil {
		return nil, err
	}
	pending := decodeCodeData(red.Code.Data)
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
		if cerr := s.completeLogin(ctx, res, nil, nil); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		reason := s.rejectLogin(ctx, c.msg, err)
		return nil, rejectionStatus(reason, err)
	}
	sess, _, err := s.createSession(ctx, res, nil)
	var se *saml.Error
	if errors.As(err, &se) {
		reason := s.rejectLogin(ctx, c.msg, err)
		return nil, rejectionStatus(reason, err)
	}
	if err != nil {
		return nil, internalError(err)
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
