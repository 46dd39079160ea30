package server

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// An IdP that takes AuthnRequests by HTTP-POST only: StartLogin's
// redirect_url leads to our page that posts the request, and the login
// completes.
func TestLoginWithPostOnlyIdP(t *testing.T) {
	ctx := context.Background()
	f := newIdPFixtureFor(t, "postonly", "sso_post_url")
	ts, login := f.ts, f.login
	start, err := login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "postonly", ReturnTo: "https://app.example.com/cb"})
	if err != nil {
		t.Fatal(err)
	}
	ours := ts.srv.cfg.ExternalURL + "/saml/postonly/authn/"
	if !strings.HasPrefix(start.RedirectUrl, ours) {
		t.Fatalf("redirect_url %q, want our POST page %s…", start.RedirectUrl, ours)
	}
	page := strings.Replace(start.RedirectUrl, ts.srv.cfg.ExternalURL, ts.httpURL, 1)
	code, body, hdr := get(t, page)
	if code != http.StatusOK || !strings.Contains(body, `name="SAMLRequest"`) || !strings.Contains(hdr.Get("Content-Security-Policy"), "sha256-") {
		t.Fatalf("POST page: %d %s\n%s", code, hdr.Get("Content-Security-Policy"), body)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar}, page, "bob", "bob")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(ts.httpURL+"/saml/postonly/acs", url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "https://app.example.com/cb?code=") {
		t.Fatalf("ACS: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Once answered, the page is gone.
	if code, _, _ := get(t, page); code != http.StatusNotFound {
		t.Errorf("POST page after the login: %d, want 404", code)
	}
}
