package server

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// idpFixture is a test IdP on an HTTP server and a server with one ACTIVE
// connection "acme" to it, registered both ways.
type idpFixture struct {
	ts    *testServer
	idp   *devidp.IdP
	login ssogatev1.LoginServiceClient
}

func newIdPFixture(t *testing.T) idpFixture {
	t.Helper()
	return newIdPFixtureFor(t, "acme", "sso_url")
}

// newIdPFixtureFor names the connection and the IdP setting its SSO URL
// goes in (sso_url for HTTP-Redirect, sso_post_url for HTTP-POST).
func newIdPFixtureFor(t testing.TB, id, ssoField string, extra ...func(*config.Config)) idpFixture {
	t.Helper()
	mux := http.NewServeMux()
	idpServer := httptest.NewServer(mux)
	t.Cleanup(idpServer.Close)
	idp := newDevIdP(t, idpServer.URL+"/idp")
	mux.Handle("/idp/", http.StripPrefix("/idp", idp.Handler()))
	ts := startTestServerWith(t, func(c *config.Config) {
		c.Connections = []map[string]any{{
			"id": id, "tenant_id": "acme-inc", "state": "CONNECTION_STATE_ACTIVE",
			"identity_provider": map[string]any{
				"entity_id": idpServer.URL + "/idp/metadata", ssoField: idpServer.URL + "/idp/sso", "slo_url": idpServer.URL + "/idp/slo",
				"certificates": []any{map[string]any{"pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate.Raw}))}},
			},
			"allowed_return_urls": []any{"https://app.example.com/"},
		}}
		for _, e := range extra {
			e(c)
		}
	})
	_, md, _ := get(t, ts.httpURL+"/saml/"+id+"/metadata")
	if err := idp.RegisterServiceProvider(id, []byte(md)); err != nil {
		t.Fatal(err)
	}
	return idpFixture{ts: ts, idp: idp, login: ssogatev1.NewLoginServiceClient(ts.dial(t, testLoginKey))}
}

// signedResponse runs a login at the IdP and returns what it posts.
func (f idpFixture) signedResponse(t testing.TB, user string) devidp.Posted {
	t.Helper()
	start, err := f.login.StartLogin(context.Background(), &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.com/cb"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(context.Background(), &http.Client{Jar: jar}, start.RedirectUrl, user, user)
	if err != nil {
		t.Fatal(err)
	}
	return posted
}

// A backend that hosts its own ACS hands the SAMLResponse over; every ACS
// check applies, once.
func TestExchangeAssertion(t *testing.T) {
	f := newIdPFixture(t)
	ctx := context.Background()
	posted := f.signedResponse(t, "alice")
	resp, err := f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "acme", SamlResponse: posted.SAMLResponse})
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.TokenSet.Identity; id.Email != "alice@example.com" || id.ConnectionId != "acme" || resp.TokenSet.RefreshToken == "" {
		t.Fatalf("identity = %v", id)
	}
	_, err = f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "acme", SamlResponse: posted.SAMLResponse})
	if status.Code(err) != codes.PermissionDenied || !containsAll(err.Error(), "REJECTION_REASON_ASSERTION_REPLAYED") {
		t.Fatalf("replayed assertion: %v", err)
	}
	_, err = f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "acme", SamlResponse: "not base64!"})
	if status.Code(err) != codes.InvalidArgument || !containsAll(err.Error(), "REJECTION_REASON_MALFORMED_ENCODING") {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "nope", SamlResponse: posted.SAMLResponse}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown connection: %v", err)
	}
}

func TestRevokeSession(t *testing.T) {
	f := newIdPFixture(t)
	ctx := context.Background()
	a, err := f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "acme", SamlResponse: f.signedResponse(t, "alice").SAMLResponse})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "acme", SamlResponse: f.signedResponse(t, "alice").SAMLResponse})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.login.RevokeSession(ctx, &ssogatev1.RevokeSessionRequest{SessionId: a.TokenSet.Identity.SessionId, Reason: "lost laptop"}); err != nil {
		t.Fatal(err)
	}
	v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: a.TokenSet.AccessToken})
	if err != nil || v.Valid || v.Reason != "revoked" {
		t.Fatalf("revoked session's token: %v %v", v, err)
	}
	if _, err := f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: a.TokenSet.RefreshToken}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked session's refresh token: %v", err)
	}
	// The user's other session is untouched.
	if v, _ := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: b.TokenSet.AccessToken}); !v.Valid {
		t.Fatalf("other session: %v", v)
	}
	if _, err := f.login.RevokeSession(ctx, &ssogatev1.RevokeSessionRequest{SessionId: "no-such-session"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown session: %v", err)
	}
	evs, err := ssogatev1.NewAuditServiceClient(f.ts.dial(t, testAdminKey)).ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{Type: "session.revoked"})
	if err != nil || len(evs.Events) != 1 || evs.Events[0].Message != "lost laptop" || evs.Events[0].Detail.Fields["caller"].GetStringValue() != "backend" {
		t.Fatalf("audit: %v %v", evs, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Disabling a connection ends its sessions at once.
func TestDisableConnectionRevokesSessions(t *testing.T) {
	f := newIdPFixture(t)
	ctx := context.Background()
	a, err := f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "acme", SamlResponse: f.signedResponse(t, "bob").SAMLResponse})
	if err != nil {
		t.Fatal(err)
	}
	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	if _, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme", State: ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: a.TokenSet.AccessToken}); v.Valid || v.Reason != "revoked" {
		t.Fatalf("token of a disabled connection: %v", v)
	}
}

// A forged logout message is refused and audited as a logout, not counted
// as an ACS outcome.
func TestForgedLogoutRequestRefused(t *testing.T) {
	f := newIdPFixture(t)
	code, _, _ := get(t, f.ts.httpURL+"/saml/acme/slo?SAMLRequest=bm90IGEgcmVxdWVzdA%3D%3D")
	if code != http.StatusBadRequest {
		t.Fatalf("forged LogoutRequest: %d, want 400", code)
	}
	evs, err := ssogatev1.NewAuditServiceClient(f.ts.dial(t, testAdminKey)).ListAuditEvents(context.Background(),
		&ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", Type: "logout.failed"})
	if err != nil || len(evs.Events) != 1 || evs.Events[0].Reason == ssogatev1.RejectionReason_REJECTION_REASON_UNSPECIFIED {
		t.Fatalf("logout.failed audit: %v %v", evs, err)
	}
	if _, body, _ := get(t, f.ts.httpURL+"/metrics"); strings.Contains(body, "ssogate_acs_outcomes_total{reason=") {
		t.Error("a refused logout message was counted as an ACS outcome")
	}
}
