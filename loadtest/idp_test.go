package loadtest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

// oneShot is a pending-request store holding one AuthnRequest ID.
type oneShot struct{ id string }

func (o *oneShot) ConsumeRequest(_ context.Context, _, id string) error {
	if id != o.id {
		return saml.ErrRequestUnknown
	}
	o.id = ""
	return nil
}

type seen map[string]bool

func (s seen) RecordAssertion(_ context.Context, _, id string, _ time.Time) error {
	if s[id] {
		return saml.ErrAssertionSeen
	}
	s[id] = true
	return nil
}

// TestIdPResponseAcceptedBySP: the load test's IdP answers an AuthnRequest
// of ssogate's own Service Provider with a Response that SP accepts, with
// every check on (signature with the pinned certificate, Destination,
// Recipient, Audience, InResponseTo, times), and names the user it was
// asked to.
func TestIdPResponseAcceptedBySP(t *testing.T) {
	idp, err := NewIdP("urn:ssogate:loadtest:x", "https://idp.loadtest.invalid/sso", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(idp.CertificatePEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := saml.New(saml.Config{
		ConnectionID: "loadtest-x", ExternalURL: "https://sso.example.com",
		IdP: saml.IdentityProvider{EntityID: idp.EntityID, SSORedirectURL: idp.SSOURL, Certificates: []*x509.Certificate{cert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	areq, err := sp.NewAuthnRequest(saml.AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := idp.ParseRedirect(areq.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	if req.ID != areq.ID || req.Issuer != "https://sso.example.com/saml/loadtest-x" || req.ACSURL != "https://sso.example.com/saml/loadtest-x/acs" {
		t.Fatalf("parsed AuthnRequest %+v", req)
	}
	user := User{NameID: "user-7@loadtest.invalid", Email: "user-7@loadtest.invalid", GivenName: "Load", FamilyName: "Test 7", Groups: []string{"a", "b"}}
	b64, err := idp.Response(req, req.ACSURL, user)
	if err != nil {
		t.Fatal(err)
	}
	replay := seen{}
	ident, err := sp.ValidateResponse(context.Background(), saml.ResponseInput{SAMLResponse: b64, Requests: &oneShot{areq.ID}, Replay: replay})
	if err != nil {
		t.Fatalf("the SP refused the load test's Response: %v", err)
	}
	if ident.NameID != user.NameID || ident.Mapped.Email != user.Email || ident.InResponseTo != areq.ID ||
		strings.Join(ident.Mapped.Groups, ",") != "a,b" || ident.Mapped.GivenName != "Load" {
		t.Errorf("identity = %+v", ident)
	}

	// The same Response again is a replay: the SP's checks are really on.
	_, err = sp.ValidateResponse(context.Background(), saml.ResponseInput{SAMLResponse: b64, Requests: &oneShot{areq.ID}, Replay: replay})
	var se *saml.Error
	if !errors.As(err, &se) || se.Reason != saml.ReasonAssertionReplayed {
		t.Errorf("replay: %v", err)
	}
	// A Response for another SP's ACS is refused.
	areq2, _ := sp.NewAuthnRequest(saml.AuthnRequestOptions{})
	req2, _ := idp.ParseRedirect(areq2.RedirectURL)
	wrong, err := idp.Response(req2, "https://elsewhere.example.com/acs", user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.ValidateResponse(context.Background(), saml.ResponseInput{SAMLResponse: wrong, Requests: &oneShot{areq2.ID}, Replay: replay}); err == nil {
		t.Error("a Response naming another ACS was accepted")
	}
}

func TestParseRedirectRefusesJunk(t *testing.T) {
	idp := &IdP{}
	for _, u := range []string{
		"https://idp.loadtest.invalid/sso",
		"https://idp.loadtest.invalid/sso?SAMLRequest=%%%",
		"https://idp.loadtest.invalid/sso?SAMLRequest=bm90IGRlZmxhdGVk", // "not deflated"
	} {
		if _, err := idp.ParseRedirect(u); err == nil {
			t.Errorf("%s: parsed", u)
		}
	}
}

// TestRespondChecksTheRequestID: the IdP answers the AuthnRequest in the
// redirect only when it is the one StartLogin announced.
func TestRespondChecksTheRequestID(t *testing.T) {
	idp, err := NewIdP("urn:ssogate:loadtest:x", "https://idp.loadtest.invalid/sso", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := saml.New(saml.Config{ConnectionID: "loadtest-x", ExternalURL: "https://sso.example.com",
		IdP: saml.IdentityProvider{EntityID: idp.EntityID, SSORedirectURL: idp.SSOURL}})
	if err != nil {
		t.Fatal(err)
	}
	areq, err := sp.NewAuthnRequest(saml.AuthnRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{idp: idp, conn: &ssogatev1.Connection{Id: "loadtest-x"}}
	if _, err := r.respond(&ssogatev1.StartLoginResponse{RedirectUrl: areq.RedirectURL, RequestId: areq.ID}, 1); err != nil {
		t.Fatalf("the announced request: %v", err)
	}
	if _, err := r.respond(&ssogatev1.StartLoginResponse{RedirectUrl: areq.RedirectURL, RequestId: "_other"}, 1); err == nil {
		t.Error("answered a request StartLogin did not announce")
	}
}
