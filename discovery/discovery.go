// Package discovery serves what off-the-shelf resource servers look for:
// the issuer's discovery document at /.well-known/openid-configuration
// (the shape Kubernetes serves for its service-account issuer: issuer,
// jwks_uri, signing algorithms) and RFC 7662 token introspection at
// POST /oauth2/introspect.
//
// The document names only what the issuer does: there is no authorization
// or token endpoint, since tokens are obtained through the API. The
// introspection endpoint authenticates its caller (an API key, as Bearer
// or as the client_secret_basic password) through the Authorize function
// it is given, and answers an inactive token with {"active":false} and
// nothing else, whatever made it inactive.
package discovery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Config is what the routes need from the issuer.
type Config struct {
	// Issuer is the tokens' iss; the discovery document lives at
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// BaseURL is where these routes and the JWKS are reached from outside.
	BaseURL string
	// Algorithms lists the JWS algorithms of the published keys.
	Algorithms func(ctx context.Context) ([]string, error)
	// Authorize checks the caller's credential (an API key) for
	// introspection; its error is shown to the caller.
	Authorize func(ctx context.Context, key string) error
	// Introspect verifies a token, revocation included, and returns its
	// claims; active false for any token that is not valid now.
	Introspect func(ctx context.Context, token string) (claims map[string]any, active bool, err error)
}

// Handler serves the two routes.
type Handler struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("discovery: Issuer is required")
	case cfg.BaseURL == "":
		return nil, errors.New("discovery: BaseURL is required")
	case cfg.Algorithms == nil || cfg.Authorize == nil || cfg.Introspect == nil:
		return nil, errors.New("discovery: Algorithms, Authorize and Introspect are required")
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Handler{cfg: cfg}, nil
}

// Routes registers GET /.well-known/openid-configuration and POST
// /oauth2/introspect.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/openid-configuration", h.configuration)
	mux.HandleFunc("POST /oauth2/introspect", h.introspect)
}

// Document is the discovery document.
type Document struct {
	Issuer                string   `json:"issuer"`
	JWKSURI               string   `json:"jwks_uri"`
	SubjectTypes          []string `json:"subject_types_supported"`
	SigningAlgorithms     []string `json:"id_token_signing_alg_values_supported"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	IntrospectionAuth     []string `json:"introspection_endpoint_auth_methods_supported"`
}

func (h *Handler) configuration(w http.ResponseWriter, r *http.Request) {
	algs, err := h.cfg.Algorithms(r.Context())
	if err != nil {
		http.Error(w, "signing keys unavailable", http.StatusServiceUnavailable)
		return
	}
	doc := Document{
		Issuer:  h.cfg.Issuer,
		JWKSURI: h.cfg.BaseURL + "/.well-known/jwks.json",
		// sub is the same whoever asks: public, not pairwise.
		SubjectTypes:          []string{"public"},
		SigningAlgorithms:     algs,
		IntrospectionEndpoint: h.cfg.BaseURL + "/oauth2/introspect",
		IntrospectionAuth:     []string{"client_secret_basic"},
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, doc)
}

// maxIntrospectBody bounds the form: a token and a hint.
const maxIntrospectBody = 64 << 10

func (h *Handler) introspect(w http.ResponseWriter, r *http.Request) {
	keys := credentials(r)
	if len(keys) == 0 {
		h.refuse(w, http.StatusUnauthorized, "invalid_client", `send an API key with the login scope as "Authorization: Bearer <key>" or as the Basic password`)
		return
	}
	var err error
	for _, key := range keys {
		if err = h.cfg.Authorize(r.Context(), key); err == nil {
			break
		}
	}
	if err != nil {
		h.refuse(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxIntrospectBody)
	if err := r.ParseForm(); err != nil {
		h.refuse(w, http.StatusBadRequest, "invalid_request", "the body must be an application/x-www-form-urlencoded form of at most 64 KiB")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		h.refuse(w, http.StatusBadRequest, "invalid_request", "the form field token is required")
		return
	}
	claims, active, err := h.cfg.Introspect(r.Context(), tok)
	if err != nil {
		h.refuse(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be checked now; retry")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if !active {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := make(map[string]any, len(claims)+2)
	for k, v := range claims {
		out[k] = v
	}
	out["active"] = true
	out["token_type"] = "Bearer"
	writeJSON(w, http.StatusOK, out)
}

// credentials takes the API key from a Bearer header or from Basic
// authentication's password (client_secret_basic; the user name is not
// checked: the key alone names its holder). RFC 6749 2.3.1 form-encodes
// the password before Basic, as OAuth libraries do; curl -u does not, so
// the password is tried decoded and as sent.
func credentials(r *http.Request) []string {
	h := r.Header.Get("Authorization")
	if v, ok := strings.CutPrefix(h, "Bearer "); ok {
		if v = strings.TrimSpace(v); v != "" {
			return []string{v}
		}
		return nil
	}
	_, pass, ok := r.BasicAuth()
	if !ok || pass == "" {
		return nil
	}
	if dec, err := url.QueryUnescape(pass); err == nil && dec != pass {
		return []string{dec, pass}
	}
	return []string{pass}
}

func (h *Handler) refuse(w http.ResponseWriter, code int, errCode, desc string) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="ssogate", Bearer realm="ssogate", error=%q`, errCode))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, map[string]string{"error": errCode, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// JWTClaims decodes the payload of a compact JWS whose signature the caller
// has already verified.
func JWTClaims(raw string) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	return claims, nil
}
