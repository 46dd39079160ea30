package client_test

// A real ssogate (server.New on loopback listeners, SQLite) with a
// connection to the built-in test IdP, which the tests sign in to over
// HTTP as a browser without JavaScript would.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssogate/ssogate/client"
	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/server"
)

const (
	loginKey = "client-test-login-key-0123456789abcdef"
	adminKey = "client-test-admin-key-0123456789abcdef"
	audience = "https://api.example.com"
	returnTo = "https://app.example.com/cb"
)

type ssogate struct {
	base     string // HTTP base URL, also the issuer
	grpcAddr string
	login    *client.Clients // login-scoped
	admin    *client.Clients // admin-scoped
}

func sha256Hex(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }

func startSSOGate(t *testing.T, opts ...server.Option) *ssogate {
	t.Helper()
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + httpLis.Addr().String()
	idp, err := devidp.New(base+"/idp", devidp.DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.ExternalURL = httpLis.Addr().String(), grpcLis.Addr().String(), base
	cfg.Token.Issuer, cfg.Token.Audience = base, []string{audience}
	cfg.Store = "sqlite://" + filepath.Join(t.TempDir(), "ssogate.db")
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.APIKeys = []config.APIKey{
		{Name: "backend", SHA256: sha256Hex(loginKey), Scopes: []string{"login"}},
		{Name: "ops", SHA256: sha256Hex(adminKey), Scopes: []string{"admin"}},
	}
	cfg.Connections = []map[string]any{{
		"id": "acme", "tenant_id": "tenant-acme", "state": "CONNECTION_STATE_ACTIVE",
		"identity_provider": map[string]any{
			"entity_id": base + "/idp/metadata", "sso_url": base + "/idp/sso",
			"certificates": []any{map[string]any{"pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate.Raw}))}},
		},
		"allowed_return_urls": []any{returnTo},
		"attribute_mapping":   map[string]any{"groups": map[string]any{"names": []any{devidp.GroupsAttribute}}},
		"access_policy": map[string]any{"role_mappings": []any{
			map[string]any{"group": "admins", "roles": []any{"admin"}},
		}},
	}}
	opts = append(opts, server.WithRoutes(func(mux *http.ServeMux) { mux.Handle("/idp/", http.StripPrefix("/idp", idp.Handler())) }))
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, grpcLis, httpLis) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("ssogate not ready within 10s")
		}
	}
	resp, err := http.Get(base + "/saml/acme/metadata")
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := idp.RegisterServiceProvider("acme", md); err != nil {
		t.Fatal(err)
	}
	g := &ssogate{base: base, grpcAddr: cfg.GRPCAddr}
	for _, c := range []struct {
		dst **client.Clients
		key string
	}{{&g.login, loginKey}, {&g.admin, adminKey}} {
		cl, err := client.Dial(context.Background(), g.grpcAddr, c.key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		*c.dst = cl
	}
	return g
}

// signIn logs user in through the IdP and returns the token set.
func (g *ssogate) signIn(t *testing.T, user string) *ssogatev1.TokenSet {
	t.Helper()
	ctx := context.Background()
	start, err := g.login.Login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: returnTo})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar, Timeout: 10 * time.Second}, start.RedirectUrl, user, user)
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(posted.ACSURL, url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ACS answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	res, err := g.login.Login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: loc.Query().Get("code")})
	if err != nil {
		t.Fatal(err)
	}
	return res.TokenSet
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
