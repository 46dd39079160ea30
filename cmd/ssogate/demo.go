package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// demo is the product backend of `ssogate dev`: a page at / that logs in
// through ssogate over gRPC, exactly as a real backend would, and shows what
// comes back. It keeps its tokens server-side, keyed by a random cookie.
type demo struct {
	login ssogatev1.LoginServiceClient
	// connections makes rehearsal connections and their setup links.
	connections  ssogatev1.ConnectionServiceClient
	baseURL      string
	connectionID string

	mu       sync.Mutex
	sessions map[string]*demoSession
}

type demoSession struct {
	lastSetup string // the connection the last setup link was made for
	state     string // expected on the callback
	tokens    *ssogatev1.TokenSet
	message   string // result of the last action
}

const demoCookie = "ssogate_demo"

func newDemo(login ssogatev1.LoginServiceClient, baseURL, connectionID string) *demo {
	return &demo{login: login, baseURL: baseURL, connectionID: connectionID, sessions: map[string]*demoSession{}}
}

func (d *demo) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", d.home)
	mux.HandleFunc("POST /demo/login", d.start)
	mux.HandleFunc("GET /demo/callback", d.callback)
	mux.HandleFunc("POST /demo/refresh", d.refresh)
	mux.HandleFunc("POST /demo/validate", d.validate)
	mux.HandleFunc("POST /demo/logout", d.logout)
	mux.HandleFunc("POST /demo/setup", d.setup)
}

