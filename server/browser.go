package server

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"sort"
	"time"

	"google.golang.org/grpc/status"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

// browserRoutes registers the routes browsers and IdPs reach without an API
// key.
func (s *Server) browserRoutes(mux *http.ServeMux) {
	mux.Handle("GET /saml/{connection_id}/login", s.limited(routeLogin, s.handleBrowserLogin))
	mux.Handle("POST /saml/{connection_id}/acs", s.validating(routeACS, s.handleACS))
	mux.HandleFunc("GET /saml/{connection_id}/authn/{request_id}", s.handlePostAuthn)
	mux.Handle("GET /saml/{connection_id}/slo", s.validating(routeSLO, s.handleSLO))
	mux.Handle("POST /saml/{connection_id}/slo", s.validating(routeSLO, s.handleSLO))
	mux.HandleFunc("GET /saml/{connection_id}/metadata", s.handleMetadata)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
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
	case saml.ReasonPolicyDenied:
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
	code, msg := endUserMessage(reason)
	s.errorPage(w, r, code, msg)
}

// handleSLO serves Single Logout in both directions: an IdP's
// LogoutRequest (revoke the NameID's sessions, answer with a
// LogoutResponse) and the IdP's LogoutResponse to ours (send the browser on).
func (s *Server) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.SAML.MaxBodyBytes)+4096)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusRequestEntityTooLarge, "The sign-out message was too large or malformed.")
		return
	}
	c, err := s.registry.get(ctx, r.PathValue("connection_id"))
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "This sign-out address is not known.")
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
		s.errorPage(w, r, http.StatusBadRequest, "This sign-out message is empty.")
	}
}

func (s *Server) idpLogout(w http.ResponseWriter, r *http.Request, c *conn, in saml.Inbound) {
	ctx := r.Context()
	req, err := c.sp.ParseLogoutRequest(ctx, in, replayCache{s})
	if err != nil {
		s.rejectLogout(ctx, c.msg, err)
		s.errorPage(w, r, http.StatusBadRequest, "The sign-out request could not be accepted.")
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
			s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side.")
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
	resp, err := c.sp.NewLogoutResponse(req.ID, statusURI, req.RelayState)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side.")
		return
	}
	setPageSecurityHeaders(w.Header())
	if req.Binding == saml.BindingHTTPPost || resp.RedirectURL == "" {
		form, err := resp.PostForm()
		if err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side.")
			return
		}
		writePostForm(w, form)
		return
	}
	http.Redirect(w, r, resp.RedirectURL, http.StatusFound)
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
		s.errorPage(w, r, http.StatusBadRequest, "The sign-out answer could not be accepted. You are signed out of this application.")
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

var errorPageTemplate = template.Must(template.New("error").Parse(pageHead + `<h1>We could not sign you in</h1>
<p>{{.Message}}</p>
<p>If this keeps happening, contact your IT administrator and give them this reference:
<code id="correlation-id">{{.CorrelationID}}</code></p>
` + pageFoot))

var infoPageTemplate = template.Must(template.New("info").Parse(pageHead + `<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
` + pageFoot))

