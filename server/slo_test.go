package server

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

// logoutSigner is the IdP's side of Single Logout: crewjam's
// ServiceProvider signs LogoutRequests with a key pinned on the
// connection beside the login key, as the IdP's own entity.
type logoutSigner struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newLogoutSigner(t *testing.T) *logoutSigner {
	t.Helper()
	key, cert := signingKey(t, "idp logout")
	return &logoutSigner{key: key, cert: cert}
}

var formInput = regexp.MustCompile(`name="(SAMLRequest|SAMLResponse|RelayState)" value="([^"]*)"`)

// request signs a LogoutRequest for nameID from idpEntity to spSLO, over
// binding: a URL for HTTP-Redirect, form fields for HTTP-POST.
func (l *logoutSigner) request(t *testing.T, idpEntity, spEntity, spSLO, nameID, binding string) (*url.URL, url.Values) {
	t.Helper()
	peer := &crewsaml.ServiceProvider{
		EntityID: idpEntity, Key: l.key, Certificate: l.cert, SignatureMethod: dsig.RSASHA256SignatureMethod,
		IDPMetadata: &crewsaml.EntityDescriptor{EntityID: spEntity, IDPSSODescriptors: []crewsaml.IDPSSODescriptor{{
			SSODescriptor: crewsaml.SSODescriptor{SingleLogoutServices: []crewsaml.Endpoint{
				{Binding: crewsaml.HTTPRedirectBinding, Location: spSLO}, {Binding: crewsaml.HTTPPostBinding, Location: spSLO}}},
		}}},
	}
	if binding == crewsaml.HTTPRedirectBinding {
		u, err := peer.MakeRedirectLogoutRequest(nameID, "rs-1")
		if err != nil {
			t.Fatal(err)
		}
		return u, nil
	}
	page, err := peer.MakePostLogoutRequest(nameID, "rs-1")
	if err != nil {
		t.Fatal(err)
	}
	v := url.Values{}
	for _, m := range formInput.FindAllStringSubmatch(string(page), -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return nil, v
}

// TestWireIdPLogoutBindings: an IdP-initiated LogoutRequest revokes the
// session and is answered over a binding the IdP has an endpoint for (the
// request's own when it can, else the other), or, with no endpoint, on a
// "signed out" page of ours; never a 500 after the revocation. SLO
// failure pages say "sign out".
func TestWireIdPLogoutBindings(t *testing.T) {
	signer := newLogoutSigner(t)
	const idpSLO = "https://idp.example.com/slo"
	// The IdP-side settings need the fixture's IdP URL: the connections
	// are created over the API once it is known.
	f := newWireFixture(t, nil)
	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	ctx := context.Background()
	for id, slo := range map[string]map[string]string{
		"redirect-only": {"slo_url": idpSLO},
		"post-only":     {"slo_post_url": idpSLO},
		"no-slo":        {},
	} {
		idp := &ssogatev1.IdentityProviderSettings{
			EntityId: f.idpURL + "/metadata", SsoUrl: f.idpURL + "/sso",
			SloUrl: slo["slo_url"], SloPostUrl: slo["slo_post_url"],
			Certificates: []*ssogatev1.Certificate{{Pem: pemOf(f.idp.Certificate)}, {Pem: pemOf(signer.cert)}},
		}
		_, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
			Id: id, TenantId: "t-" + id, State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE, IdentityProvider: idp,
			AllowedReturnUrls: []string{wireReturnTo},
		}})
		if err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		if err := f.idp.RegisterServiceProvider(id, f.spMetadata(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		conn, binding string
		want          string // "redirect", "post" or "page"
	}{
		{"redirect-only", crewsaml.HTTPPostBinding, "redirect"}, // the 500 of old
		{"redirect-only", crewsaml.HTTPRedirectBinding, "redirect"},
		{"post-only", crewsaml.HTTPRedirectBinding, "post"},
		{"post-only", crewsaml.HTTPPostBinding, "post"},
		{"no-slo", crewsaml.HTTPPostBinding, "page"},
	} {
		t.Run(tc.conn+" over "+tc.binding[strings.LastIndexByte(tc.binding, ':')+1:], func(t *testing.T) {
			ex, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, tc.conn, devAlice.Name)})
			if err != nil {
				t.Fatal(err)
			}
			spEntity := f.ts.srv.cfg.ExternalURL + "/saml/" + tc.conn
			u, form := signer.request(t, f.idpURL+"/metadata", spEntity, spEntity+"/slo", ex.TokenSet.Identity.NameId, tc.binding)
			var resp *http.Response
			if u != nil {
				resp, err = noRedirect.Get(f.ts.httpURL + "/saml/" + tc.conn + "/slo?" + u.RawQuery)
			} else {
				resp, err = noRedirect.PostForm(f.ts.httpURL+"/saml/"+tc.conn+"/slo", form)
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch tc.want {
			case "redirect":
				loc, _ := url.Parse(resp.Header.Get("Location"))
				if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), idpSLO+"?") || loc.Query().Get("SAMLResponse") == "" {
					t.Fatalf("answer %d %q, want 302 to the IdP's Redirect SLO with a SAMLResponse\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
				}
			case "post":
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `action="`+idpSLO+`"`) || !strings.Contains(string(body), `name="SAMLResponse"`) {
					t.Fatalf("answer %d, want a form posting a SAMLResponse to the IdP's POST SLO\n%s", resp.StatusCode, body)
				}
			case "page":
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "You are signed out") {
					t.Fatalf("answer %d, want our signed-out page\n%s", resp.StatusCode, body)
				}
			}
			v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: ex.TokenSet.AccessToken})
			if err != nil || v.Valid {
				t.Fatalf("access token after the IdP's logout: %v %v, want revoked", v, err)
			}
		})
	}

	t.Run("failure pages say sign out", func(t *testing.T) {
		for name, form := range map[string]url.Values{
			"LogoutRequest":  {"SAMLRequest": {"bm90IGEgcmVxdWVzdA=="}},
			"LogoutResponse": {"SAMLResponse": {"bm90IGEgcmVzcG9uc2U="}},
		} {
			resp, err := http.PostForm(f.ts.httpURL+"/saml/redirect-only/slo", form)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "sign you out") || strings.Contains(string(body), "sign you in") {
				t.Errorf("bad %s: %d, want 400 saying \"sign you out\"\n%s", name, resp.StatusCode, body)
			}
		}
	})
}

// The IdP metadata's HTTP-POST SingleLogoutService lands in slo_post_url.
func TestApplyIdPMetadataSLOPost(t *testing.T) {
	c := &ssogatev1.Connection{}
	applyIdPMetadata(c, saml.IdentityProvider{EntityID: "https://idp", SSORedirectURL: "https://idp/sso",
		SLORedirectURL: "https://idp/slo-r", SLOPostURL: "https://idp/slo-p"})
	if c.IdentityProvider.SloUrl != "https://idp/slo-r" || c.IdentityProvider.SloPostUrl != "https://idp/slo-p" {
		t.Fatalf("idp settings %+v", c.IdentityProvider)
	}
}
