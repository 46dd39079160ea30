package server

import (
	"html/template"
	"net/http"
)

// browserRoutes registers the routes browsers and IdPs reach without an API
// key. Until the login issue lands they answer 501 with the plain error
// page, after reading (and bounding) what was posted.
func (s *Server) browserRoutes(mux *http.ServeMux) {
	notYet := func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.SAML.MaxBodyBytes))
			if err := r.ParseForm(); err != nil {
				s.errorPage(w, r, http.StatusRequestEntityTooLarge, "The sign-in message was too large or malformed.")
				return
			}
		}
		s.errorPage(w, r, http.StatusNotImplemented, "Single sign-on is not available on this server yet.")
	}
	mux.HandleFunc("GET /saml/{connection_id}/login", notYet)
	mux.HandleFunc("POST /saml/{connection_id}/acs", notYet)
	mux.HandleFunc("GET /saml/{connection_id}/slo", notYet)
	mux.HandleFunc("POST /saml/{connection_id}/slo", notYet)
	mux.HandleFunc("GET /saml/{connection_id}/metadata", notYet)
	mux.HandleFunc("GET /.well-known/jwks.json", notYet)
}

var errorPageTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in problem</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}code{background:#f2f2f2;padding:.1rem .3rem}</style>
</head>
<body>
<main>
<h1>We could not sign you in</h1>
<p>{{.Message}}</p>
<p>If this keeps happening, contact your IT administrator and give them this reference:
<code>{{.CorrelationID}}</code></p>
</main>
</body>
</html>
`))

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