const pageHead = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssogate</title>
<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}code,pre{background:#f2f2f2;padding:.1rem .3rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}.ok{color:#176117}.bad{color:#a11}</style>
</head>
<body>
<main>
`

const pageFoot = `</main>
</body>
</html>
`

// setPageSecurityHeaders makes a page unframable, uncached and unable to
// load anything but its own inline style.
func setPageSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// errorPage answers the end user with a generic page that carries the
// request id as correlation id; details belong in the audit log.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, message string) {
	setPageSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = errorPageTemplate.Execute(w, struct{ Message, CorrelationID string }{message, requestID(r.Context())})
}

func (s *Server) infoPage(w http.ResponseWriter, r *http.Request, title, message string) {
	setPageSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = infoPageTemplate.Execute(w, struct{ Title, Message string }{title, message})
}

var testPageTemplate = template.Must(template.New("test").Parse(pageHead + `<h1>Test login: {{if .Denied}}<span class="bad">verified, but the access policy denies</span>{{else}}<span class="ok">success</span>{{end}}</h1>
<p>Connection <code>{{.ConnectionID}}</code> verified this response from your IdP. Nothing was issued: this was a test login.
When this page shows what you expect, activate the connection.</p>
<h2>Subject</h2>
<table>
<tr><th>NameID</th><td id="nameid">{{.NameID}}</td></tr>
<tr><th>NameID format</th><td>{{.NameIDFormat}}</td></tr>
<tr><th>SessionIndex</th><td>{{.SessionIndex}}</td></tr>
<tr><th>AuthnContextClassRef</th><td>{{.ACR}}</td></tr>
<tr><th>AuthnInstant</th><td>{{.AuthnInstant}}</td></tr>
</table>
<h2>Attributes as received</h2>
<table id="attributes">{{range .Attributes}}<tr><th>{{.Name}}</th><td>{{range .Values}}{{.}}<br>{{end}}</td></tr>{{else}}<tr><td>none</td></tr>{{end}}</table>
<h2>Attributes as mapped</h2>
<table id="mapped">
<tr><th>email</th><td>{{.Mapped.Email}}</td></tr>
<tr><th>name</th><td>{{.Mapped.Name}}</td></tr>
<tr><th>given_name</th><td>{{.Mapped.GivenName}}</td></tr>
<tr><th>family_name</th><td>{{.Mapped.FamilyName}}</td></tr>
<tr><th>groups</th><td>{{range .Mapped.Groups}}{{.}}<br>{{end}}</td></tr>
</table>
<h2>Signature and clock</h2>
<table>
<tr><th>Response signed</th><td>{{.Diag.ResponseSigned}}</td></tr>
<tr><th>Assertion signed</th><td>{{.Diag.AssertionSigned}}</td></tr>
<tr><th>Encrypted</th><td>{{.Diag.Encrypted}}</td></tr>
<tr><th>Signature algorithm</th><td>{{.Diag.SignatureAlgorithm}}</td></tr>
<tr><th>Digest algorithm</th><td>{{.Diag.DigestAlgorithm}}</td></tr>
<tr><th>Certificate</th><td>{{.Diag.CertificateSubject}} (expires {{.CertExpiry}})</td></tr>
<tr><th>IssueInstant</th><td>{{.Diag.IssueInstant}}</td></tr>
<tr><th>Valid</th><td>{{.Diag.NotBefore}} to {{.Diag.NotOnOrAfter}}</td></tr>
<tr><th>Clock skew allowed</th><td>{{.Diag.ClockSkew}}</td></tr>
<tr><th>Our clock</th><td>{{.Now}}</td></tr>
</table>
<h2>Access policy</h2>
<p id="policy">{{if .Denied}}<span class="bad">Denied:</span> {{.Denied}}{{else}}<span class="ok">Admitted</span> with roles: {{range .Roles}}<code>{{.}}</code> {{else}}none{{end}}{{end}}</p>
<p>Reference: <code>{{.CorrelationID}}</code></p>
` + pageFoot))

type attr struct {
	Name   string
	Values []string
}

// testLoginPage shows an IdP admin what their IdP sent and what ssogate
// made of it, instead of issuing a code.
func (s *Server) testLoginPage(w http.ResponseWriter, r *http.Request, res *loginResult) {
	id := res.identity
	var attrs []attr
	for name, v := range id.Attributes {
		attrs = append(attrs, attr{name, v})
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Name < attrs[j].Name })
	denied := ""
	if res.denied != nil {
		var se *saml.Error
		if errors.As(res.denied, &se) {
			denied = se.Message
		}
	}
	s.audit(r.Context(), auditEvent{Type: auditLoginTested, ConnectionID: res.conn.msg.Id, TenantID: res.conn.msg.TenantId,
		Message: denied, Detail: map[string]any{"admitted": denied == ""}})
	s.metrics.acsOutcomes.WithLabelValues(res.conn.msg.Id, "TEST").Inc()
	setPageSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = testPageTemplate.Execute(w, map[string]any{
		"ConnectionID": res.conn.msg.Id, "NameID": id.NameID, "NameIDFormat": id.NameIDFormat,
		"SessionIndex": id.SessionIndex, "ACR": id.AuthnContextClassRef, "AuthnInstant": id.AuthnInstant.UTC().Format(time.RFC3339),
		"Attributes": attrs, "Mapped": id.Mapped, "Diag": id.Diagnostics,
		"CertExpiry": id.Diagnostics.CertificateNotAfter.UTC().Format(time.RFC3339),
		"Now":        s.now().UTC().Format(time.RFC3339), "Denied": denied, "Roles": res.roles, "CorrelationID": requestID(r.Context()),
	})
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