// setup makes a DRAFT connection, as a vendor's onboarding would for a new
// customer, and sends the browser to its setup link: the IT admin's side
// of the journey, with the built-in IdP playing the customer's.
func (d *demo) setup(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) || d.connections == nil {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	s := d.session(w, r)
	id := "customer-" + strings.Map(func(c rune) rune {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			return c
		}
		return 'x'
	}, strings.ToLower(randomToken()[:6]))
	_, err := d.connections.CreateConnection(r.Context(), &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: id, TenantId: id, DisplayName: "A new customer (" + id + ")",
		AllowedReturnUrls: []string{d.baseURL + "/"}, DefaultReturnUrl: d.baseURL + "/",
	}})
	if err != nil {
		s.message = "CreateConnection failed: " + status.Convert(err).Message()
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	link, err := d.connections.CreateSetupLink(r.Context(), &ssogatev1.CreateSetupLinkRequest{ConnectionId: id})
	if err != nil {
		s.message = "CreateSetupLink failed: " + status.Convert(err).Message()
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.message = "Made DRAFT connection " + id + "; once its setup is done, sign in through it below."
	s.lastSetup = id
	http.Redirect(w, r, link.SetupLink.Url, http.StatusSeeOther)
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// session returns the browser's demo session, creating one if needed.
func (d *demo) session(w http.ResponseWriter, r *http.Request) *demoSession {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, err := r.Cookie(demoCookie); err == nil {
		if s, ok := d.sessions[c.Value]; ok {
			return s
		}
	}
	id := randomToken()
	s := &demoSession{}
	d.sessions[id] = s
	http.SetCookie(w, &http.Cookie{Name: demoCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return s
}

// sameOrigin refuses cross-site form posts (the demo's CSRF defence).
func sameOrigin(r *http.Request) bool {
	return http.NewCrossOriginProtection().Check(r) == nil
}

func (d *demo) start(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	s := d.session(w, r)
	s.state = randomToken()
	req := &ssogatev1.StartLoginRequest{ReturnTo: d.baseURL + "/demo/callback", State: s.state}
	if conn := strings.TrimSpace(r.PostFormValue("connection")); conn != "" {
		req.ConnectionId = conn
	} else if email := strings.TrimSpace(r.PostFormValue("email")); email != "" {
		req.Email = email
	} else {
		req.ConnectionId = d.connectionID
	}
	req.ForceAuthn = r.PostFormValue("force") == "on"
	resp, err := d.login.StartLogin(r.Context(), req)
	if err != nil {
		s.message = "StartLogin failed: " + status.Convert(err).Message()
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, resp.RedirectUrl, http.StatusSeeOther)
}

func (d *demo) callback(w http.ResponseWriter, r *http.Request) {
	s := d.session(w, r)
	q := r.URL.Query()
	if s.state == "" || q.Get("state") != s.state {
		s.message = "The callback's state does not match the login this browser started."
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.state = ""
	resp, err := d.login.ExchangeCode(r.Context(), &ssogatev1.ExchangeCodeRequest{Code: q.Get("code")})
	if err != nil {
		s.message = "ExchangeCode failed: " + status.Convert(err).Message()
	} else {
		s.tokens, s.message = resp.TokenSet, "Signed in: the code was exchanged for tokens."
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *demo) refresh(w http.ResponseWriter, r *http.Request) {
	s := d.session(w, r)
	if sameOrigin(r) && s.tokens != nil {
		resp, err := d.login.RefreshToken(r.Context(), &ssogatev1.RefreshTokenRequest{RefreshToken: s.tokens.RefreshToken})
		if err != nil {
			s.message = "RefreshToken failed: " + status.Convert(err).Message()
		} else {
			s.tokens, s.message = resp.TokenSet, "Refreshed: new access token, and the refresh token rotated."
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *demo) validate(w http.ResponseWriter, r *http.Request) {
	s := d.session(w, r)
	if sameOrigin(r) && s.tokens != nil {
		resp, err := d.login.ValidateToken(r.Context(), &ssogatev1.ValidateTokenRequest{AccessToken: s.tokens.AccessToken})
		switch {
		case err != nil:
			s.message = "ValidateToken failed: " + status.Convert(err).Message()
		case resp.Valid:
			s.message = "ValidateToken: valid."
		default:
			s.message = "ValidateToken: not valid (" + resp.Reason + ")."
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *demo) logout(w http.ResponseWriter, r *http.Request) {
	s := d.session(w, r)
	if !sameOrigin(r) || s.tokens == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	resp, err := d.login.StartLogout(r.Context(), &ssogatev1.StartLogoutRequest{AccessToken: s.tokens.AccessToken, ReturnTo: d.baseURL + "/"})
	if err != nil {
		s.message = "StartLogout failed: " + status.Convert(err).Message()
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	// Keep the tokens so that the page can show they no longer work.
	s.message = "Logged out: the session is revoked; Validate and Refresh now fail."
	target := resp.RedirectUrl
	if target == "" {
		target = "/"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// decodeJWT pretty-prints a JWT's header and claims (no verification: the
// page shows what a backend would receive).
func decodeJWT(tok string) (header, claims string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", ""
	}
	pretty := func(seg string) string {
		raw, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			return ""
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return ""
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		return string(out)
	}
	return pretty(parts[0]), pretty(parts[1])
}

func (d *demo) home(w http.ResponseWriter, r *http.Request) {
	s := d.session(w, r)
	data := struct {
		Message        string
		Tokens         *ssogatev1.TokenSet
		Header, Claims string
		Expires        string
		LastSetup      string
		Base           string
	}{Message: s.message, LastSetup: s.lastSetup, Base: d.baseURL}
	if s.tokens != nil {
		data.Tokens = s.tokens
		data.Header, data.Claims = decodeJWT(s.tokens.AccessToken)
		data.Expires = s.tokens.ExpiresAt.AsTime().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'")
	if err := demoPage.Execute(w, data); err != nil {
		fmt.Fprintln(w, "template error")
	}
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssogate dev</title>
<style>
body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}
pre{background:#f4f4f4;padding:.75rem;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
form{display:inline-block;margin-right:.5rem}.msg{background:#eef6ff;border:1px solid #9cc3ee;padding:.5rem}
</style>
</head>
<body>
<main>
<h1>ssogate dev</h1>
<p>This page is a product backend: it calls ssogate over gRPC with the dev API key.
The built-in IdP knows <b>alice</b> / alice (groups eng, admins) and <b>bob</b> / bob (group sales).</p>
{{if .Message}}<p class="msg" id="message">{{.Message}}</p>{{end}}
{{if .Tokens}}
<h2>Signed in</h2>
<table id="identity">
<tr><th>subject</th><td id="sub">{{.Tokens.Identity.Subject}}</td></tr>
<tr><th>email</th><td id="email">{{.Tokens.Identity.Email}}</td></tr>
<tr><th>name</th><td>{{.Tokens.Identity.Name}}</td></tr>
<tr><th>groups</th><td id="groups">{{range .Tokens.Identity.Groups}}{{.}} {{end}}</td></tr>
<tr><th>roles</th><td id="roles">{{range .Tokens.Identity.Roles}}{{.}} {{end}}</td></tr>
<tr><th>session</th><td id="sid">{{.Tokens.Identity.SessionId}}</td></tr>
<tr><th>access token expires</th><td>{{.Expires}}</td></tr>
</table>
<h3>Access token (decoded, as a backend receives it)</h3>
<pre id="jwt-header">{{.Header}}</pre>
<pre id="jwt-claims">{{.Claims}}</pre>
<form method="post" action="/demo/validate"><button id="validate">Validate</button></form>
<form method="post" action="/demo/refresh"><button id="refresh">Refresh</button></form>
<form method="post" action="/demo/logout"><button id="logout">Log out (SLO)</button></form>
{{end}}
<h2>Sign in</h2>
<form method="post" action="/demo/login">
<label>Work email <input name="email" id="email-input" value="alice@example.com"></label>
<label><input type="checkbox" name="force"> force re-authentication</label>
<button id="login">Sign in with SSO</button>
</form>
{{if .LastSetup}}<form method="post" action="/demo/login">
<input type="hidden" name="connection" value="{{.LastSetup}}">
<button id="login-setup">Sign in through {{.LastSetup}}</button>
</form>{{end}}
<h2>Rehearse a customer's setup</h2>
<p>Make a new DRAFT connection, as your onboarding would for a new customer, and open its setup link: you play the customer's IT admin,
and the built-in IdP plays their IdP (it trusts every connection here). Give the portal <code>{{.Base}}/dev/idp/metadata</code>
(or <code>/dev/idp/stale-metadata</code> first, to see a failing test explained).</p>
<form method="post" action="/demo/setup"><button id="new-setup">New connection and setup link</button></form>
</main>
</body>
</html>
`))
