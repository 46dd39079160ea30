package server

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// An IdP's signed LogoutRequest without SessionIndex ends the NameID's
// sessions created before it was issued, not a login that came after it,
// and the same request delivered again is refused as a replay.
func TestIdPLogoutRequestOnceAndOnlyEarlierSessions(t *testing.T) {
	idp := newUnsolicitedIdP(t)
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	ip := idp.identityProvider()
	ip["slo_url"] = "https://unsolicited-idp.example.com/slo"
	f := newWireFixture(t, []wireConn{{id: "open", set: map[string]any{"identity_provider": ip,
		"allow_idp_initiated": true, "default_return_url": wireReturnTo + "/home"}}}, WithClock(clock))
	var md crewsaml.EntityDescriptor
	if err := xml.Unmarshal(f.spMetadata(t, "open"), &md); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	login := func() *ssogatev1.TokenSet {
		t.Helper()
		ex, err := f.login.ExchangeAssertion(ctx, &ssogatev1.ExchangeAssertionRequest{ConnectionId: "open",
			SamlResponse: idp.respond(t, f.spMetadata(t, "open"), devAlice)})
		if err != nil {
			t.Fatal(err)
		}
		return ex.TokenSet
	}
	earlier := login()

	// crewjam's SP code signs the LogoutRequest as the IdP would.
	peer := &crewsaml.ServiceProvider{
		EntityID: idp.idp.MetadataURL.String(), Key: idp.idp.Signer, Certificate: idp.idp.Certificate,
		SignatureMethod: dsig.RSASHA256SignatureMethod,
		IDPMetadata: &crewsaml.EntityDescriptor{EntityID: md.EntityID, IDPSSODescriptors: []crewsaml.IDPSSODescriptor{{
			SSODescriptor: crewsaml.SSODescriptor{SingleLogoutServices: md.SPSSODescriptors[0].SingleLogoutServices}}}},
	}
	logoutURL, err := peer.MakeRedirectLogoutRequest(devAlice.Email, "")
	if err != nil {
		t.Fatal(err)
	}
	// The metadata names the configured external URL; the test server
	// listens elsewhere. The query signature covers only the query.
	listener, err := url.Parse(f.ts.httpURL)
	if err != nil {
		t.Fatal(err)
	}
	logoutURL.Scheme, logoutURL.Host = listener.Scheme, listener.Host

	// Ninety seconds on (past the 60 s skew), alice logs in again; then the
	// request arrives.
	offset.Store(int64(90 * time.Second))
	later := login()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deliver := func() int {
		t.Helper()
		resp, err := client.Get(logoutURL.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := deliver(); code != http.StatusFound {
		t.Fatalf("LogoutRequest answered %d, want a 302 LogoutResponse", code)
	}
	valid := func(ts *ssogatev1.TokenSet) bool {
		v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: ts.AccessToken})
		if err != nil {
			t.Fatal(err)
		}
		return v.Valid
	}
	if valid(earlier) {
		t.Error("the session from before the LogoutRequest survived it")
	}
	if !valid(later) {
		t.Error("the LogoutRequest ended a session created after it was issued")
	}

	if code := deliver(); code != http.StatusBadRequest {
		t.Fatalf("replayed LogoutRequest answered %d, want 400", code)
	}
	evs, err := f.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "open", Type: auditLogoutFailed})
	if err != nil || len(evs.Events) != 1 || evs.Events[0].Reason != ssogatev1.RejectionReason_REJECTION_REASON_ASSERTION_REPLAYED {
		t.Fatalf("logout.failed audit: %v %v", evs, err)
	}
	if !valid(later) {
		t.Error("the replayed LogoutRequest ended the later session")
	}
}
