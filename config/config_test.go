package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssogate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrecedence(t *testing.T) {
	path := writeFile(t, `
http_addr: "127.0.0.1:1111"
grpc_addr: "127.0.0.1:2222"
external_url: https://sso.example.com
token:
  access_ttl: 2m
saml:
  clock_skew: 30s
`)
	cfg, err := Load([]string{"--config", path, "--grpc-addr", "127.0.0.1:3333"},
		envMap(map[string]string{"SSOGATE_HTTP_ADDR": "127.0.0.1:4444", "SSOGATE_GRPC_ADDR": "127.0.0.1:5555"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:4444" {
		t.Errorf("env must override file: http_addr = %s", cfg.HTTPAddr)
	}
	if cfg.GRPCAddr != "127.0.0.1:3333" {
		t.Errorf("flag must override env: grpc_addr = %s", cfg.GRPCAddr)
	}
	if cfg.Token.AccessTTL != 2*time.Minute || cfg.SAML.ClockSkew != 30*time.Second {
		t.Errorf("file durations not applied: %v %v", cfg.Token.AccessTTL, cfg.SAML.ClockSkew)
	}
	if cfg.Token.Issuer != "https://sso.example.com" || cfg.Token.Audience[0] != "https://sso.example.com" {
		t.Errorf("issuer/audience default to external_url: %q %q", cfg.Token.Issuer, cfg.Token.Audience)
	}
}

func TestLoadErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "unknown yaml key", file: "htp_addr: x\n", want: []string{"htp_addr"}},
		{name: "env addr", env: map[string]string{"SSOGATE_HTTP_ADDR": "nonsense"}, want: []string{"http_addr", "SSOGATE_HTTP_ADDR", "nonsense"}},
		{name: "bad duration env", env: map[string]string{"SSOGATE_SHUTDOWN_TIMEOUT": "later"}, want: []string{"shutdown_timeout"}},
		{name: "bad int flag", args: []string{"--saml-max-body-bytes", "lots"}, want: []string{"saml.max_body_bytes", "--saml-max-body-bytes"}},
		{name: "api key hash", env: map[string]string{"SSOGATE_API_KEYS": "ci:abc:login"}, want: []string{"api_keys[0].sha256"}},
		{name: "api key scope", env: map[string]string{"SSOGATE_API_KEYS": "ci:" + strings.Repeat("a", 64) + ":root"}, want: []string{"api_keys[0].scopes", "root"}},
		{name: "two problems at once", env: map[string]string{"SSOGATE_LOG_LEVEL": "loud", "SSOGATE_TOKEN_ALGORITHM": "none"}, want: []string{"log_level", "token.algorithm"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			_, err := Load(args, envMap(tc.env), io.Discard)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	cfg := Default()
	cfg.KEK = "c2VjcmV0LWtlay1kby1ub3QtbG9n"
	cfg.Store = "postgres://app:hunter2@db/ssogate"
	cfg.APIKeys = []APIKey{{Name: "ci", SHA256: strings.Repeat("b", 64), Scopes: []string{"login"}}}
	r := cfg.Redacted()
	dump := r.KEK + r.Store + r.APIKeys[0].SHA256
	for _, secret := range []string{cfg.KEK, "hunter2", cfg.APIKeys[0].SHA256} {
		if strings.Contains(dump, secret) {
			t.Errorf("redacted config still holds %q", secret)
		}
	}
	if cfg.APIKeys[0].SHA256 == "REDACTED" {
		t.Error("Redacted modified the original")
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The example in the repository stays loadable as the settings change.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load([]string{"--config", "../examples/ssogate.yaml"}, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.APIKeys) != 2 || len(cfg.Connections) != 1 || cfg.Token.Audience[0] != "https://api.example.com" {
		t.Fatalf("example config: %+v", cfg.Redacted())
	}
}

func TestEdgeSettings(t *testing.T) {
	path := writeFile(t, `
operator_addr: "127.0.0.1:9100"
trusted_proxies: ["10.0.0.0/8", "192.168.1.7"]
allow_private_fetch: true
max_request_bytes: 2097152
rate_limit:
  client_rate: 5
  client_burst: 20
saml:
  max_concurrent_validations: 3
`)
	cfg, err := Load([]string{"--config", path, "--rate-limit-connection-rate", "0.5"}, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OperatorAddr != "127.0.0.1:9100" || len(cfg.TrustedProxies) != 2 || !cfg.AllowPrivateFetch || cfg.MaxRequestBytes != 2<<20 ||
		cfg.RateLimit.ClientRate != 5 || cfg.RateLimit.ClientBurst != 20 || cfg.RateLimit.ConnectionRate != 0.5 ||
		cfg.RateLimit.ConnectionBurst != 6000 || cfg.SAML.MaxConcurrentValidations != 3 {
		t.Errorf("edge settings not applied: %+v", cfg)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SSOGATE_TRUSTED_PROXIES": "10.0.0.0/8,not-a-net"}, "trusted_proxies"},
		{map[string]string{"SSOGATE_OPERATOR_ADDR": "nowhere"}, "operator_addr"},
		{map[string]string{"SSOGATE_OPERATOR_ADDR": ":8080"}, "must differ"},
		{map[string]string{"SSOGATE_MAX_REQUEST_BYTES": "100"}, "max_request_bytes"},
		{map[string]string{"SSOGATE_RATE_LIMIT_CLIENT_RATE": "-1"}, "rate_limit.client_rate"},
		{map[string]string{"SSOGATE_RATE_LIMIT_CLIENT_RATE": "fast"}, "want a number"},
		{map[string]string{"SSOGATE_RATE_LIMIT_CLIENT_BURST": "0"}, "rate_limit.client_burst"},
		{map[string]string{"SSOGATE_ALLOW_PRIVATE_FETCH": "maybe"}, "want true or false"},
		{map[string]string{"SSOGATE_SAML_MAX_INFLIGHT_BYTES": "1000"}, "saml.max_inflight_bytes"},
		{map[string]string{"SSOGATE_SAML_MAX_CONCURRENT_VALIDATIONS": "-2"}, "saml.max_concurrent_validations"},
	} {
		_, err := Load(nil, envMap(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.env, err, tc.want)
		}
	}
}

func TestPublicHosts(t *testing.T) {
	path := writeFile(t, "public_hosts: [\"Login.Example.com\", \"sso.example.org:8443\", \"127.0.0.1:8080\"]\n")
	cfg, err := Load([]string{"--config", path}, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.PublicHosts, ","); got != "login.example.com,sso.example.org:8443,127.0.0.1:8080" {
		t.Errorf("public_hosts from YAML = %q", got)
	}
	cfg, err = Load([]string{"--public-hosts", "a.example.com,b.example.com"}, envMap(map[string]string{"SSOGATE_PUBLIC_HOSTS": "c.example.com"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.PublicHosts, ","); got != "a.example.com,b.example.com" {
		t.Errorf("public_hosts: the flag wins over the environment: got %q", got)
	}
	for _, bad := range []string{"https://sso.example.com", "sso.example.com/acs", "*.example.com", "sso.example.com:0", "sso.example.com:http", "-x.example.com", "a b"} {
		_, err := Load(nil, envMap(map[string]string{"SSOGATE_PUBLIC_HOSTS": bad}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "public_hosts (SSOGATE_PUBLIC_HOSTS, --public-hosts)") {
			t.Errorf("public_hosts %q: error %v, want one naming the setting", bad, err)
		}
	}
}
