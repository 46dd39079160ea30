package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// setting is one scalar configuration value reachable from the YAML file,
// the environment and the command line under related names.
type setting struct {
	key   string // YAML key, dotted for nested values
	usage string
	set   func(c *Config, v string) error
}

func (s setting) env() string {
	return "SSOGATE_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(s.key))
}
func (s setting) flag() string { return strings.NewReplacer(".", "-", "_", "-").Replace(s.key) }

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func dur(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("want a duration such as 30s, 5m or 12h")
		}
		*p(c) = d
		return nil
	}
}

func integer(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("want a whole number")
		}
		*p(c) = n
		return nil
	}
}

func float(p func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return errors.New("want a number such as 50 or 0.5")
		}
		*p(c) = f
		return nil
	}
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*p(c) = b
		return nil
	}
}

var settings = []setting{
	{"http_addr", "HTTP listen address", str(func(c *Config) *string { return &c.HTTPAddr })},
	{"grpc_addr", "gRPC listen address", str(func(c *Config) *string { return &c.GRPCAddr })},
	{"external_url", "public base URL of the HTTP listener", str(func(c *Config) *string { return &c.ExternalURL })},
	{"grpc_tls_cert_file", "PEM certificate for TLS on the gRPC listener", str(func(c *Config) *string { return &c.GRPCTLSCertFile })},
	{"grpc_tls_key_file", "PEM private key for TLS on the gRPC listener", str(func(c *Config) *string { return &c.GRPCTLSKeyFile })},
	{"grpc_client_ca_file", "PEM CA bundle: require client certificates it signed (mutual TLS)", str(func(c *Config) *string { return &c.GRPCClientCAFile })},
	{"store", "sqlite://<path> or postgres://...", str(func(c *Config) *string { return &c.Store })},
	{"log_level", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"shutdown_delay", "how long to keep serving after SIGTERM while readiness reports 503", dur(func(c *Config) *time.Duration { return &c.ShutdownDelay })},
	{"shutdown_timeout", "how long in-flight requests may finish after SIGTERM", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"audit_retention", "how long audit events are kept", dur(func(c *Config) *time.Duration { return &c.AuditRetention })},
	{"kek", "key-encryption key for signing keys at rest (32 bytes, base64 or hex)", str(func(c *Config) *string { return &c.KEK })},
	{"kek_file", "file holding the key-encryption key", str(func(c *Config) *string { return &c.KEKFile })},
	{"operator_addr", "operator listener for /metrics, /v1/ REST, detailed readiness and gRPC reflection (e.g. 127.0.0.1:9100)", str(func(c *Config) *string { return &c.OperatorAddr })},
	{"public_hosts", "further host[:port] names of the public listener that connections' acs_url may use, comma-separated", func(c *Config, v string) error {
		c.PublicHosts = splitList(v)
		return nil
	}},
	{"trusted_proxies", "CIDR prefixes of proxies whose X-Forwarded-For is believed, comma-separated", func(c *Config, v string) error {
		c.TrustedProxies = splitList(v)
		return nil
	}},
	{"max_request_bytes", "bound on a REST (/v1/) request body", integer(func(c *Config) *int { return &c.MaxRequestBytes })},
	{"rate_limit.client_rate", "browser-route requests per second per client address, per route (0: off)", float(func(c *Config) *float64 { return &c.RateLimit.ClientRate })},
	{"rate_limit.client_burst", "browser-route burst per client address, per route", integer(func(c *Config) *int { return &c.RateLimit.ClientBurst })},
	{"rate_limit.connection_rate", "browser-route requests per second per connection, per route (0: off)", float(func(c *Config) *float64 { return &c.RateLimit.ConnectionRate })},
	{"rate_limit.connection_burst", "browser-route burst per connection, per route", integer(func(c *Config) *int { return &c.RateLimit.ConnectionBurst })},
	{"allow_private_fetch", "let metadata fetches reach loopback/private addresses and plain http (development only)", boolean(func(c *Config) *bool { return &c.AllowPrivateFetch })},
	{"token.issuer", "access token iss claim (default external_url)", str(func(c *Config) *string { return &c.Token.Issuer })},
	{"token.audience", "access token aud claim, comma-separated", func(c *Config, v string) error {
		c.Token.Audience = splitList(v)
		return nil
	}},
	{"token.algorithm", "ES256, EdDSA or RS256", str(func(c *Config) *string { return &c.Token.Algorithm })},
	{"token.access_ttl", "access token lifetime", dur(func(c *Config) *time.Duration { return &c.Token.AccessTTL })},
	{"token.refresh_ttl", "refresh token lifetime", dur(func(c *Config) *time.Duration { return &c.Token.RefreshTTL })},
	{"token.refresh_retry_window", "a spent refresh token presented again this soon returns its unused successor (0: off)", dur(func(c *Config) *time.Duration { return &c.Token.RefreshRetryWindow })},
	{"token.session_max", "maximum session length", dur(func(c *Config) *time.Duration { return &c.Token.SessionMax })},
	{"token.key_rotation", "signing key rotation period", dur(func(c *Config) *time.Duration { return &c.Token.KeyRotation })},
	{"saml.clock_skew", "clock skew tolerated on SAML time checks", dur(func(c *Config) *time.Duration { return &c.SAML.ClockSkew })},
	{"saml.max_body_bytes", "bound on the ACS form body", integer(func(c *Config) *int { return &c.SAML.MaxBodyBytes })},
	{"saml.max_xml_bytes", "bound on decoded SAML XML", integer(func(c *Config) *int { return &c.SAML.MaxXMLBytes })},
	{"saml.max_xml_elements", "bound on the elements of one SAML document", integer(func(c *Config) *int { return &c.SAML.MaxXMLElements })},
	{"saml.max_xml_attributes", "bound on the attributes of one SAML document", integer(func(c *Config) *int { return &c.SAML.MaxXMLAttributes })},
	{"saml.max_xml_namespace_declarations", "bound on the namespace declarations of one SAML document", integer(func(c *Config) *int { return &c.SAML.MaxXMLNamespaceDecls })},
	{"saml.max_concurrent_validations", "ACS/SLO messages validated at once (0: 2 × GOMAXPROCS)", integer(func(c *Config) *int { return &c.SAML.MaxConcurrentValidations })},
	{"saml.max_inflight_bytes", "ACS/SLO body bytes admitted at once", integer(func(c *Config) *int { return &c.SAML.MaxInflightBytes })},
	{"portal.product_name", "product name on the setup portal and end-user pages", str(func(c *Config) *string { return &c.Portal.ProductName })},
	{"portal.support_url", "support link on the setup portal and end-user pages", str(func(c *Config) *string { return &c.Portal.SupportURL })},
	{"api_keys", "name:sha256hex:scope[+scope],... (replaces the file's list)", func(c *Config, v string) error {
		keys, err := parseAPIKeys(v)
		if err != nil {
			return err
		}
		c.APIKeys = keys
		return nil
	}},
}

