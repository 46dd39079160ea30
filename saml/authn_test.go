package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

func TestNewAuthnRequestContent(t *testing.T) {
	tests := []struct {
		name  string
		opts  AuthnRequestOptions
		check func(t *testing.T, el *etree.Element)
	}{
		{"defaults", AuthnRequestOptions{}, func(t *testing.T, el *etree.Element) {
			for _, a := range []string{"ForceAuthn", "IsPassive"} {
				if el.SelectAttr(a) != nil {
					t.Errorf("%s set", a)
				}
			}
			if el.FindElement("./RequestedAuthnContext") != nil {
				t.Error("RequestedAuthnContext set")
			}
		}},
		{"force and passive", AuthnRequestOptions{ForceAuthn: true, IsPassive: true}, func(t *testing.T, el *etree.Element) {
			if el.SelectAttrValue("ForceAuthn", "") != "true" || el.SelectAttrValue("IsPassive", "") != "true" {
				t.Error("ForceAuthn/IsPassive not true")
			}
		}},
		{"authn context", AuthnRequestOptions{
			RequestedAuthnContext: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport", "urn:x:mfa"},
			Comparison:            "minimum",
		}, func(t *testing.T, el *etree.Element) {
			rac := el.FindElement("./RequestedAuthnContext")
			if rac == nil || rac.SelectAttrValue("Comparison", "") != "minimum" {
				t.Fatal("RequestedAuthnContext missing or wrong Comparison")
			}
			if refs := rac.SelectElements("AuthnContextClassRef"); len(refs) != 2 || refs[1].Text() != "urn:x:mfa" || refs[1].NamespaceURI() != nsSAML {
				t.Errorf("class refs %v", refs)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestSP(t, func(c *Config) { c.NameIDFormat = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" })
			req, err := sp.NewAuthnRequest(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^id-[0-9a-f]{40}$`).MatchString(req.ID) {
				t.Errorf("ID %q is not id- and 160 random bits", req.ID)
			}
			if !req.IssueInstant.Equal(protoNow) {
				t.Errorf("IssueInstant %v", req.IssueInstant)
			}
			el := decodeRedirect(t, req.RedirectURL, "SAMLRequest")
			want := map[string]string{
				"ID": req.ID, "Version": "2.0", "IssueInstant": "2027-06-01T12:00:00.000Z", "Destination": testIdPSSO,
				"AssertionConsumerServiceURL": sp.ACSURL(), "ProtocolBinding": BindingHTTPPost,
			}
			for a, v := range want {
				if got := el.SelectAttrValue(a, ""); got != v {
					t.Errorf("%s = %q, want %q", a, got, v)
				}
			}
			if el.Tag != "AuthnRequest" || el.NamespaceURI() != nsSAMLP {
				t.Errorf("root %s in %s", el.Tag, el.NamespaceURI())
			}
			if iss := el.ChildElements()[0]; iss.Tag != "Issuer" || iss.Text() != sp.EntityID() || iss.NamespaceURI() != nsSAML {
				t.Errorf("first child %s %q", iss.Tag, iss.Text())
			}
			pol := el.FindElement("./NameIDPolicy")
			if pol == nil || pol.SelectAttrValue("Format", "") != "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" || pol.SelectAttrValue("AllowCreate", "") != "true" {
				t.Errorf("NameIDPolicy %v", pol)
			}
			tc.check(t, el)
		})
	}
}

func TestNewAuthnRequestIDsDifferAndUseRand(t *testing.T) {
	sp := newTestSP(t, func(c *Config) { c.Rand = bytes.NewReader(bytes.Repeat([]byte{0xab}, 40)) })
	a, err := sp.NewAuthnRequest(AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "id-"+strings.Repeat("ab", 20) {
		t.Errorf("ID %q does not come from cfg.Rand", a.ID)
	}
	b, err := sp.NewAuthnRequest(AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID { // same bytes from the fixed reader
		t.Errorf("IDs %q and %q", a.ID, b.ID)
	}
	real := newTestSP(t, nil)
	c, _ := real.NewAuthnRequest(AuthnRequestOptions{})
	d, _ := real.NewAuthnRequest(AuthnRequestOptions{})
	if c.ID == d.ID {
		t.Error("two requests share an ID")
	}
}

func TestNewAuthnRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		opts AuthnRequestOptions
		want string
	}{
		{"no idp endpoint", func(c *Config) { c.IdP.SSORedirectURL, c.IdP.SSOPostURL = "", "" }, AuthnRequestOptions{}, "no SingleSignOnService"},
		{"relay state too long", nil, AuthnRequestOptions{RelayState: strings.Repeat("r", 81)}, "at most 80"},
		{"bad comparison", nil, AuthnRequestOptions{RequestedAuthnContext: []string{"x"}, Comparison: "best"}, "Comparison"},
		{"comparison alone", nil, AuthnRequestOptions{Comparison: "exact"}, "needs RequestedAuthnContext"},
		{"rand fails", func(c *Config) { c.Rand = iotest.ErrReader(errors.New("entropy gone")) }, AuthnRequestOptions{}, "entropy gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newTestSP(t, tc.cfg).NewAuthnRequest(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAuthnRequestRedirectSignature(t *testing.T) {
	for _, name := range []string{"sp-rsa", "ec-sp"} {
		t.Run(name, func(t *testing.T) {
			sp := newTestSP(t, signing(t, name))
			req, err := sp.NewAuthnRequest(AuthnRequestOptions{RelayState: "st/ate+1 ü"})
			if err != nil {
				t.Fatal(err)
			}
			raw := rawQueryOf(t, req.RedirectURL)
			var names []string
			for _, p := range strings.Split(raw, "&") {
				k, _, _ := strings.Cut(p, "=")
				names = append(names, k)
			}
			if strings.Join(names, ",") != "SAMLRequest,RelayState,SigAlg,Signature" {
				t.Errorf("parameters %v", names)
			}
			q, err := parseRedirectQuery(raw, "SAMLRequest")
			if err != nil {
				t.Fatal(err)
			}
			if q.relayState != "st/ate+1 ü" {
				t.Errorf("RelayState %q", q.relayState)
			}
			wantAlg := algRSASHA256
			if strings.HasPrefix(name, "ec") {
				wantAlg = algECDSASHA256
			}
			if q.sigAlg != wantAlg {
				t.Errorf("SigAlg %s", q.sigAlg)
			}
			if err := pinning(t, key(t, name).cert).verifyQuery(q, "AuthnRequest", protoNow); err != nil {
				t.Fatalf("own signature does not verify: %v", err)
			}
			if err := pinning(t, key(t, "other").cert).verifyQuery(q, "AuthnRequest", protoNow); err == nil {
				t.Fatal("verified with the wrong key")
			}
			// The redirect binding carries no XML signature.
			if decodeRedirect(t, req.RedirectURL, "SAMLRequest").FindElement("./Signature") != nil {
				t.Error("redirect message has an enveloped signature")
			}
		})
	}
}

func TestAuthnRequestDestinationWithQuery(t *testing.T) {
	const google = "https://accounts.google.com/o/saml2/idp?idpid=C03x9k2mq"
	sp := newTestSP(t, func(c *Config) { c.IdP.SSORedirectURL = google; signing(t, "sp-rsa")(c) })
	req, err := sp.NewAuthnRequest(AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(req.RedirectURL, google+"&SAMLRequest=") {
		t.Fatalf("URL %s", req.RedirectURL)
	}
	if got := decodeRedirect(t, req.RedirectURL, "SAMLRequest").SelectAttrValue("Destination", ""); got != google {
		t.Errorf("Destination %q", got)
	}
	q, err := parseRedirectQuery(rawQueryOf(t, req.RedirectURL), "SAMLRequest")
	if err != nil {
		t.Fatal(err)
	}
	if err := pinning(t, key(t, "sp-rsa").cert).verifyQuery(q, "AuthnRequest", protoNow); err != nil {
		t.Fatal(err)
	}
}

func TestAuthnRequestPostForm(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		signed bool
	}{
		{"unsigned", nil, false},
		{"rsa", signing(t, "sp-rsa"), true},
		{"ecdsa", signing(t, "ec-sp"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestSP(t, tc.cfg)
			const rs = `"><script>alert(1)</script>`
			req, err := sp.NewAuthnRequest(AuthnRequestOptions{RelayState: rs})
			if err != nil {
				t.Fatal(err)
			}
			page, err := req.PostForm()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(page, []byte("<script>alert")) {
				t.Fatal("RelayState not escaped")
			}
			if !bytes.Contains(page, []byte(`action="`+testIdPSSO+`"`)) || !bytes.Contains(page, []byte(`<button type="submit">`)) {
				t.Errorf("form lacks action or visible button:\n%s", page)
			}
			if n := bytes.Count(page, []byte("<script")); n != 1 || !bytes.Contains(page, []byte("<script>"+postFormScript+"</script>")) {
				t.Errorf("want exactly the one known script (hash %s)", PostFormScriptHash)
			}
			f := postFields(t, page)
			if f.Get("RelayState") != rs {
				t.Errorf("RelayState round trip %q", f.Get("RelayState"))
			}
			xmlBytes, err := base64.StdEncoding.DecodeString(f.Get("SAMLRequest"))
			if err != nil {
				t.Fatal(err)
			}
			root, err := parseXML(xmlBytes, 1<<20, defaultXMLLimits)
			if err != nil {
				t.Fatal(err)
			}
			if root.SelectAttrValue("ID", "") != req.ID || root.SelectAttrValue("Destination", "") != testIdPSSO {
				t.Error("POST message differs from the request")
			}
			sig := root.FindElement("./Signature")
			if (sig != nil) != tc.signed {
				t.Fatalf("signed = %v, want %v", sig != nil, tc.signed)
			}
			if !tc.signed {
				return
			}
			if root.ChildElements()[1] != sig {
				t.Error("Signature is not right after Issuer")
			}
			name := map[string]string{"rsa": "sp-rsa", "ecdsa": "ec-sp"}[tc.name]
			if _, err := pinning(t, key(t, name).cert).verifySignedXML(root, protoNow); err != nil {
				t.Fatalf("own XML signature does not verify: %v", err)
			}
		})
	}
}

func TestAuthnRequestPostOnlyIdP(t *testing.T) {
	sp := newTestSP(t, func(c *Config) { c.IdP.SSORedirectURL = "" })
	req, err := sp.NewAuthnRequest(AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if req.RedirectURL != "" {
		t.Error("redirect URL without a redirect endpoint")
	}
	if _, err := req.PostForm(); err != nil {
		t.Fatal(err)
	}
	sp = newTestSP(t, func(c *Config) { c.IdP.SSOPostURL = "" })
	req, err = sp.NewAuthnRequest(AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := req.PostForm(); err == nil {
		t.Error("post form without a POST endpoint")
	}
}

// pinning is an SP that trusts only cert, to check our own signatures.
func pinning(t *testing.T, cert *x509.Certificate) *ServiceProvider {
	t.Helper()
	return newTestSP(t, func(c *Config) { c.IdP.Certificates = []*x509.Certificate{cert} })
}

// crewjamIdP is crewjam/saml's IdentityProvider, knowing our SP through
// its metadata, at protoNow.
func crewjamIdP(t *testing.T, sp *ServiceProvider, want bool) *crewjam.IdentityProvider {
	t.Helper()
	md, err := sp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(md, &ed); err != nil {
		t.Fatal(err)
	}
	k := key(t, "idp")
	sso, _ := url.Parse(testIdPSSO)
	meta, _ := url.Parse(testIdPEntity)
	return &crewjam.IdentityProvider{
		Signer: k.signer, Certificate: k.cert, SSOURL: *sso, MetadataURL: *meta,
		ServiceProviderProvider: spProvider{sp.EntityID(): &ed},
		WantAuthnRequestsSigned: want,
		RejectSHA1Signatures:    true,
		Clock:                   dsig.NewFakeClockAt(protoNow),
	}
}

type spProvider map[string]*crewjam.EntityDescriptor

func (p spProvider) GetServiceProvider(_ *http.Request, id string) (*crewjam.EntityDescriptor, error) {
	if ed, ok := p[id]; ok {
		return ed, nil
	}
	return nil, os.ErrNotExist
}

func TestAuthnRequestCrewjamIdPAccepts(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		binding string
	}{
		{"redirect unsigned", nil, BindingHTTPRedirect},
		{"redirect rsa signed", signing(t, "sp-rsa"), BindingHTTPRedirect},
		{"redirect ecdsa signed", signing(t, "ec-sp"), BindingHTTPRedirect},
		{"post rsa signed", signing(t, "sp-rsa"), BindingHTTPPost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestSP(t, tc.cfg)
			signed := tc.cfg != nil
			idp := crewjamIdP(t, sp, signed)
			req, err := sp.NewAuthnRequest(AuthnRequestOptions{RelayState: "abc"})
			if err != nil {
				t.Fatal(err)
			}
			var hr *http.Request
			if tc.binding == BindingHTTPRedirect {
				hr = httptest.NewRequest("GET", req.RedirectURL, nil)
			} else {
				page, err := req.PostForm()
				if err != nil {
					t.Fatal(err)
				}
				hr = httptest.NewRequest("POST", testIdPSSO, strings.NewReader(postFields(t, page).Encode()))
				hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			ir, err := crewjam.NewIdpAuthnRequest(idp, hr)
			if err != nil {
				t.Fatal(err)
			}
			if err := ir.Validate(); err != nil {
				t.Fatalf("crewjam IdP refuses our AuthnRequest: %v", err)
			}
			if ir.Request.ID != req.ID || ir.RelayState != "abc" || ir.ACSEndpoint == nil || ir.ACSEndpoint.Location != sp.ACSURL() {
				t.Errorf("crewjam read ID %q RelayState %q ACS %+v", ir.Request.ID, ir.RelayState, ir.ACSEndpoint)
			}
		})
	}
	t.Run("tampered signed redirect refused", func(t *testing.T) {
		sp := newTestSP(t, signing(t, "sp-rsa"))
		idp := crewjamIdP(t, sp, true)
		req, err := sp.NewAuthnRequest(AuthnRequestOptions{RelayState: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		ir, err := crewjam.NewIdpAuthnRequest(idp, httptest.NewRequest("GET", strings.Replace(req.RedirectURL, "RelayState=abc", "RelayState=abd", 1), nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := ir.Validate(); err == nil {
			t.Fatal("crewjam accepted a tampered request: the signature does not cover RelayState")
		}
	})
}
