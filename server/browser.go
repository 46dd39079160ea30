package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/page"
	"github.com/ssogate/ssogate/portal"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
)

// browserRoutes registers the routes browsers and IdPs reach without an API
// key.
func (s *Server) browserRoutes(mux *http.ServeMux) {
	mux.Handle("GET /saml/{connection_id}/login", s.limited(routeLogin, s.handleBrowserLogin))
	mux.Handle("POST /saml/{connection_id}/acs", s.validating(routeACS, s.handleACS))
	mux.Handle("GET /saml/{connection_id}/authn/{request_id}", s.limited(routeAuthn, s.handlePostAuthn))
	mux.Handle("POST /saml/{connection_id}/continue", s.limited(routeContinue, s.handleContinue))
	mux.Handle("GET /saml/{connection_id}/slo", s.validating(routeSLO, s.handleSLO))
	mux.Handle("POST /saml/{connection_id}/slo", s.validating(routeSLO, s.handleSLO))
	mux.HandleFunc("GET /saml/{connection_id}/metadata", s.handleMetadata)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	s.portal.Register(mux)
}

// handleBrowserLogin starts a login from a link: 302 to the IdP.
func (s *Server) handleBrowserLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	resp, err := loginService{s: s}.StartLogin(r.Context(), &ssogatev1.StartLoginRequest{
		ConnectionId: r.PathValue("connection_id"), ReturnTo: q.Get("return_to"), State: q.Get("state"),
		Test: q.Get("test") == "1" || q.Get("test") == "true",
	})
	if err != nil {
		st := status.Convert(err)
		if test := q.Get("test"); (test == "1" || test == "true") && st.Code() == codes.FailedPrecondition {
			// A refused test login is for the admin: say what to do.
			portal.RenderTestResult(s.pages, w, portal.TestResult{ConnectionID: r.PathValue("connection_id"),
				Reason: saml.ReasonConnectionInactive, Message: st.Message(), CorrelationID: requestID(r.Context()), Now: s.now()})
			return
		}
		s.errorPage(w, r, httpStatusOf(st.Code().String()), "This sign-in link cannot be used: "+st.Message())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, resp.RedirectUrl, http.StatusFound)
}

func httpStatusOf(code string) int {
	switch code {
	case "NotFound":
		return http.StatusNotFound
	case "InvalidArgument", "FailedPrecondition":
		return http.StatusBadRequest
	case "Unavailable":
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// endUserMessage is the generic text an end user sees for a rejection; the
// detail goes to the audit log only.
func endUserMessage(reason saml.Reason) (int, string) {
	switch reason {
	case saml.ReasonConnectionNotFound:
		return http.StatusNotFound, "This sign-in address is not known."
	case saml.ReasonConnectionInactive:
		return http.StatusForbidden, "Single sign-on is not enabled for your organisation yet."
	case saml.ReasonUserDeprovisioned:
		return http.StatusForbidden, "Your account has been deactivated by your organisation. Ask your IT administrator if you need access again."
	case saml.ReasonUserNotProvisioned:
		return http.StatusForbidden, "Your account has not been set up for this application yet. Ask your IT administrator to assign it to you."
	case saml.ReasonPolicyDenied, saml.ReasonGroupOverage:
		return http.StatusForbidden, "Your account is not allowed to use this application. Ask your IT administrator for access."
	case saml.ReasonEmailDomainMismatch:
		return http.StatusForbidden, "Your identity provider sent an email address this application does not accept for your organisation. Ask your IT administrator."
	case saml.ReasonInternal:
		return http.StatusInternalServerError, "Something went wrong on our side. Please try again."
	case saml.ReasonBodyTooLarge:
		return http.StatusRequestEntityTooLarge, "The sign-in message was too large."
	default:
		return http.StatusBadRequest, "The sign-in message from your identity provider could not be accepted."
	}
}

// handleACS is the Assertion Consumer Service (HTTP-POST binding).
func (s *Server) handleACS(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("connection_id")
	// The form holds SAMLResponse, RelayState and little else; bound it
	// before parsing (the SAMLResponse bound itself is saml's).
	r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.SAML.MaxBodyBytes)+4096)
	if err := r.ParseForm(); err != nil {
		s.acsFailure(w, r, nil, saml.Rejectf(saml.ReasonBodyTooLarge, "the ACS form body exceeds %d bytes or is malformed", s.cfg.SAML.MaxBodyBytes))
		return
	}
	c, err := s.registry.get(ctx, id)
	if errors.Is(err, errConnectionNotFound) {
		s.acsFailure(w, r, nil, saml.Rejectf(saml.ReasonConnectionNotFound, "a response was posted to the ACS of unknown connection %q", id))
		return
	}
	if err != nil {
		s.acsFailure(w, r, nil, err)
		return
	}
	res, err := s.verifyLogin(ctx, c, r.PostForm.Get("SAMLResponse"))
	if err != nil {
		s.acsFailure(w, r, c.msg, err)
		return
	}
	if res.pending != nil && res.pending.Test {
		s.testLoginPage(w, r, res)
		return
	}
	// Where the browser goes is settled before anything is issued.
	returnTo, state := c.msg.DefaultReturnUrl, ""
	if res.pending != nil {
		returnTo, state = res.pending.ReturnTo, res.pending.State
	}
	if returnTo == "" {
		s.acsFailure(w, r, c.msg, saml.Rejectf(saml.ReasonConnectionInactive, "IdP-initiated login on connection %q, which has no default_return_url", c.msg.Id))
		return
	}
	// An unsolicited response may be an attacker's own, posted cross-site
	// (login CSRF): the user confirms on our page before anything is issued.
	if res.pending == nil && wantsConsent(c.msg) {
		s.askConsent(w, r, res, returnTo)
		return
	}
	s.issueLogin(w, r, res, returnTo, state)
}

