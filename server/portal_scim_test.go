package server

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

var scimSecretPattern = regexp.MustCompile(`id="scim-secret">(scim_[^<]+)<`)

// scimGet sends GET /scim/v2/{conn}/Users with the bearer token.
func (f *portalFixture) scimGet(t *testing.T, conn, token string) int {
	t.Helper()
	req, err := http.NewRequest("GET", f.ts.httpURL+"/scim/v2/"+conn+"/Users", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPortalSCIMToken(t *testing.T) {
	f := newPortalFixture(t)
	cookie := f.open(t)
	same := map[string]string{"Origin": portalOrigin, "Sec-Fetch-Site": "same-origin"}

	resp, body := f.do(t, "GET", "/setup/scim", cookie, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "http://localhost:8080/scim/v2/acme") {
		t.Fatalf("SCIM page = %d:\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{"Tenant URL", "Secret Token", "Test Connection", "SCIM connector base URL",
		"Unique identifier field for users", "Supported provisioning actions", "HTTP Header", "Other SCIM 2.0 clients"} {
		if !strings.Contains(body, want) {
			t.Errorf("SCIM page lacks %q", want)
		}
	}
	if _, idp := f.do(t, "GET", "/setup/idp", cookie, nil, nil); !strings.Contains(idp, `href="/setup/scim"`) {
		t.Error("the step list lacks the SCIM step for a link with SCIM")
	}
	csrf := csrfOf(t, body)

	// A cross-site post makes nothing.
	resp, _ = f.do(t, "POST", "/setup/scim/tokens", cookie, url.Values{"csrf": {csrf}},
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site token post = %d, want 403", resp.StatusCode)
	}
	resp, _ = f.do(t, "POST", "/setup/scim/tokens", cookie, url.Values{"csrf": {"wrong"}}, same)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("token post with a wrong CSRF token = %d, want 403", resp.StatusCode)
	}
	list, err := f.admin.ListScimTokens(context.Background(), &ssogatev1.ListScimTokensRequest{ConnectionId: "acme"})
	if err != nil || len(list.ScimTokens) != 0 {
		t.Fatalf("tokens after refused posts: %v %v", list, err)
	}

	resp, body = f.do(t, "POST", "/setup/scim/tokens", cookie, url.Values{"csrf": {csrf}}, same)
	m := scimSecretPattern.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("token post = %d, no secret shown:\n%s", resp.StatusCode, body)
	}
	secret := m[1]
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the page with the secret has Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	if resp.Header.Get("Location") != "" {
		t.Errorf("the secret page redirects to %q", resp.Header.Get("Location"))
	}
	if got := f.scimGet(t, "acme", secret); got != http.StatusOK {
		t.Fatalf("GET /scim/v2/acme/Users with the portal's token = %d, want 200", got)
	}
	if got := f.scimGet(t, "beta", secret); got != http.StatusUnauthorized {
		t.Errorf("GET /scim/v2/beta/Users with acme's token = %d, want 401", got)
	}
	// Shown once: the page afterwards lists the token but not its secret.
	_, body = f.do(t, "GET", "/setup/scim", cookie, nil, nil)
	if strings.Contains(body, secret) {
		t.Error("the SCIM page shows the secret again")
	}
	list, err = f.admin.ListScimTokens(context.Background(), &ssogatev1.ListScimTokensRequest{ConnectionId: "acme"})
	if err != nil || len(list.ScimTokens) != 1 {
		t.Fatalf("tokens after the post: %v %v", list, err)
	}
	id := list.ScimTokens[0].Id
	if !strings.Contains(body, "revoke-"+id) {
		t.Errorf("the SCIM page does not offer to revoke %s", id)
	}

	// The status page shows the SCIM state and the request log.
	_, st := f.do(t, "GET", "/setup/status", cookie, nil, nil)
	if !strings.Contains(st, "1 working token") || !strings.Contains(st, "GET /Users") {
		t.Errorf("status page SCIM state:\n%s", st)
	}

	// Revoking a token of another connection through this link does nothing.
	other, err := f.admin.CreateScimToken(context.Background(), &ssogatev1.CreateScimTokenRequest{ConnectionId: "beta"})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = f.do(t, "POST", "/setup/scim/revoke", cookie, url.Values{"csrf": {csrf}, "token_id": {other.ScimToken.Id}}, same)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("revoking beta's token through acme's link = %d, want 404", resp.StatusCode)
	}
	if got := f.scimGet(t, "beta", other.Secret); got != http.StatusOK {
		t.Errorf("beta's token after the refused revoke = %d, want 200", got)
	}

	// Revocation through the portal stops the token.
	resp, _ = f.do(t, "POST", "/setup/scim/revoke", cookie, url.Values{"csrf": {csrf}, "token_id": {id}},
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden || f.scimGet(t, "acme", secret) != http.StatusOK {
		t.Errorf("cross-site revoke = %d, or it revoked", resp.StatusCode)
	}
	resp, _ = f.do(t, "POST", "/setup/scim/revoke", cookie, url.Values{"csrf": {csrf}, "token_id": {id}}, same)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke = %d, want 303", resp.StatusCode)
	}
	if got := f.scimGet(t, "acme", secret); got != http.StatusUnauthorized {
		t.Errorf("the revoked token = %d, want 401", got)
	}

	// Both changes are the link's in the audit log.
	ev, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", PageSize: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ev.Events {
		if e.Type == "scim_token.created" || e.Type == "scim_token.revoked" {
			if c := e.Detail.AsMap()["caller"]; c != "setup link "+f.link.SetupLink.Id {
				t.Errorf("%s caller %v, want the setup link", e.Type, c)
			}
			seen[e.Type] = true
		}
	}
	if !seen["scim_token.created"] || !seen["scim_token.revoked"] {
		t.Errorf("audit events seen %v", seen)
	}
	if strings.Contains(f.ts.logs.String(), secret) || strings.Contains(f.ts.logs.String(), strings.SplitN(secret, ".", 2)[1]) {
		t.Error("the SCIM token reached the logs")
	}
}