// describe names a setting in all the ways an operator may have written it.
func describe(key string) string {
	for _, s := range settings {
		if s.key == key {
			return fmt.Sprintf("%s (%s, --%s)", key, s.env(), s.flag())
		}
	}
	return key
}

// Load builds the configuration: defaults, then the YAML file named by
// --config or SSOGATE_CONFIG, then SSOGATE_* variables from env, then flags
// in args. It validates the result. Usage goes to usage on -h.
func Load(args []string, env func(string) (string, bool), usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("ssogate serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	configPath := fs.String("config", "", "YAML configuration file (env SSOGATE_CONFIG)")
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		values[s.key] = fs.String(s.flag(), "", s.usage+" (env "+s.env()+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := Default()
	path := *configPath
	if path == "" {
		path, _ = env("SSOGATE_CONFIG")
	}
	if path != "" {
		if err := loadFile(&cfg, path); err != nil {
			return Config{}, err
		}
	}
	for _, s := range settings {
		if v, ok := env(s.env()); ok {
			if err := s.set(&cfg, v); err != nil {
				return Config{}, &FieldError{Field: describe(s.key), Value: redactValue(s.key, v), Problem: err.Error()}
			}
		}
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		for _, s := range settings {
			if s.flag() == f.Name && flagErr == nil {
				if err := s.set(&cfg, *values[s.key]); err != nil {
					flagErr = &FieldError{Field: describe(s.key), Value: redactValue(s.key, *values[s.key]), Problem: err.Error()}
				}
			}
		}
	})
	if flagErr != nil {
		return Config{}, flagErr
	}
	if cfg.Token.Issuer == "" {
		cfg.Token.Issuer = cfg.ExternalURL
	}
	if len(cfg.Token.Audience) == 0 {
		cfg.Token.Audience = []string{cfg.ExternalURL}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func loadFile(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func parseAPIKeys(v string) ([]APIKey, error) {
	var keys []APIKey
	for _, item := range splitList(v) {
		parts := strings.Split(item, ":")
		if len(parts) != 3 {
			return nil, errors.New("want name:sha256hex:scope[+scope] entries separated by commas")
		}
		keys = append(keys, APIKey{Name: parts[0], SHA256: parts[1], Scopes: strings.Split(parts[2], "+")})
	}
	return keys, nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func redactValue(key, v string) string {
	switch key {
	case "kek", "api_keys":
		return "REDACTED"
	case "store":
		return redactDSN(v)
	}
	return v
}