// issueLogin creates the session and its code and sends the browser to
// returnTo with them.
func (s *Server) issueLogin(w http.ResponseWriter, r *http.Request, res *loginResult, returnTo, state string) {
	ctx := r.Context()
	c := res.conn
	sess, err := s.createSession(ctx, res)
	if err != nil {
		s.acsFailure(w, r, c.msg, err)
		return
	}
	code, err := s.mintCode(ctx, sess.ID, c.msg.Id, codeData{ReturnTo: returnTo, State: state})
	if err != nil {
		s.acsFailure(w, r, c.msg, err)
		return
	}
	setPageSecurityHeaders(w.Header())
	http.Redirect(w, r, withQuery(returnTo, map[string]string{"code": code, "state": state}), http.StatusSeeOther)
}

func (s *Server) acsFailure(w http.ResponseWriter, r *http.Request, c *ssogatev1.Connection, err error) {
	reason := s.rejectLogin(r.Context(), c, err)
	if s.testRefusal(w, r, c, reason, err, r.PostForm.Get("SAMLResponse")) {
		return
	}
	code, msg := endUserMessage(reason)
	s.errorPageBack(w, r, code, msg, backURL(c))
}

// handleSLO serves Single Logout in both directions: an IdP's
// LogoutRequest (revoke the NameID's sessions, answer with a
// LogoutResponse) and the IdP's LogoutResponse to ours (send the browser on).
func (s *Server) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.SAML.MaxBodyBytes)+4096)
	if err := r.ParseForm(); err != nil {
		s.signOutErrorPage(w, r, http.StatusRequestEntityTooLarge, "The sign-out message was too large or malformed.")
		return
	}
	c, err := s.registry.get(ctx, r.PathValue("connection_id"))
	if err != nil {
		s.signOutErrorPage(w, r, http.StatusNotFound, "This sign-out address is not known.")
		return
	}
	in := saml.PostMessage(r.PostForm)
	if r.Method == http.MethodGet {
		in = saml.RedirectMessage(r.URL.RawQuery)
	}
	switch {
	case r.Form.Get("SAMLRequest") != "":
		s.idpLogout(w, r, c, in)
	case r.Form.Get("SAMLResponse") != "":
		s.logoutAnswered(w, r, c, in)
	default:
		s.signOutErrorPage(w, r, http.StatusBadRequest, "This sign-out message is empty.")
	}
}