func TestPortalSCIMNeedsFeature(t *testing.T) {
	f := newPortalFixture(t)
	saml, err := f.admin.CreateSetupLink(context.Background(), &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme",
		Ttl: durationpb.New(time.Hour), Features: []ssogatev1.SetupLinkFeature{ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SAML}})
	if err != nil {
		t.Fatal(err)
	}
	f.link = saml
	cookie := f.open(t)
	resp, body := f.do(t, "GET", "/setup/scim", cookie, nil, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "does not cover directory sync") {
		t.Errorf("SCIM page for a SAML-only link = %d:\n%s", resp.StatusCode, body)
	}
	_, idp := f.do(t, "GET", "/setup/idp", cookie, nil, nil)
	if strings.Contains(idp, `href="/setup/scim"`) {
		t.Error("the step list shows the SCIM step to a SAML-only link")
	}
	_, md := f.do(t, "GET", "/setup/metadata", cookie, nil, nil)
	csrf := csrfOf(t, md)
	resp, _ = f.do(t, "POST", "/setup/scim/tokens", cookie, url.Values{"csrf": {csrf}},
		map[string]string{"Origin": portalOrigin, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("token post for a SAML-only link = %d, want 404", resp.StatusCode)
	}
	list, err := f.admin.ListScimTokens(context.Background(), &ssogatev1.ListScimTokensRequest{ConnectionId: "acme"})
	if err != nil || len(list.ScimTokens) != 0 {
		t.Errorf("tokens made through a SAML-only link: %v %v", list, err)
	}
	if _, st := f.do(t, "GET", "/setup/status", cookie, nil, nil); strings.Contains(st, "scim-requests") {
		t.Error("the status page shows SCIM to a SAML-only link")
	}
}

func TestPortalSCIMOnlyLink(t *testing.T) {
	f := newPortalFixture(t)
	link, err := f.admin.CreateSetupLink(context.Background(), &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme",
		Ttl: durationpb.New(time.Hour), Features: []ssogatev1.SetupLinkFeature{ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SCIM}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link.SetupLink.Url)
	resp, _ := f.do(t, "GET", u.Path, "", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/setup/scim" {
		t.Fatalf("open a SCIM-only link = %d Location %q, want 303 to /setup/scim", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := f.do(t, "GET", "/setup/scim", link.Secret, nil, nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `href="/setup/metadata"`) {
		t.Errorf("SCIM page for a SCIM-only link = %d, or it offers the SAML steps:\n%s", resp.StatusCode, body)
	}
	if resp, _ := f.do(t, "GET", "/setup/metadata", link.Secret, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("metadata page for a SCIM-only link = %d, want 403", resp.StatusCode)
	}
}
