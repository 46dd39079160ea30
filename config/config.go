// Package config owns ssogate's configuration: one Config struct, loaded
// from a YAML file, then SSOGATE_* environment variables, then command-line
// flags (later sources win), and validated in one place. A validation error
// names the setting the way the operator wrote it (the YAML key, the
// environment variable or the flag), so a bad value is found at once.
// Secrets are never printed: Redacted returns a copy safe to log.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of `ssogate serve`.
type Config struct {
	// HTTPAddr is the browser and operator listener (ACS, metadata, SLO,
	// JWKS, health, metrics, REST gateway).
	HTTPAddr string `yaml:"http_addr"`
	// GRPCAddr is the gRPC listener.
	GRPCAddr string `yaml:"grpc_addr"`
	// ExternalURL is the public base URL browsers and IdPs reach HTTPAddr
	// by; SP entity IDs and ACS URLs derive from it.
	ExternalURL string `yaml:"external_url"`
	// PublicHosts are further host names (host or host:port) that reach
	// the public HTTP listener, besides external_url's. A connection's
	// service_provider.acs_url may sit on one of them (or on external_url's
	// host): ssogate then serves that ACS at the URL's path. Used when
	// customers migrate from another SP and their IdPs post to its old
	// address (e.g. a custom domain you point at ssogate).
	PublicHosts []string `yaml:"public_hosts"`
	// GRPCTLSCertFile and GRPCTLSKeyFile turn on TLS for the gRPC
	// listener; GRPCClientCAFile additionally requires client certificates
	// signed by that CA (mutual TLS). API keys are required either way.
	GRPCTLSCertFile  string `yaml:"grpc_tls_cert_file"`
	GRPCTLSKeyFile   string `yaml:"grpc_tls_key_file"`
	GRPCClientCAFile string `yaml:"grpc_client_ca_file"`
	// Store is "sqlite://<path>" or "postgres://...".
	Store string `yaml:"store"`

	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// ShutdownDelay is how long the listeners keep serving after SIGTERM
	// while readiness already reports 503 / NOT_SERVING, so that load
	// balancers and Kubernetes endpoints stop routing here before new
	// connections are refused. ShutdownTimeout then bounds how long
	// in-flight requests may take to finish. A pod's
	// terminationGracePeriodSeconds must exceed their sum.
	ShutdownDelay   time.Duration `yaml:"shutdown_delay"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// AuditRetention is how long audit events are kept.
	AuditRetention time.Duration `yaml:"audit_retention"`

	// KEK is the key-encryption key for signing keys at rest: 32 bytes,
	// base64 or hex. KEKFile names a file holding it instead.
	KEK     string `yaml:"kek"`
	KEKFile string `yaml:"kek_file"`

	// OperatorAddr, when set, is a second HTTP listener for operators:
	// /metrics, the /v1/ REST API, detailed readiness and gRPC reflection
	// move there and leave the public listeners. Set it in production
	// (e.g. 127.0.0.1:9100).
	OperatorAddr string `yaml:"operator_addr"`
	// TrustedProxies are the CIDR prefixes of reverse proxies whose
	// X-Forwarded-For names the client (rate limits, audit).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxRequestBytes bounds a REST request body (/v1/...).
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// RateLimit limits the unauthenticated browser routes.
	RateLimit RateLimitConfig `yaml:"rate_limit"`

	// AllowPrivateFetch lets outbound fetches (IdP metadata URLs) reach
	// loopback, private and link-local addresses and plain http. Off in
	// production; `ssogate dev` turns it on.
	AllowPrivateFetch bool `yaml:"allow_private_fetch"`

	Token  TokenConfig  `yaml:"token"`
	SAML   SAMLConfig   `yaml:"saml"`
	Portal PortalConfig `yaml:"portal"`

	// APIKeys authenticate gRPC and REST callers.
	APIKeys []APIKey `yaml:"api_keys"`
	// Connections are seeded into the store at start (GitOps style).
	Connections []map[string]any `yaml:"connections"`
}

// TokenConfig shapes the access and refresh tokens.
type TokenConfig struct {
	// Issuer is the `iss` claim; default ExternalURL.
	Issuer string `yaml:"issuer"`
	// Audience is the `aud` claim.
	Audience []string `yaml:"audience"`
	// Algorithm signs access tokens: ES256, EdDSA or RS256.
	Algorithm string `yaml:"algorithm"`
	// AccessTTL is the access token lifetime.
	AccessTTL time.Duration `yaml:"access_ttl"`
	// RefreshTTL is the refresh token lifetime (never beyond the session).
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// RefreshRetryWindow is how long after a rotation the spent refresh
	// token, presented again, returns the same (unused) successor instead
	// of revoking the session: a client retrying after a lost answer. 0
	// turns retries off (every reuse revokes).
	RefreshRetryWindow time.Duration `yaml:"refresh_retry_window"`
	// SessionMax caps every session.
	SessionMax time.Duration `yaml:"session_max"`
	// KeyRotation is how often a new signing key is made.
	KeyRotation time.Duration `yaml:"key_rotation"`
}

// SAMLConfig holds protocol limits shared by all connections.
type SAMLConfig struct {
	// ClockSkew is tolerated on every time check.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// MaxBodyBytes bounds the ACS form body.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxXMLBytes bounds decoded SAML XML.
	MaxXMLBytes int `yaml:"max_xml_bytes"`
	// MaxXMLElements, MaxXMLAttributes and MaxXMLNamespaceDecls bound one
	// SAML document's elements, attributes and namespace declarations.
	MaxXMLElements       int `yaml:"max_xml_elements"`
	MaxXMLAttributes     int `yaml:"max_xml_attributes"`
	MaxXMLNamespaceDecls int `yaml:"max_xml_namespace_declarations"`
	// MaxConcurrentValidations bounds ACS and SLO messages validated at
	// once; 0 means 2 × GOMAXPROCS.
	MaxConcurrentValidations int `yaml:"max_concurrent_validations"`
	// MaxInflightBytes bounds the ACS and SLO body bytes admitted at once
	// (declared or at most max_body_bytes each); beyond it, 503.
	MaxInflightBytes int `yaml:"max_inflight_bytes"`
}

// RateLimitConfig sets the token buckets of the browser routes, each
// route (login, acs, slo) on its own: per client address and per
// connection. A rate of 0 turns that limit off.
type RateLimitConfig struct {
	ClientRate      float64 `yaml:"client_rate"`
	ClientBurst     int     `yaml:"client_burst"`
	ConnectionRate  float64 `yaml:"connection_rate"`
	ConnectionBurst int     `yaml:"connection_burst"`
}

// PortalConfig brands the setup portal and the end-user pages.
type PortalConfig struct {
	// ProductName is the vendor's product, named on every page ("back to
	// <product>"); default "the application".
	ProductName string `yaml:"product_name"`
	// SupportURL is where IT admins and end users ask the vendor for help;
	// an absolute http(s) URL, optional.
	SupportURL string `yaml:"support_url"`
}

// APIKey is one caller credential. Only the SHA-256 of the key is
// configured, never the key itself.
type APIKey struct {
	Name   string   `yaml:"name"`
	SHA256 string   `yaml:"sha256"`
	Scopes []string `yaml:"scopes"`
}

// Default returns the configuration `ssogate serve` runs with when nothing
// is set: loopback-friendly, SQLite in the working directory.
func Default() Config {
	return Config{
		HTTPAddr:        ":8080",
		GRPCAddr:        ":9090",
		ExternalURL:     "http://localhost:8080",
		Store:           "sqlite://ssogate.db",
		LogLevel:        "info",
		ShutdownDelay:   5 * time.Second,
		ShutdownTimeout: 20 * time.Second,
		AuditRetention:  365 * 24 * time.Hour,
		MaxRequestBytes: 1 << 20,
		RateLimit: RateLimitConfig{
			ClientRate: 50, ClientBurst: 3000,
			ConnectionRate: 100, ConnectionBurst: 6000,
		},
		Token: TokenConfig{
			Algorithm:          "ES256",
			AccessTTL:          5 * time.Minute,
			RefreshTTL:         12 * time.Hour,
			RefreshRetryWindow: 30 * time.Second,
			SessionMax:         12 * time.Hour,
			KeyRotation:        30 * 24 * time.Hour,
		},
		SAML: SAMLConfig{
			ClockSkew:    60 * time.Second,
			MaxBodyBytes: 512 << 10,
			MaxXMLBytes:  1 << 20,

			MaxXMLElements:       5000,
			MaxXMLAttributes:     10000,
			MaxXMLNamespaceDecls: 10000,
			MaxInflightBytes:     32 << 20,
		},
	}
}

// FieldError is a validation failure of one setting.
type FieldError struct {
	Field   string // as the operator knows it, e.g. "http_addr (SSOGATE_HTTP_ADDR, --http-addr)"
	Value   string // the offending value, redacted for secrets
	Problem string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid setting %s: %s", e.Field, e.Problem)
	}
	return fmt.Sprintf("invalid setting %s = %q: %s", e.Field, e.Value, e.Problem)
}

// Validate checks every setting and returns all problems, each a
// *FieldError, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &FieldError{Field: describe(key), Value: value, Problem: problem})
	}
	for _, a := range []struct{ key, v string }{{"http_addr", c.HTTPAddr}, {"grpc_addr", c.GRPCAddr}, {"operator_addr", c.OperatorAddr}} {
		if a.key == "operator_addr" && a.v == "" {
			continue
		}
		if err := checkListenAddr(a.v); err != nil {
			bad(a.key, a.v, err.Error())
		}
	}
	if c.Portal.SupportURL != "" {
		if u, err := url.Parse(c.Portal.SupportURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("portal.support_url", c.Portal.SupportURL, "want an absolute http(s) URL such as https://example.com/support")
		}
	}
	if c.OperatorAddr != "" && (c.OperatorAddr == c.HTTPAddr || c.OperatorAddr == c.GRPCAddr) {
		bad("operator_addr", c.OperatorAddr, "must differ from http_addr and grpc_addr")
	}
	for i, h := range c.PublicHosts {
		c.PublicHosts[i] = strings.ToLower(strings.TrimSpace(h))
		if err := checkHost(c.PublicHosts[i]); err != nil {
			bad("public_hosts", h, err.Error())
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad("trusted_proxies", p, err.Error())
		}
	}
	if c.MaxRequestBytes < 64<<10 {
		bad("max_request_bytes", fmt.Sprint(c.MaxRequestBytes), "want at least 65536 (CreateConnection carries IdP metadata XML)")
	}
	for _, r := range []struct {
		key   string
		rate  float64
		burst int
	}{{"rate_limit.client", c.RateLimit.ClientRate, c.RateLimit.ClientBurst}, {"rate_limit.connection", c.RateLimit.ConnectionRate, c.RateLimit.ConnectionBurst}} {
		if r.rate < 0 || r.rate != r.rate {
			bad(r.key+"_rate", fmt.Sprint(r.rate), "want requests per second, 0 or more (0 turns the limit off)")
		}
		if r.rate > 0 && r.burst < 1 {
			bad(r.key+"_burst", fmt.Sprint(r.burst), "want at least 1 when the rate is set")
		}
	}
	if c.SAML.MaxConcurrentValidations < 0 {
		bad("saml.max_concurrent_validations", fmt.Sprint(c.SAML.MaxConcurrentValidations), "want 0 (2 × GOMAXPROCS) or more")
	}
	if c.SAML.MaxInflightBytes < c.SAML.MaxBodyBytes {
		bad("saml.max_inflight_bytes", fmt.Sprint(c.SAML.MaxInflightBytes), "want at least saml.max_body_bytes, so one message fits")
	}
	if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("external_url", c.ExternalURL, "want an absolute http(s) URL such as https://sso.example.com")
	} else if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/") {
		bad("external_url", c.ExternalURL, "want no query, fragment or trailing slash")
	}
	if (c.GRPCTLSCertFile == "") != (c.GRPCTLSKeyFile == "") {
		bad("grpc_tls_cert_file", "", "set grpc_tls_cert_file and grpc_tls_key_file together")
	}
	if c.GRPCClientCAFile != "" && c.GRPCTLSCertFile == "" {
		bad("grpc_client_ca_file", "", "mutual TLS needs grpc_tls_cert_file and grpc_tls_key_file too")
	}
	if _, _, err := ParseStore(c.Store); err != nil {
		bad("store", redactDSN(c.Store), err.Error())
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", c.LogLevel, "want debug, info, warn or error")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 5*time.Minute {
		bad("shutdown_delay", c.ShutdownDelay.String(), "want between 0s and 5m, e.g. 5s (0s when nothing routes traffic by readiness)")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", c.ShutdownTimeout.String(), "want a positive duration such as 20s")
	}
	if c.AuditRetention < 24*time.Hour {
		bad("audit_retention", c.AuditRetention.String(), "want at least 24h (e.g. 8760h for a year)")
	}
	if c.KEK != "" && c.KEKFile != "" {
		bad("kek", "", "set kek or kek_file, not both")
	}
	switch c.Token.Algorithm {
	case "ES256", "EdDSA", "RS256":
	default:
		bad("token.algorithm", c.Token.Algorithm, "want ES256, EdDSA or RS256")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"token.access_ttl", c.Token.AccessTTL}, {"token.refresh_ttl", c.Token.RefreshTTL},
		{"token.session_max", c.Token.SessionMax}, {"token.key_rotation", c.Token.KeyRotation},
	} {
		if d.v <= 0 {
			bad(d.key, d.v.String(), "want a positive duration")
		}
	}
	if c.Token.RefreshRetryWindow < 0 || c.Token.RefreshRetryWindow > 5*time.Minute {
		bad("token.refresh_retry_window", c.Token.RefreshRetryWindow.String(), "want between 0s (off) and 5m")
	}
	if c.Token.AccessTTL > time.Hour {
		bad("token.access_ttl", c.Token.AccessTTL.String(), "access tokens are short-lived: at most 1h")
	}
	if c.SAML.ClockSkew < 0 || c.SAML.ClockSkew > 10*time.Minute {
		bad("saml.clock_skew", c.SAML.ClockSkew.String(), "want between 0s and 10m")
	}
	if c.SAML.MaxBodyBytes < 4<<10 {
		bad("saml.max_body_bytes", fmt.Sprint(c.SAML.MaxBodyBytes), "want at least 4096")
	}
	if c.SAML.MaxXMLBytes < 4<<10 {
		bad("saml.max_xml_bytes", fmt.Sprint(c.SAML.MaxXMLBytes), "want at least 4096")
	}
	for _, b := range []struct {
		key string
		v   int
	}{{"saml.max_xml_elements", c.SAML.MaxXMLElements}, {"saml.max_xml_attributes", c.SAML.MaxXMLAttributes},
		{"saml.max_xml_namespace_declarations", c.SAML.MaxXMLNamespaceDecls}} {
		if b.v < 100 {
			bad(b.key, fmt.Sprint(b.v), "want at least 100 (a signed Response has about 30 elements)")
		}
	}
	seen := map[string]bool{}
	for i, k := range c.APIKeys {
		key := fmt.Sprintf("api_keys[%d]", i)
		if k.Name == "" {
			bad(key+".name", "", "every API key needs a name")
		} else if seen[k.Name] {
			bad(key+".name", k.Name, "duplicate API key name")
		}
		seen[k.Name] = true
		if len(k.SHA256) != 64 || strings.Trim(strings.ToLower(k.SHA256), "0123456789abcdef") != "" {
			bad(key+".sha256", "", "want the hex SHA-256 of the key (64 hex digits): echo -n KEY | sha256sum")
		}
		if len(k.Scopes) == 0 {
			bad(key+".scopes", "", "want at least one of login, admin, directory, events")
		}
		for _, s := range k.Scopes {
			if s != "login" && s != "admin" && s != "directory" && s != "events" {
				bad(key+".scopes", s, "want login, admin, directory or events")
			}
		}
	}
	return errors.Join(errs...)
}

var hostnamePattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// checkHost accepts a host name or IP address with an optional port, the
// form of an HTTP Host header: sso.example.com, sso.example.com:8443,
// 127.0.0.1:8080, [::1]:8080.
func checkHost(h string) error {
	host, port := h, ""
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			return fmt.Errorf("want host or host:port, e.g. sso.example.com or sso.example.com:8443")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q: want 1 to 65535", port)
		}
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 || !hostnamePattern.MatchString(host) {
		return fmt.Errorf("want a host name such as sso.example.com (no scheme, path or wildcard), optionally with :port")
	}
	return nil
}

// ParsePrefix parses one trusted_proxies entry: a CIDR prefix or a single
// IP address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("want a CIDR prefix such as 10.0.0.0/8 or an IP address")
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// ParseStore splits a store URL into its kind ("sqlite" or "postgres") and
// the backend's own DSN (a file path for SQLite).
func ParseStore(s string) (kind, dsn string, err error) {
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		path := strings.TrimPrefix(s, "sqlite://")
		if path == "" {
			return "", "", errors.New("want sqlite://<file path>, e.g. sqlite:///var/lib/ssogate/ssogate.db")
		}
		return "sqlite", path, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := url.Parse(s); err != nil {
			return "", "", errors.New("not a valid postgres:// URL")
		}
		return "postgres", s, nil
	default:
		return "", "", errors.New("want sqlite://<path> or postgres://user@host/db")
	}
}

func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port, e.g. :8080 or 127.0.0.1:8080")
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return errors.New("host must be an IP address, localhost, or empty for all interfaces")
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != port {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

// redactDSN hides a password in a store URL.
func redactDSN(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}

// Redacted returns a copy safe to log: secrets replaced.
func (c Config) Redacted() Config {
	r := c
	if r.KEK != "" {
		r.KEK = "REDACTED"
	}
	r.Store = redactDSN(r.Store)
	r.APIKeys = append([]APIKey(nil), c.APIKeys...)
	for i := range r.APIKeys {
		r.APIKeys[i].SHA256 = "REDACTED"
	}
	return r
}