func (s *Server) idpLogout(w http.ResponseWriter, r *http.Request, c *conn, in saml.Inbound) {
	ctx := r.Context()
	req, err := c.sp.ParseLogoutRequest(ctx, in, replayCache{s})
	if err != nil {
		s.rejectLogout(ctx, c.msg, err)
		s.signOutErrorPage(w, r, http.StatusBadRequest, "The sign-out request could not be accepted.")
		return
	}
	indexes := req.SessionIndexes
	if len(indexes) == 0 {
		indexes = []string{""}
	}
	var ids []string
	for _, idx := range indexes {
		sessions, err := s.store.FindSessions(ctx, c.msg.Id, req.NameID, idx)
		if err != nil {
			s.signOutErrorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side.")
			return
		}
		for _, sess := range sessions {
			if sess.RevokedAt.IsZero() && !sess.CreatedAt.After(req.SessionsBefore) {
				ids = append(ids, sess.ID)
			}
		}
	}
	statusURI := saml.StatusSuccess
	if err := s.revokeSessions(ctx, ids, "idp logout"); err != nil {
		s.log.ErrorContext(ctx, "idp logout", "request_id", requestID(ctx), "error", err)
		statusURI = saml.StatusResponder
	}
	s.audit(ctx, auditEvent{Type: auditLogout, ConnectionID: c.msg.Id, TenantID: c.msg.TenantId,
		Detail: map[string]any{"initiator": "idp", "sessions": len(ids)}})
	// The sessions are revoked (or the revocation failed and the IdP hears
	// so): from here on the browser gets an answer, never a 500 for want of
	// an endpoint. The LogoutResponse goes over the binding the request
	// came by when the IdP has an endpoint for it, else over the other.
	resp, err := c.sp.NewLogoutResponse(req.ID, statusURI, req.RelayState)
	if err != nil {
		s.log.WarnContext(ctx, "idp logout: no LogoutResponse sent", "request_id", requestID(ctx), "connection_id", c.msg.Id, "error", err)
		s.signedOutPage(w, r, statusURI)
		return
	}
	hasPost := c.msg.GetIdentityProvider().GetSloPostUrl() != ""
	usePost := hasPost && (req.Binding == saml.BindingHTTPPost || resp.RedirectURL == "")
	if !usePost && resp.RedirectURL == "" {
		s.signedOutPage(w, r, statusURI)
		return
	}
	setPageSecurityHeaders(w.Header())
	if usePost {
		form, err := resp.PostForm()
		if err != nil {
			s.log.ErrorContext(ctx, "idp logout: LogoutResponse form", "request_id", requestID(ctx), "error", err)
			s.signedOutPage(w, r, statusURI)
			return
		}
		writePostForm(w, form)
		return
	}
	http.Redirect(w, r, resp.RedirectURL, http.StatusFound)
}

// signedOutPage ends an IdP-initiated logout whose answer cannot go back to
// the IdP: the user is told the outcome, on our page.
func (s *Server) signedOutPage(w http.ResponseWriter, r *http.Request, statusURI string) {
	if statusURI != saml.StatusSuccess {
		s.signOutErrorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side while signing you out. Please try again.")
		return
	}
	s.infoPage(w, r, "You are signed out", "You are signed out of this application.")
}

// writePostForm answers with a self-submitting form; the CSP admits its one
// inline script by hash (it also works without script: it has a button).
func writePostForm(w http.ResponseWriter, form []byte) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src "+saml.PostFormScriptHash+"; form-action https: http:; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(form)
}

func (s *Server) logoutAnswered(w http.ResponseWriter, r *http.Request, c *conn, in saml.Inbound) {
	ctx := r.Context()
	resp, err := c.sp.ParseLogoutResponse(ctx, in)
	if err != nil {
		s.rejectLogout(ctx, c.msg, err)
		s.signOutErrorPage(w, r, http.StatusBadRequest, "The sign-out answer could not be accepted. You are signed out of this application.")
		return
	}
	pending, err := s.store.ConsumePendingRequest(ctx, c.msg.Id, resp.InResponseTo, s.now())
	if err == nil && string(pending.Data) == pendingLogout && pending.ReturnTo != "" {
		setPageSecurityHeaders(w.Header())
		http.Redirect(w, r, pending.ReturnTo, http.StatusSeeOther)
		return
	}
	s.infoPage(w, r, "You are signed out", "You are signed out of this application.")
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	c, err := s.registry.get(r.Context(), r.PathValue("connection_id"))
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "This metadata address is not known.")
		return
	}
	md, err := c.sp.Metadata()
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side.")
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Content-Disposition", `inline; filename="`+c.msg.Id+`-sp-metadata.xml"`)
	_, _ = w.Write(md)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	doc, err := s.jwks(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "jwks", "request_id", requestID(r.Context()), "error", err)
		writeText(w, http.StatusServiceUnavailable, "signing keys unavailable\n")
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(doc)
}

// setPageSecurityHeaders makes a response unframable, uncached and unable
// to load anything (redirects and self-submitting forms).
func setPageSecurityHeaders(h http.Header) {
	page.SecurityHeaders(h, "")
}

// errorPage answers the end user with a generic page that carries the
// request id as correlation id; details belong in the audit log.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.errorPageBack(w, r, status, message, "")
}

// signOutErrorPage is errorPage for Single Logout: it says "sign out".
func (s *Server) signOutErrorPage(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.pages.RenderError(w, status, page.Error{Message: message, CorrelationID: requestID(r.Context()), Heading: "We could not sign you out"})
}

// errorPageBack is errorPage with a "back to <product>" link to back.
func (s *Server) errorPageBack(w http.ResponseWriter, r *http.Request, status int, message, back string) {
	s.pages.RenderError(w, status, page.Error{Message: message, CorrelationID: requestID(r.Context()), Back: back})
}

