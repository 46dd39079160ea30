package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

func introspect(t *testing.T, baseURL string, auth func(*http.Request), tok string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestDiscoveryDocument(t *testing.T) {
	ts := startTestServer(t)
	code, body, hdr := get(t, ts.httpURL+"/.well-known/openid-configuration")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery = %d %s", code, hdr.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	ext := ts.srv.cfg.ExternalURL
	want := map[string]any{
		"issuer": ts.srv.cfg.Token.Issuer, "jwks_uri": ext + "/.well-known/jwks.json",
		"introspection_endpoint": ext + "/oauth2/introspect",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	if algs, _ := doc["id_token_signing_alg_values_supported"].([]any); len(algs) == 0 || algs[0] != "ES256" {
		t.Errorf("algorithms %v, want ES256 first", doc["id_token_signing_alg_values_supported"])
	}
	// Nothing ssogate does not do.
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "response_types_supported"} {
		if _, ok := doc[k]; ok {
			t.Errorf("the document claims %s", k)
		}
	}
}

// Introspection takes a login-scoped API key (Bearer or Basic password),
// answers active with the token's claims, and sees revocation at once;
// an inactive token gets {"active":false} and nothing else.
func TestIntrospection(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}})
	ctx := context.Background()
	res, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, "acme", "alice")})
	if err != nil {
		t.Fatal(err)
	}
	access := res.TokenSet.AccessToken
	bearerKey := func(k string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k) }
	}
	basicKey := func(r *http.Request) { r.SetBasicAuth("backend", testLoginKey) }
	// RFC 6749 2.3.1: OAuth clients form-encode the secret (openid-client
	// sends "-" as %2D).
	basicEncoded := func(r *http.Request) { r.SetBasicAuth("backend", strings.ReplaceAll(testLoginKey, "-", "%2D")) }

	for name, auth := range map[string]func(*http.Request){"bearer": bearerKey(testLoginKey), "basic": basicKey, "basic form-encoded": basicEncoded} {
		code, _, body := introspect(t, f.ts.httpURL, auth, access)
		if code != http.StatusOK || body["active"] != true || body["sub"] != res.TokenSet.Identity.Subject ||
			body["tenant"] != "tenant-acme" || body["iss"] != f.ts.srv.cfg.Token.Issuer || body["exp"] == nil {
			t.Errorf("%s: %d %v, want active with the token's claims", name, code, body)
		}
	}
	for name, auth := range map[string]func(*http.Request){"no key": nil, "unknown key": bearerKey("nope"), "admin key": bearerKey(testAdminKey)} {
		code, hdr, body := introspect(t, f.ts.httpURL, auth, access)
		if code != http.StatusUnauthorized || body["error"] != "invalid_client" || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %v %q, want 401 invalid_client with a challenge", name, code, body, hdr.Get("WWW-Authenticate"))
		}
		if _, ok := body["active"]; ok {
			t.Errorf("%s: a refused caller learns about the token: %v", name, body)
		}
	}
	inactive := func(what, tok string) {
		t.Helper()
		code, _, body := introspect(t, f.ts.httpURL, bearerKey(testLoginKey), tok)
		if code != http.StatusOK || len(body) != 1 || body["active"] != false {
			t.Errorf("%s: %d %v, want exactly {\"active\":false}", what, code, body)
		}
	}
	inactive("garbage", "not-a-token")
	if _, err := f.login.RevokeSession(ctx, &ssogatev1.RevokeSessionRequest{SessionId: res.TokenSet.Identity.SessionId}); err != nil {
		t.Fatal(err)
	}
	inactive("revoked", access)
}

// The served OpenAPI document names this build and this server.
func TestServedOpenAPI(t *testing.T) {
	ts := startTestServerWith(t, nil, WithVersion("1.2.3-test"))
	code, body, _ := get(t, ts.httpURL+"/v1/openapi.json")
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct{ Version string }
		Servers []struct{ URL string }
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != http.StatusOK {
		t.Fatalf("%d %v", code, err)
	}
	if doc.Info.Version != "1.2.3-test" || len(doc.Servers) != 1 || doc.Servers[0].URL != ts.srv.cfg.ExternalURL || doc.OpenAPI[:2] != "3." {
		t.Errorf("served %+v", doc)
	}
}
