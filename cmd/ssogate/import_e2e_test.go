package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// The SP a customer's IdP was set up for before the move: Auth0 tenant
// "oldtenant" on its custom domain, connection "acme".
const (
	oldAuth0Host   = "login.oldtenant.example"
	oldAuth0Entity = "urn:auth0:oldtenant:acme"
	oldAuth0ACS    = "https://" + oldAuth0Host + "/login/callback?connection=acme"
)

// oldSPMetadata is the SP metadata the IdP admin imported from Auth0 long
// ago: it names only the old entity ID and ACS URL.
const oldSPMetadata = `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + oldAuth0Entity + `">
  <SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</NameIDFormat>
    <AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://` + oldAuth0Host + `/login/callback?connection=acme" index="0" isDefault="true"/>
  </SPSSODescriptor>
</EntityDescriptor>`

// TestImportedAuth0ConnectionLogsIn: an Auth0 export imported with
// `connections import` keeps the connection's entity ID and ACS URL, and
// a user signs in through an IdP whose configuration was not touched: it
// knows only the old SP metadata. The old custom domain now points at
// ssogate (public_hosts); requests carry its Host header, as the load
// balancer in front of ssogate passes it on.
func TestImportedAuth0ConnectionLogsIn(t *testing.T) {
	mux := http.NewServeMux()
	idpServer := httptest.NewServer(mux)
	t.Cleanup(idpServer.Close)
	idp, err := devidp.New(idpServer.URL+"/idp", devidp.DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/idp/", http.StripPrefix("/idp", idp.Handler()))
	if err := idp.RegisterServiceProvider("acme-via-auth0", []byte(oldSPMetadata)); err != nil {
		t.Fatal(err)
	}
	idpMetadata, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}

	// The Management API's connection object, as GET /api/v2/connections
	// lists it.
	export, err := json.Marshal([]any{map[string]any{
		"id": "con_8Xr2", "name": "acme", "strategy": "samlp", "display_name": "Acme Corp",
		"enabled_clients": []any{"app1"},
		"options": map[string]any{
			"metadataXml": string(idpMetadata), "signInEndpoint": idpServer.URL + "/idp/sso",
			"domain_aliases": []any{"example.com"},
			"fieldsMap":      map[string]any{"groups": devidp.GroupsAttribute},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "auth0-connections.json")
	if err := os.WriteFile(file, export, 0o600); err != nil {
		t.Fatal(err)
	}

	s := startCLIServer(t, map[string]string{"SSOGATE_PUBLIC_HOSTS": oldAuth0Host, "SSOGATE_EXTERNAL_URL": "https://sso.example.test"})
	args := []string{"connections", "import", "--from", "auth0", "--auth0-tenant", "oldtenant", "--auth0-domain", oldAuth0Host,
		"--return-url", "https://app.example.test/cb", file}

	// A dry run shows the plan and creates nothing.
	dry := s.cli(t, args...)
	if dry.err != nil {
		t.Fatalf("dry run: %v\n%s", dry.err, dry.stderr)
	}
	for _, want := range []string{"acme", oldAuth0Entity, oldAuth0ACS, "ACTIVE", "example.com", "Rules and Actions", "Dry run: nothing created"} {
		if !strings.Contains(dry.stdout+dry.stderr, want) {
			t.Errorf("dry run output lacks %q:\n%s%s", want, dry.stdout, dry.stderr)
		}
	}
	admin, login := dialKeys(t, s)
	ctx := context.Background()
	if _, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "acme"}); status.Code(err) != codes.NotFound {
		t.Fatalf("after the dry run, GetConnection: %v, want NOT_FOUND", err)
	}

	applied := s.cli(t, append(args, "--apply")...)
	if applied.err != nil || !strings.Contains(applied.stdout, "acme: created (ACTIVE), entity ID "+oldAuth0Entity+", ACS "+oldAuth0ACS) {
		t.Fatalf("--apply: %v\n%s%s", applied.err, applied.stdout, applied.stderr)
	}
	got, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Connection; c.ServiceProvider.EntityId != oldAuth0Entity || c.ServiceProvider.AcsUrl != oldAuth0ACS ||
		!slices.Equal(c.EmailDomains, []string{"example.com"}) || c.IdentityProvider.EntityId != idp.MetadataURL() {
		t.Fatalf("imported connection: %v", c)
	}

	// A login by email domain, as the product would start it.
	start, err := login.StartLogin(ctx, &ssogatev1.StartLoginRequest{Email: "alice@example.com", ReturnTo: "https://app.example.test/cb", State: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar, Timeout: 10 * time.Second}, start.RedirectUrl, "alice", "alice")
	if err != nil {
		t.Fatalf("sign in at the IdP (which knows only %s): %v", oldAuth0Entity, err)
	}
	if posted.ACSURL != oldAuth0ACS {
		t.Fatalf("the IdP posts to %q, want the old ACS %q", posted.ACSURL, oldAuth0ACS)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+s.httpAddr+"/login/callback?connection=acme",
		strings.NewReader(url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = oldAuth0Host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || !strings.HasPrefix(loc.String(), "https://app.example.test/cb?") {
		t.Fatalf("old ACS: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tokens, err := login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: loc.Query().Get("code")})
	if err != nil {
		t.Fatal(err)
	}
	if id := tokens.GetTokenSet().GetIdentity(); id.GetEmail() != "alice@example.com" || id.GetConnectionId() != "acme" || !slices.Contains(id.GetGroups(), "eng") {
		t.Errorf("identity after the imported login: %v", id)
	}
}

// dialKeys returns admin and login clients of a CLI server.
func dialKeys(t *testing.T, s *cliServer) (ssogatev1.ConnectionServiceClient, ssogatev1.LoginServiceClient) {
	t.Helper()
	dial := func(key string) *grpc.ClientConn {
		cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerKey(key)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	return ssogatev1.NewConnectionServiceClient(dial(s.adminKey)), ssogatev1.NewLoginServiceClient(dial(s.loginKey))
}

// TestTestLoginURLWithForeignEntityID: the test-login hint is ssogate's own
// route, not the foreign entity ID with /login appended.
func TestTestLoginURLWithForeignEntityID(t *testing.T) {
	c := &ssogatev1.Connection{Id: "acme", ServiceProvider: &ssogatev1.ServiceProviderInfo{EntityId: oldAuth0Entity,
		MetadataUrl: "https://sso.example.test/saml/acme/metadata"}}
	if got := testLoginURL(c); got != "https://sso.example.test/saml/acme/login?test=1" {
		t.Errorf("testLoginURL = %q", got)
	}
}

// TestCLICreateKeepsSPIdentity: `connections create --sp-entity-id
// --acs-url` keeps a migrated connection's identity, and a collision is
// refused naming both connections.
func TestCLICreateKeepsSPIdentity(t *testing.T) {
	s := startCLIServer(t, map[string]string{"SSOGATE_PUBLIC_HOSTS": oldAuth0Host})
	mdFile, _ := idpMetadataFile(t)
	out := s.cli(t, "connections", "create", "--id", "acme", "--tenant", "t", "--metadata-file", mdFile,
		"--sp-entity-id", oldAuth0Entity, "--acs-url", oldAuth0ACS, "-o", "json").ok(t).connection(t)
	if out.ServiceProvider.GetEntityId() != oldAuth0Entity || out.ServiceProvider.GetAcsUrl() != oldAuth0ACS {
		t.Errorf("created: %v", out.ServiceProvider)
	}
	dup := s.cli(t, "connections", "create", "--id", "acme-2", "--tenant", "t", "--metadata-file", mdFile, "--sp-entity-id", oldAuth0Entity)
	if dup.err == nil || !strings.Contains(dup.err.Error(), `is already used by connection "acme"`) || !strings.Contains(dup.err.Error(), `"acme-2"`) {
		t.Errorf("second create with the same entity ID: %v", dup.err)
	}
}
