package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// cliServer is `ssogate serve` running in-process, with an admin key and a
// login-only key.
type cliServer struct {
	grpcAddr, httpAddr string
	adminKey, loginKey string
}

// startCLIServer runs `ssogate serve` on loopback ports the kernel picks,
// with SQLite in a temporary folder; env adds settings.
func startCLIServer(t *testing.T, env map[string]string) *cliServer {
	t.Helper()
	s := &cliServer{adminKey: "admin-" + randomToken(), loginKey: "login-" + randomToken()}
	hash := func(k string) string { sum := sha256.Sum256([]byte(k)); return hex.EncodeToString(sum[:]) }
	all := map[string]string{"SSOGATE_API_KEYS": "ops:" + hash(s.adminKey) + ":login+admin+events,backend:" + hash(s.loginKey) + ":login"}
	for k, v := range env {
		all[k] = v
	}
	s.grpcAddr, s.httpAddr = serveInProcess(t, all)
	return s
}

// serveInProcess runs `ssogate serve` in this process on loopback ports the
// kernel picks, with SQLite in a temporary folder and env as its
// environment, until the test ends; it returns the listening addresses.
func serveInProcess(t *testing.T, env map[string]string) (grpcAddr, httpAddr string) {
	t.Helper()
	all := env
	var s struct{ grpcAddr, httpAddr string }
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--shutdown-delay", "0s",
			"--store", "sqlite://" + filepath.Join(t.TempDir(), "ssogate.db")},
			func(k string) (string, bool) { v, ok := all[k]; return v, ok }, io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("ssogate serve did not stop within 10s")
		}
	})
	for deadline := time.Now().Add(30 * time.Second); s.grpcAddr == ""; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("ssogate serve exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssogate serve did not start listening:\n%s", stderr.String())
		}
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var rec struct {
				Msg      string `json:"msg"`
				GRPCAddr string `json:"grpc_addr"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				s.grpcAddr, s.httpAddr = rec.GRPCAddr, rec.HTTPAddr
			}
		}
	}
	return s.grpcAddr, s.httpAddr
}

// result is what one CLI invocation printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

// cli runs `ssogate args...` through run with the admin key in
// SSOGATE_API_KEY, and checks that no key is ever printed.
func (s *cliServer) cli(t *testing.T, args ...string) result {
	t.Helper()
	return s.cliWith(t, map[string]string{"SSOGATE_SERVER": s.grpcAddr, "SSOGATE_API_KEY": s.adminKey}, args...)
}

func (s *cliServer) cliWith(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	err := run(ctx, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &stdout, &stderr)
	r := result{stdout.String(), stderr.String(), err}
	s.checkNoKey(t, r)
	return r
}

func (s *cliServer) checkNoKey(t *testing.T, r result) {
	t.Helper()
	all := r.stdout + r.stderr
	if r.err != nil {
		all += r.err.Error()
	}
	for _, k := range []string{s.adminKey, s.loginKey} {
		if strings.Contains(all, k) {
			t.Fatalf("an API key was printed:\n%s", all)
		}
	}
}

// ok fails the test unless the command succeeded.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("command failed: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	return r
}

// field returns a "Key: value" row of a detail view.
func (r result) field(t *testing.T, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:\s+(.*?)\s*$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no %q in:\n%s", key, r.stdout)
	}
	return m[1]
}

// connection decodes `-o json` output holding {"connection": …}.
func (r result) connection(t *testing.T) *ssogatev1.Connection {
	t.Helper()
	var resp ssogatev1.GetConnectionResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("-o json output is not a connection: %v\n%s", err, r.stdout)
	}
	return resp.Connection
}

// idpMetadataFile writes a real IdP's metadata to a file.
func idpMetadataFile(t *testing.T) (path, entityID string) {
	t.Helper()
	idp, err := devidp.New("http://127.0.0.1:9/idp", devidp.DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "idp.xml", string(md)), idp.MetadataURL()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIConnectionLifecycle(t *testing.T) {
	s := startCLIServer(t, nil)
	mdFile, idpEntity := idpMetadataFile(t)

	created := s.cli(t, "connections", "create", "--id", "acme", "--tenant", "acme-inc", "--display-name", "Acme",
		"--metadata-file", mdFile, "--domain", "acme.com", "--return-url", "https://app.example.com/cb").ok(t)
	if got := created.field(t, "State"); got != "DRAFT" {
		t.Errorf("new connection state %q, want DRAFT", got)
	}
	if got := created.field(t, "IdP entity ID"); got != idpEntity {
		t.Errorf("IdP entity ID %q, want %q from the metadata", got, idpEntity)
	}
	if !strings.Contains(created.stderr, "connections sp-metadata acme") {
		t.Errorf("no next-step hint after create:\n%s", created.stderr)
	}

	// A second one from a YAML file; flags override the file's fields.
	yamlFile := writeFile(t, "beta.yaml", "id: ignored\ntenant_id: beta-inc\ndisplay_name: Beta from YAML\nemail_domains: [beta.com]\n"+
		"allowed_return_urls: [https://app.example.com/]\nservice_provider: {slo_url: https://stale}\netag: \"7\"\n"+
		"create_time: \"2001-01-01T00:00:00Z\"\n")
	beta := s.cli(t, "connections", "create", "--from-file", yamlFile, "--id", "beta", "--metadata-file", mdFile, "-o", "json").ok(t).connection(t)
	if beta.Id != "beta" || beta.TenantId != "beta-inc" || beta.DisplayName != "Beta from YAML" || beta.EmailDomains[0] != "beta.com" {
		t.Errorf("created from YAML + flags: %v", beta)
	}
	if beta.ServiceProvider.GetSloUrl() != "http://localhost:8080/saml/beta/slo" || beta.ServiceProvider.GetEntityId() != "http://localhost:8080/saml/beta" {
		t.Errorf("SP SLO URL %q, entity ID %q: the file's output-only value leaked", beta.ServiceProvider.GetSloUrl(), beta.ServiceProvider.GetEntityId())
	}
	if beta.CreateTime.AsTime().Year() == 2001 {
		t.Errorf("create_time %v came from the file", beta.CreateTime.AsTime())
	}

	t.Run("list", func(t *testing.T) {
		all := s.cli(t, "connections", "list").ok(t)
		for _, want := range []string{"ID", "acme", "beta", "acme-inc", "beta.com"} {
			if !strings.Contains(all.stdout, want) {
				t.Errorf("list lacks %q:\n%s", want, all.stdout)
			}
		}
		one := s.cli(t, "connections", "list", "--tenant", "acme-inc", "-o", "json").ok(t)
		var resp ssogatev1.ListConnectionsResponse
		if err := protojson.Unmarshal([]byte(one.stdout), &resp); err != nil {
			t.Fatalf("list -o json: %v\n%s", err, one.stdout)
		}
		if len(resp.Connections) != 1 || resp.Connections[0].Id != "acme" {
			t.Errorf("list --tenant acme-inc: %v", resp.Connections)
		}
	})

	t.Run("update", func(t *testing.T) {
		before := s.cli(t, "connections", "get", "acme", "-o", "json").ok(t).connection(t)
		// Flags after the ID are read too.
		up := s.cli(t, "connections", "update", "acme", "--set", "display_name=Acme Corp (Okta)", "--set", "allow_idp_initiated=true",
			"--set", "max_session_duration=8h", "--set", "email_domains=acme.com, acme.org", "--state", "testing",
			"--set", "clock_skew=5m").ok(t)
		for key, want := range map[string]string{"Display name": "Acme Corp (Okta)", "State": "TESTING", "Options": "allow_idp_initiated",
			"Max session": "8h0m0s", "Email domains": "acme.com, acme.org", "Tenant": "acme-inc", "Clock skew": "5m0s"} {
			if got := up.field(t, key); got != want {
				t.Errorf("after update %s = %q, want %q", key, got, want)
			}
		}
		stale := s.cli(t, "connections", "update", "acme", "--etag", before.Etag, "--set", "display_name=lost")
		if stale.err == nil || !strings.HasPrefix(stale.err.Error(), "ABORTED: ") {
			t.Errorf("update with a stale etag: %v, want ABORTED", stale.err)
		}
		if bad := s.cli(t, "connections", "update", "acme", "--set", "no_such_field=1"); bad.err == nil || !strings.Contains(bad.err.Error(), `no field "no_such_field"`) {
			t.Errorf("unknown --set field: %v", bad.err)
		}
		for _, set := range []string{"id=other", "service_provider.slo_url=x", "etag=1"} {
			if r := s.cli(t, "connections", "update", "acme", "--set", set); r.err == nil || !strings.HasPrefix(r.err.Error(), "--set ") {
				t.Errorf("--set %s: %v, want it refused before any call", set, r.err)
			}
		}
		if none := s.cli(t, "connections", "update", "acme"); none.err == nil || !strings.Contains(none.err.Error(), "nothing to update") {
			t.Errorf("update without changes: %v", none.err)
		}
	})

	t.Run("update from the edited output of get", func(t *testing.T) {
		got := s.cli(t, "connections", "get", "acme", "-o", "json").ok(t)
		file := writeFile(t, "acme.json", strings.Replace(got.stdout, `"Acme Corp (Okta)"`, `"Acme Corp (Entra ID)"`, 1))
		up := s.cli(t, "connections", "update", "acme", "--from-file", file).ok(t)
		if name := up.field(t, "Display name"); name != "Acme Corp (Entra ID)" {
			t.Errorf("display name %q after --from-file", name)
		}
		// The file's etag is now stale: a second apply is a lost update.
		if again := s.cli(t, "connections", "update", "acme", "--from-file", file); again.err == nil || !strings.HasPrefix(again.err.Error(), "ABORTED") {
			t.Errorf("re-applying a stale file: %v, want ABORTED", again.err)
		}
	})

	t.Run("activate", func(t *testing.T) {
		untested := s.cli(t, "connections", "activate", "acme")
		if untested.err == nil || !strings.HasPrefix(untested.err.Error(), "FAILED_PRECONDITION") || !strings.Contains(untested.stderr+untested.err.Error(), "--force") {
			t.Errorf("activate without a passing test: %v\n%s, want FAILED_PRECONDITION and a --force hint", untested.err, untested.stderr)
		}
		fromTesting := s.cli(t, "connections", "activate", "acme", "--force").ok(t)
		if got := fromTesting.field(t, "State"); got != "ACTIVE" {
			t.Errorf("after activate: %q", got)
		}
		if strings.Contains(fromTesting.stderr, "without a test login") {
			t.Errorf("TESTING → ACTIVE warned about a missing test login:\n%s", fromTesting.stderr)
		}
		fromDraft := s.cli(t, "connections", "activate", "beta", "--force").ok(t)
		if !strings.Contains(fromDraft.stderr, "without a test login") || !strings.Contains(fromDraft.stderr, "/saml/beta/login?test=1") {
			t.Errorf("DRAFT → ACTIVE gave no test-login hint:\n%s", fromDraft.stderr)
		}
		if got := s.cli(t, "connections", "get", "beta", "-o", "json").ok(t).connection(t).State; got != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
			t.Errorf("beta is %v after activate", got)
		}
	})

	t.Run("setup-link", func(t *testing.T) {
		out := s.cli(t, "connections", "setup-link", "acme", "--ttl", "72h").ok(t)
		if !strings.Contains(out.stdout, "http://localhost:8080/setup/") || !strings.Contains(out.stdout, "not shown again") {
			t.Errorf("setup-link output:\n%s", out.stdout)
		}
		var resp ssogatev1.CreateSetupLinkResponse
		if err := protojson.Unmarshal([]byte(s.cli(t, "connections", "setup-link", "acme", "-o", "json").ok(t).stdout), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Secret == "" || !strings.HasSuffix(resp.SetupLink.GetUrl(), "/setup/"+resp.Secret) {
			t.Errorf("setup-link -o json: %v", &resp)
		}
		if left := time.Until(resp.SetupLink.ExpireTime.AsTime()); left < 7*24*time.Hour-time.Hour || left > 7*24*time.Hour {
			t.Errorf("default ttl gives %s", left)
		}
		if long := s.cli(t, "connections", "setup-link", "acme", "--ttl", "800h"); long.err == nil || !strings.HasPrefix(long.err.Error(), "INVALID_ARGUMENT") {
			t.Errorf("ttl over 30 days: %v, want INVALID_ARGUMENT", long.err)
		}
	})

	t.Run("sp-metadata", func(t *testing.T) {
		xml := s.cli(t, "connections", "sp-metadata", "acme").ok(t)
		if !strings.Contains(xml.stdout, `entityID="http://localhost:8080/saml/acme"`) || !strings.Contains(xml.stdout, "/saml/acme/acs") {
			t.Errorf("SP metadata lacks the entity ID or ACS:\n%s", xml.stdout)
		}
		var parts ssogatev1.GetServiceProviderMetadataResponse
		if err := protojson.Unmarshal([]byte(s.cli(t, "connections", "sp-metadata", "acme", "-o", "json").ok(t).stdout), &parts); err != nil {
			t.Fatal(err)
		}
		if parts.ServiceProvider.GetAcsUrl() != "http://localhost:8080/saml/acme/acs" || parts.MetadataXml == "" {
			t.Errorf("sp-metadata -o json: %v", &parts)
		}
	})

	t.Run("scim-token", func(t *testing.T) {
		out := s.cli(t, "connections", "scim-token", "acme").ok(t)
		m := regexp.MustCompile(`SCIM token: +(scim_\S+)`).FindStringSubmatch(out.stdout)
		if !strings.Contains(out.stdout, "SCIM base URL: http://localhost:8080/scim/v2/acme") || m == nil {
			t.Fatalf("scim-token output:\n%s", out.stdout)
		}
		var resp ssogatev1.CreateScimTokenResponse
		if err := protojson.Unmarshal([]byte(s.cli(t, "connections", "scim-token", "acme", "-o", "json").ok(t).stdout), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ScimToken.GetConnectionId() != "acme" || !strings.HasPrefix(resp.Secret, "scim_"+resp.ScimToken.GetId()+".") || resp.Secret == m[1] {
			t.Errorf("scim-token -o json: %v", &resp)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if r := s.cli(t, "connections", "delete", "beta"); r.err == nil || !strings.Contains(r.err.Error(), "--yes") {
			t.Fatalf("delete without --yes: %v", r.err)
		}
		s.cli(t, "connections", "get", "beta").ok(t)
		if r := s.cli(t, "connections", "delete", "beta", "--yes").ok(t); !strings.Contains(r.stdout, `deleted connection "beta"`) {
			t.Errorf("delete said %q", r.stdout)
		}
		if r := s.cli(t, "connections", "get", "beta"); r.err == nil || !strings.HasPrefix(r.err.Error(), "NOT_FOUND: ") {
			t.Errorf("get after delete: %v, want NOT_FOUND", r.err)
		}
	})

	t.Run("audit tail", func(t *testing.T) {
		tail := s.cli(t, "audit", "tail").ok(t)
		for _, want := range []string{"connection.created", "connection.updated", "connection.deleted", "caller=ops"} {
			if !strings.Contains(tail.stdout, want) {
				t.Errorf("audit tail lacks %q:\n%s", want, tail.stdout)
			}
		}
		lines := strings.Split(strings.TrimSpace(tail.stdout), "\n")
		if !strings.Contains(lines[1], "connection.created") || !strings.Contains(lines[len(lines)-1], "connection.deleted") {
			t.Errorf("audit tail is not oldest first:\n%s", tail.stdout)
		}
		js := s.cli(t, "audit", "tail", "--connection", "beta", "--type", "connection.created", "--since", "1h", "-o", "json").ok(t)
		var resp ssogatev1.ListAuditEventsResponse
		if err := protojson.Unmarshal([]byte(js.stdout), &resp); err != nil {
			t.Fatalf("audit tail -o json: %v\n%s", err, js.stdout)
		}
		if len(resp.Events) != 1 || resp.Events[0].Type != "connection.created" || resp.Events[0].ConnectionId != "beta" {
			t.Errorf("filtered tail: %v", resp.Events)
		}
		if last := s.cli(t, "audit", "tail", "-n", "1", "-o", "json").ok(t); strings.Count(last.stdout, `"type"`) != 1 {
			t.Errorf("-n 1 printed:\n%s", last.stdout)
		}
	})
}

func TestCLIKeys(t *testing.T) {
	s := startCLIServer(t, nil)
	var before ssogatev1.ListSigningKeysResponse
	if err := protojson.Unmarshal([]byte(s.cli(t, "keys", "list", "-o", "json").ok(t).stdout), &before); err != nil {
		t.Fatal(err)
	}
	if len(before.Keys) == 0 {
		t.Fatal("no signing key listed")
	}
	rotated := s.cli(t, "keys", "rotate", "-o", "json").ok(t)
	var resp ssogatev1.RotateSigningKeyResponse
	if err := protojson.Unmarshal([]byte(rotated.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	kid := resp.Key.GetKid()
	for _, k := range before.Keys {
		if k.Kid == kid {
			t.Fatalf("rotate returned the existing key %s", kid)
		}
	}
	table := s.cli(t, "keys", "list").ok(t)
	if !strings.Contains(table.stdout, kid) || !strings.Contains(table.stdout, before.Keys[0].Kid) || !strings.HasPrefix(table.stdout, "KID") {
		t.Errorf("keys list after rotate lacks the new key %s or the old one:\n%s", kid, table.stdout)
	}
	if tail := s.cli(t, "audit", "tail", "--type", "signing_key.rotated").ok(t); !strings.Contains(tail.stdout, "kid="+kid) {
		t.Errorf("rotation not in the audit log:\n%s", tail.stdout)
	}
}

func TestCLIAuthErrors(t *testing.T) {
	s := startCLIServer(t, nil)
	tests := []struct {
		name    string
		key     string
		args    []string
		wantErr string
	}{
		{"wrong key", "not-a-key", []string{"connections", "list"}, "UNAUTHENTICATED: "},
		{"login key on connections", s.loginKey, []string{"connections", "list"}, `PERMISSION_DENIED: API key "backend" lacks the "admin" scope`},
		{"login key on keys", s.loginKey, []string{"keys", "rotate"}, "PERMISSION_DENIED: "},
		{"login key on audit", s.loginKey, []string{"audit", "tail"}, "PERMISSION_DENIED: "},
		{"no key", "", []string{"keys", "list"}, "no API key: set SSOGATE_API_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"SSOGATE_SERVER": s.grpcAddr}
			if tc.key != "" {
				env["SSOGATE_API_KEY"] = tc.key
			}
			r := s.cliWith(t, env, tc.args...)
			if r.err == nil || !strings.HasPrefix(r.err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one starting %q", r.err, tc.wantErr)
			}
			if r.stdout != "" {
				t.Errorf("printed on failure: %q", r.stdout)
			}
		})
	}
	t.Run("key given as a flag is not echoed", func(t *testing.T) {
		r := s.cliWith(t, map[string]string{"SSOGATE_SERVER": s.grpcAddr}, "connections", "list", "--api-key", s.loginKey)
		if r.err == nil {
			t.Fatal("login key listed connections")
		}
	})
	t.Run("help does not show the key from the environment", func(t *testing.T) {
		r := s.cli(t, "connections", "create", "-h")
		if !errors.Is(r.err, flag.ErrHelp) || !strings.Contains(r.stderr, "--metadata-file") && !strings.Contains(r.stderr, "-metadata-file") {
			t.Errorf("create -h: %v\n%s", r.err, r.stderr)
		}
	})
}

func TestCLICreateFromStdin(t *testing.T) {
	s := startCLIServer(t, nil)
	mdFile, _ := idpMetadataFile(t)
	md, err := os.ReadFile(mdFile)
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	c := &cli{env: func(k string) (string, bool) {
		v, ok := map[string]string{"SSOGATE_SERVER": s.grpcAddr, "SSOGATE_API_KEY": s.adminKey}[k]
		return v, ok
	}, stdin: strings.NewReader(string(md)), stdout: &stdout, stderr: io.Discard, now: time.Now}
	err = c.group(context.Background(), "connections", []string{"create", "--id", "piped", "--tenant", "t", "--metadata-file", "-", "--state", "testing", "-o", "json"})
	if err != nil {
		t.Fatal(err)
	}
	conn := result{stdout: stdout.String()}.connection(t)
	if conn.State != ssogatev1.ConnectionState_CONNECTION_STATE_TESTING || len(conn.IdentityProvider.GetCertificates()) != 1 {
		t.Errorf("created from stdin: %v", conn)
	}
}

func TestCLIMetadataURL(t *testing.T) {
	// The test IdP is plain http on loopback: only with allow_private_fetch.
	s := startCLIServer(t, map[string]string{"SSOGATE_ALLOW_PRIVATE_FETCH": "true"})
	mdFile, idpEntity := idpMetadataFile(t)
	md, err := os.ReadFile(mdFile)
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Write(md)
	}))
	t.Cleanup(idp.Close)

	created := s.cli(t, "connections", "create", "--id", "okta", "--tenant", "t", "--metadata-url", idp.URL+"/metadata").ok(t)
	if got := created.field(t, "IdP entity ID"); got != idpEntity {
		t.Errorf("IdP entity ID %q from the metadata URL, want %q", got, idpEntity)
	}
	if got := created.field(t, "Metadata refreshed"); got == "-" {
		t.Error("no metadata refresh time after create from a URL")
	}
	s.cli(t, "connections", "refresh-metadata", "okta").ok(t)

	failing.Store(true)
	r := s.cli(t, "connections", "refresh-metadata", "okta")
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "UNAVAILABLE: metadata refresh failed") || strings.Contains(r.err.Error(), "is ssogate serving") {
		t.Errorf("failed refresh: %v, want the server's UNAVAILABLE without the connection hint", r.err)
	}
	if got := s.cli(t, "connections", "get", "okta").ok(t).field(t, "Metadata refreshed"); !strings.Contains(got, "last refresh failed") {
		t.Errorf("get after a failed refresh shows %q", got)
	}
}

func TestCLIAuditFollow(t *testing.T) {
	s := startCLIServer(t, nil)
	mdFile, _ := idpMetadataFile(t)
	// -n 1 leaves "zero" out; being old, it must not turn up later either.
	for _, id := range []string{"zero", "first"} {
		s.cli(t, "connections", "create", "--id", id, "--tenant", "t", "--metadata-file", mdFile).ok(t)
	}

	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	env := map[string]string{"SSOGATE_SERVER": s.grpcAddr, "SSOGATE_API_KEY": s.adminKey}
	go func() {
		done <- run(ctx, []string{"audit", "tail", "-f", "-n", "1", "--interval", "50ms", "-o", "json"},
			func(k string) (string, bool) { v, ok := env[k]; return v, ok }, out, io.Discard)
	}()
	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), what); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("tail -f never printed %q:\n%s", what, out.String())
			}
		}
	}
	waitFor(`"connection_id":"first"`)
	for _, id := range []string{"second", "third"} {
		s.cli(t, "connections", "create", "--id", id, "--tenant", "t", "--metadata-file", mdFile).ok(t)
	}
	waitFor(`"connection_id":"third"`)
	time.Sleep(200 * time.Millisecond) // a few more polls: nothing may repeat
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tail -f ended with %v on interrupt, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tail -f did not stop when interrupted")
	}

	seen := map[string]bool{}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e ssogatev1.AuditEvent
		if err := protojson.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail -f -o json line %q: %v", line, err)
		}
		if seen[e.Id] {
			t.Errorf("event %s printed twice", e.Id)
		}
		seen[e.Id] = true
		order = append(order, e.ConnectionId)
	}
	if got := strings.Join(order, ","); got != "first,second,third" {
		t.Errorf("tail -f printed connections %s, want first,second,third", got)
	}
}

func TestCLITLS(t *testing.T) {
	pki := newCLIPKI(t)
	s := startCLIServer(t, map[string]string{"SSOGATE_GRPC_TLS_CERT_FILE": pki.serverCert, "SSOGATE_GRPC_TLS_KEY_FILE": pki.serverKey,
		"SSOGATE_GRPC_CLIENT_CA_FILE": pki.ca})
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"ca file and client certificate", []string{"--ca-file", pki.ca, "--cert-file", pki.clientCert, "--key-file", pki.clientKey}, ""},
		{"no client certificate", []string{"--ca-file", pki.ca}, "UNAVAILABLE: "},
		{"plaintext on loopback by default", nil, "UNAVAILABLE: "},
		{"tls with the system roots", []string{"--tls", "--cert-file", pki.clientCert, "--key-file", pki.clientKey}, "UNAVAILABLE: "},
		{"insecure contradicts tls", []string{"--insecure", "--ca-file", pki.ca}, "--insecure contradicts"},
		{"certificate without key", []string{"--ca-file", pki.ca, "--cert-file", pki.clientCert}, "--cert-file and --key-file go together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.cli(t, append([]string{"keys", "list", "--timeout", "5s"}, tc.args...)...)
			if tc.wantErr == "" {
				r.ok(t)
				return
			}
			if r.err == nil || !strings.HasPrefix(r.err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one starting %q", r.err, tc.wantErr)
			}
		})
	}
}

// cliPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type cliPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newCLIPKI(t *testing.T) cliPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cli test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, NotBefore: caTmpl.NotBefore, NotAfter: caTmpl.NotAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
			writeFile(t, name+"-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	}
	p := cliPKI{ca: writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func TestCLIParsing(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t.Run("since", func(t *testing.T) {
		for in, want := range map[string]time.Time{
			"":                     {},
			"90m":                  now.Add(-90 * time.Minute),
			"7d":                   now.Add(-7 * 24 * time.Hour),
			"2026-02-01T00:00:00Z": time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		} {
			if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
				t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
			}
		}
		for _, bad := range []string{"yesterday", "-1h", "3x"} {
			if _, err := parseSince(bad, now); err == nil {
				t.Errorf("parseSince(%q) accepted", bad)
			}
		}
	})
	t.Run("set", func(t *testing.T) {
		tests := []struct {
			path, value, wantErr string
			check                func(*ssogatev1.Connection) bool
		}{
			{"state", "disabled", "", func(c *ssogatev1.Connection) bool {
				return c.State == ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED
			}},
			{"state", "CONNECTION_STATE_TESTING", "", func(c *ssogatev1.Connection) bool {
				return c.State == ssogatev1.ConnectionState_CONNECTION_STATE_TESTING
			}},
			{"identity_provider.sso_url", "https://idp/sso", "", func(c *ssogatev1.Connection) bool {
				return c.IdentityProvider.GetSsoUrl() == "https://idp/sso"
			}},
			{"allowed_return_urls", "https://a/, https://b/", "", func(c *ssogatev1.Connection) bool {
				return len(c.AllowedReturnUrls) == 2 && c.AllowedReturnUrls[1] == "https://b/"
			}},
			{"display_name", "", "", func(c *ssogatev1.Connection) bool { return c.DisplayName == "" }},
			{"state", "unspecified", `not one of draft, testing, active, disabled`, nil},
			{"sign_requests", "yes please", "want true or false", nil},
			{"max_session_duration", "forever", "want a duration", nil},
			{"attribute_mapping", "x", "set it with --from-file", nil},
			{"identity_provider.certificates", "x", "set it with --from-file", nil},
			{"tenant_id.x", "x", `"tenant_id" has no fields`, nil},
		}
		for _, tc := range tests {
			t.Run(tc.path+"="+tc.value, func(t *testing.T) {
				c := &ssogatev1.Connection{DisplayName: "before"}
				err := setField(c.ProtoReflect(), tc.path, tc.value)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error = %v, want %q", err, tc.wantErr)
					}
					return
				}
				if err != nil || !tc.check(c) {
					t.Fatalf("setField: %v, result %v", err, c)
				}
			})
		}
	})
	t.Run("flags between operands", func(t *testing.T) {
		c := &cli{stderr: io.Discard}
		fs, cf := c.flagSet("connections get", "ID", "")
		pos, err := parse(fs, cf, []string{"-o", "json", "acme", "--server", "x:1", "--", "-notaflag"}, "ID", "EXTRA")
		if err != nil || pos[0] != "acme" || pos[1] != "-notaflag" || cf.output != "json" || cf.server != "x:1" {
			t.Fatalf("parse: %v %v %+v", pos, err, cf)
		}
		if _, err := parse(fs, cf, []string{"acme", "-o", "yaml"}, "ID"); err == nil || !strings.Contains(err.Error(), "table or json") {
			t.Errorf("-o yaml: %v", err)
		}
	})
	t.Run("transport", func(t *testing.T) {
		for _, tc := range []struct {
			server string
			tls    bool
			plain  bool
			want   string
		}{
			{"127.0.0.1:9090", false, false, "insecure"},
			{"[::1]:9090", false, false, "insecure"},
			{"localhost:9090", false, false, "insecure"},
			{"sso.example.com:9090", false, false, "tls"}, // an API key does not cross a network in clear by default
			{"10.0.0.5:9090", false, true, "insecure"},
			{"127.0.0.1:9090", true, false, "tls"},
		} {
			cf := &clientFlags{server: tc.server, useTLS: tc.tls, plaintext: tc.plain}
			creds, err := cf.transportCredentials()
			if err != nil || creds.Info().SecurityProtocol != tc.want {
				t.Errorf("%+v: %v %v, want %s", tc, creds, err, tc.want)
			}
		}
		if _, err := (&clientFlags{server: "no-port"}).transportCredentials(); err == nil {
			t.Error("server without a port accepted")
		}
	})
	t.Run("upper snake", func(t *testing.T) {
		for in, want := range map[string]string{"PermissionDenied": "PERMISSION_DENIED", "OK": "OK", "ConnectionState": "CONNECTION_STATE"} {
			if got := upperSnake(in); got != want {
				t.Errorf("upperSnake(%q) = %q", in, got)
			}
		}
	})
}