func (s *Server) infoPage(w http.ResponseWriter, r *http.Request, title, message string) {
	s.pages.RenderInfo(w, http.StatusOK, title, message, "")
}

// backURL is where an end user of c goes back to: the origin of its
// default return URL, when it has one.
func backURL(c *ssogatev1.Connection) string {
	if c == nil || c.DefaultReturnUrl == "" {
		return ""
	}
	u, err := url.Parse(c.DefaultReturnUrl)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host + "/"
}

// testLoginPage shows an IdP admin what their IdP sent and what ssogate
// made of it, instead of issuing a code, and records a passing test on the
// connection (activation needs one).
func (s *Server) testLoginPage(w http.ResponseWriter, r *http.Request, res *loginResult) {
	ctx := r.Context()
	denied := ""
	if res.denied != nil {
		var se *saml.Error
		if errors.As(res.denied, &se) {
			denied = se.Message
		}
	}
	s.audit(ctx, auditEvent{Type: auditLoginTested, ConnectionID: res.conn.msg.Id, TenantID: res.conn.msg.TenantId,
		Message: denied, Detail: map[string]any{"admitted": denied == ""}})
	s.metrics.acsOutcomes.WithLabelValues(res.conn.msg.Id, "TEST").Inc()
	if denied == "" {
		s.recordTestPass(ctx, res.conn)
	}
	state := ""
	if res.pending != nil {
		state = res.pending.State
	}
	portal.RenderTestResult(s.pages, w, portal.TestResult{ConnectionID: res.conn.msg.Id, State: state, Identity: res.identity,
		Roles: res.roles, Denied: denied, CorrelationID: requestID(ctx), Now: s.now()})
}

// recordTestPass stamps last_test_pass_time, only if the connection is
// still the version the test ran against: a test of settings that changed
// meanwhile does not count.
func (s *Server) recordTestPass(ctx context.Context, c *conn) {
	next := proto.Clone(c.msg).(*ssogatev1.Connection)
	next.LastTestPassTime = timestamppb.New(s.now())
	raw, err := marshalConnection(next)
	if err == nil {
		_, err = s.store.UpdateConnection(ctx, store.Connection{ID: next.Id, TenantID: next.TenantId, State: next.State.String(),
			Domains: next.EmailDomains, Config: raw}, c.version)
	}
	if err != nil && !errors.Is(err, store.ErrConflict) {
		s.log.ErrorContext(ctx, "record passing test login", "request_id", requestID(ctx), "connection_id", next.Id, "error", err)
	}
}

// testRefusal renders a refused test login for its admin: reason, message
// and fix. It reports false when the response does not belong to a test
// login, which then gets the end user's generic page.
func (s *Server) testRefusal(w http.ResponseWriter, r *http.Request, c *ssogatev1.Connection, reason saml.Reason, err error, samlResponse string) bool {
	if c == nil || samlResponse == "" {
		return false
	}
	// The request id is unverified here: it only chooses which page
	// explains the refusal, and a test request's id is known only to the
	// admin's browser.
	id := saml.PeekInResponseTo(samlResponse, s.cfg.SAML.MaxBodyBytes, s.cfg.SAML.MaxXMLBytes)
	if id == "" {
		return false
	}
	p, perr := s.store.GetPendingRequest(r.Context(), c.Id, id)
	if perr != nil || !p.Test {
		return false
	}
	msg := "internal error"
	var se *saml.Error
	if errors.As(err, &se) {
		msg = se.Message
	}
	portal.RenderTestResult(s.pages, w, portal.TestResult{ConnectionID: c.Id, State: p.State, Reason: reason, Message: msg,
		CorrelationID: requestID(r.Context()), Now: s.now()})
	return true
}

// handlePostAuthn serves the self-submitting form of a pending
// AuthnRequest for an IdP that takes the HTTP-POST binding only. The page
// holds nothing secret (the same request would otherwise ride in a URL);
// it is served until the request is answered or expires.
func (s *Server) handlePostAuthn(w http.ResponseWriter, r *http.Request) {
	p, err := s.store.GetPendingRequest(r.Context(), r.PathValue("connection_id"), r.PathValue("request_id"))
	if err != nil || !p.ConsumedAt.IsZero() || !s.now().Before(p.ExpiresAt) || !bytes.HasPrefix(p.Data, []byte("<")) {
		s.errorPage(w, r, http.StatusNotFound, "This sign-in link has expired. Please start again.")
		return
	}
	setPageSecurityHeaders(w.Header())
	writePostForm(w, p.Data)
}
