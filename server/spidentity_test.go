package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// The test server's external_url is http://localhost:8080 while it listens
// on 127.0.0.1:port: requests to an overriding ACS URL carry that URL's
// Host header, as a load balancer in front of ssogate would pass it on.

const (
	oldEntityID = "urn:auth0:oldtenant:acme"
	oldACS      = "http://localhost:8080/login/callback?connection=acme"
)

func spIdentityFixture(t *testing.T) (*wireFixture, ssogatev1.ConnectionServiceClient) {
	t.Helper()
	f := newWireFixtureWith(t, nil, func(c *config.Config) { c.PublicHosts = []string{"login.example.org"} })
	return f, ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
}

// wireConnection is the proto form of wireFixture.connection.
func (f *wireFixture) wireConnection(id string, sp *ssogatev1.ServiceProviderInfo) *ssogatev1.Connection {
	return &ssogatev1.Connection{
		Id: id, TenantId: "tenant-" + id, State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE,
		IdentityProvider: &ssogatev1.IdentityProviderSettings{
			EntityId: f.idpURL + "/metadata", SsoUrl: f.idpURL + "/sso",
			Certificates: []*ssogatev1.Certificate{{Pem: pemOf(f.idp.Certificate)}},
		},
		AllowedReturnUrls: []string{wireReturnTo},
		ServiceProvider:   sp,
	}
}

// postTo posts a form to rawURL's path and query on the test server,
// with rawURL's host as the Host header.
func (f *wireFixture) postTo(t *testing.T, rawURL string, form url.Values) acsAnswer {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, f.ts.httpURL+u.RequestURI(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = u.Host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return acsAnswer{status: resp.StatusCode, header: resp.Header, body: string(body), requestID: resp.Header.Get(requestIDHeader)}
}

// TestSPIdentityOverrideLogin: a connection with a foreign entity ID and
// an ACS URL on the public listener publishes both (metadata, GetConnection,
// GetServiceProviderMetadata), sends them in its AuthnRequest, and takes
// the IdP's response at that URL.
func TestSPIdentityOverrideLogin(t *testing.T) {
	f, admin := spIdentityFixture(t)
	ctx := context.Background()
	created, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: f.wireConnection("acme",
		&ssogatev1.ServiceProviderInfo{EntityId: oldEntityID, AcsUrl: oldACS, SloUrl: "https://ignored.example/slo"})})
	if err != nil {
		t.Fatal(err)
	}
	sp := created.Connection.ServiceProvider
	if sp.EntityId != oldEntityID || sp.AcsUrl != oldACS || sp.SloUrl != "http://localhost:8080/saml/acme/slo" {
		t.Errorf("CreateConnection service_provider = %v", sp)
	}
	got, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "acme"})
	if err != nil || got.Connection.ServiceProvider.EntityId != oldEntityID || got.Connection.ServiceProvider.AcsUrl != oldACS {
		t.Fatalf("GetConnection service_provider = %v, %v", got.GetConnection().GetServiceProvider(), err)
	}
	md, err := admin.GetServiceProviderMetadata(ctx, &ssogatev1.GetServiceProviderMetadataRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if md.ServiceProvider.EntityId != oldEntityID || md.ServiceProvider.AcsUrl != oldACS {
		t.Errorf("GetServiceProviderMetadata service_provider = %v", md.ServiceProvider)
	}
	served := string(f.spMetadata(t, "acme"))
	for _, want := range []string{`entityID="` + oldEntityID + `"`, `Location="` + strings.ReplaceAll(oldACS, "&", "&amp;") + `"`} {
		if !strings.Contains(md.MetadataXml, want) || !strings.Contains(served, want) {
			t.Errorf("SP metadata lacks %s:\n%s", want, served)
		}
	}
	// The IdP knows the SP only by this metadata: old entity ID, old ACS.
	if err := f.idp.RegisterServiceProvider("acme", []byte(served)); err != nil {
		t.Fatal(err)
	}
	start := f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo, State: "s1"})
	posted, err := devidp.SignIn(ctx, &http.Client{Timeout: 10 * time.Second}, start.RedirectUrl, "alice", "alice")
	if err != nil {
		t.Fatalf("sign in at the IdP: %v", err)
	}
	if posted.ACSURL != oldACS {
		t.Fatalf("the IdP posts to %q, want the old ACS %q", posted.ACSURL, oldACS)
	}
	a := f.postTo(t, oldACS, url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	wantCodeRedirect(t, a, wireReturnTo)

	// Another connection's ACS path on the same host is not this one's,
	// nor is an unknown path: 404, as before overrides existed.
	if a := f.postTo(t, "http://localhost:8080/login/callback?connection=other", url.Values{"SAMLResponse": {posted.SAMLResponse}}); a.status != http.StatusNotFound {
		t.Errorf("POST to an unknown ACS path: %d, want 404", a.status)
	}
	// The route label is bounded: one label for every overriding path.
	if snap := f.metrics(t); snap[metricSeries("ssogate_http_requests_total", "code", "303", "method", "POST", "route", overridePattern)] < 1 {
		t.Errorf("no ssogate_http_requests_total sample for route %q", overridePattern)
	}

	// Sent back unchanged (the derived values included), the connection
	// keeps its overrides; set to the derived values, it derives again.
	cur := got.Connection
	if _, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{Connection: cur,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"service_provider"}}}); err != nil {
		t.Fatal(err)
	}
	up, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{Connection: &ssogatev1.Connection{Id: "acme",
		ServiceProvider: &ssogatev1.ServiceProviderInfo{EntityId: "http://localhost:8080/saml/acme"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"service_provider.entity_id"}}})
	if err != nil {
		t.Fatal(err)
	}
	if up.Connection.ServiceProvider.EntityId != "http://localhost:8080/saml/acme" || up.Connection.ServiceProvider.AcsUrl != oldACS {
		t.Errorf("after resetting the entity ID: %v", up.Connection.ServiceProvider)
	}
}

// TestSPIdentityAudience: the Audience check uses the override: a response
// addressed to the derived entity ID, posted to the connection's own ACS,
// is refused; the same response for the old entity ID is accepted.
func TestSPIdentityAudience(t *testing.T) {
	f, admin := spIdentityFixture(t)
	idp := newUnsolicitedIdP(t)
	c := f.wireConnection("acme", &ssogatev1.ServiceProviderInfo{EntityId: oldEntityID, AcsUrl: oldACS})
	c.IdentityProvider = &ssogatev1.IdentityProviderSettings{EntityId: idp.idp.MetadataURL.String(), SsoUrl: idp.idp.SSOURL.String(),
		Certificates: []*ssogatev1.Certificate{{Pem: pemOf(idp.idp.Certificate)}}}
	c.AllowIdpInitiated, c.DefaultReturnUrl = true, wireReturnTo+"/home"
	if _, err := admin.CreateConnection(context.Background(), &ssogatev1.CreateConnectionRequest{Connection: c}); err != nil {
		t.Fatal(err)
	}
	md := f.spMetadata(t, "acme")
	user := devidp.User{Name: "alice", Email: "alice@example.com"}

	ok := f.postTo(t, oldACS, url.Values{"SAMLResponse": {idp.respond(t, md, user)}})
	if ok.status != http.StatusOK || !strings.Contains(ok.body, "Continue") {
		t.Fatalf("a response for the old entity ID: %d, want the consent page\n%s", ok.status, ok.body)
	}
	derived := []byte(strings.Replace(string(md), `entityID="`+oldEntityID+`"`, `entityID="http://localhost:8080/saml/acme"`, 1))
	refused := f.postTo(t, oldACS, url.Values{"SAMLResponse": {idp.respond(t, derived, user)}})
	ev := f.auditEvent(t, "login.failed", refused.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_AUDIENCE_MISMATCH, "acme", oldEntityID)
	wantGenericPage(t, refused, http.StatusBadRequest, ev)
}

// wantConnectionInvalid checks an error's code, CONNECTION_INVALID reason,
// the field its BadRequest names and the words of its message.
func wantConnectionInvalid(t *testing.T, err error, code codes.Code, field string, words ...string) {
	t.Helper()
	st := status.Convert(err)
	if err == nil || st.Code() != code {
		t.Fatalf("error %v, want %v", err, code)
	}
	var reason, named string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.Reason
		case *errdetails.BadRequest:
			for _, v := range d.FieldViolations {
				named += v.Field + " "
			}
		}
	}
	if reason != reasonConnectionInvalid || !strings.Contains(named, field) {
		t.Errorf("reason %q, fields %q; want %s naming %s (%v)", reason, named, reasonConnectionInvalid, field, err)
	}
	for _, w := range words {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("message %q does not say %q", st.Message(), w)
		}
	}
}

func TestSPIdentityRefusals(t *testing.T) {
	f, admin := spIdentityFixture(t)
	ctx := context.Background()
	create := func(id string, sp *ssogatev1.ServiceProviderInfo) error {
		_, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: f.wireConnection(id, sp)})
		return err
	}
	if err := create("acme", &ssogatev1.ServiceProviderInfo{EntityId: oldEntityID, AcsUrl: oldACS}); err != nil {
		t.Fatal(err)
	}
	// A host in public_hosts is served; https there.
	if err := create("beta", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://Login.Example.org/sso/beta/acs"}); err != nil {
		t.Fatalf("acs_url on a public host: %v", err)
	}
	// A plain name is a URI reference, as Oracle Access Manager's SPs use.
	if err := create("delta", &ssogatev1.ServiceProviderInfo{EntityId: "JSAuth"}); err != nil {
		t.Fatalf("entity ID \"JSAuth\": %v", err)
	}

	const acsField = "connection.service_provider.acs_url"
	for _, tc := range []struct {
		name  string
		sp    *ssogatev1.ServiceProviderInfo
		code  codes.Code
		field string
		words []string
	}{
		{"same entity ID", &ssogatev1.ServiceProviderInfo{EntityId: oldEntityID}, codes.AlreadyExists, "connection.service_provider.entity_id",
			[]string{`service_provider.entity_id "` + oldEntityID + `" is already used by connection "acme"`, `"gamma"`}},
		{"same ACS URL, parameters reordered", &ssogatev1.ServiceProviderInfo{EntityId: "urn:other", AcsUrl: "http://LOCALHOST:8080/login/callback?connection=acme"},
			codes.AlreadyExists, acsField, []string{`is already used by connection "acme"`, `"gamma"`}},
		{"same ACS URL on a public host", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://login.example.org:443/sso/beta/acs"},
			codes.AlreadyExists, acsField, []string{`already used by connection "beta"`}},
		{"host ssogate does not answer for", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://acme.auth0.com/login/callback?connection=acme"},
			codes.InvalidArgument, acsField, []string{"public_hosts", `"acme.auth0.com"`}},
		{"reserved path /saml/", &ssogatev1.ServiceProviderInfo{AcsUrl: "http://localhost:8080/saml/acme/acs2"}, codes.InvalidArgument, acsField, []string{"ssogate's own routes"}},
		{"reserved path /v1/", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://login.example.org/v1/connections"}, codes.InvalidArgument, acsField, []string{"ssogate's own routes"}},
		{"reserved path /healthz", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://login.example.org/healthz"}, codes.InvalidArgument, acsField, []string{"ssogate's own routes"}},
		{"reserved path /.well-known/", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://login.example.org/.well-known/x"}, codes.InvalidArgument, acsField, []string{"ssogate's own routes"}},
		{"the root", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://login.example.org/"}, codes.InvalidArgument, acsField, []string{"ssogate's own routes"}},
		{"unclean path", &ssogatev1.ServiceProviderInfo{AcsUrl: "https://login.example.org/a/../saml/x/acs"}, codes.InvalidArgument, acsField, []string{"canonical"}},
		{"plain http off loopback", &ssogatev1.ServiceProviderInfo{AcsUrl: "http://login.example.org/sso/acs"}, codes.InvalidArgument, acsField, []string{"https"}},
		{"not a URI", &ssogatev1.ServiceProviderInfo{EntityId: "acme\x7fsp"}, codes.InvalidArgument, "connection.service_provider.entity_id", []string{"not a URI reference"}},
		{"another connection's derived entity ID", &ssogatev1.ServiceProviderInfo{EntityId: "http://localhost:8080/saml/acme"},
			codes.InvalidArgument, "connection.service_provider.entity_id", []string{"derives entity IDs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantConnectionInvalid(t, create("gamma", tc.sp), tc.code, tc.field, tc.words...)
			if _, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "gamma"}); status.Code(err) != codes.NotFound {
				t.Errorf("a refused create stored the connection: %v", err)
			}
		})
	}

	// On update too, naming both connections.
	_, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{Connection: &ssogatev1.Connection{Id: "beta",
		ServiceProvider: &ssogatev1.ServiceProviderInfo{EntityId: oldEntityID, AcsUrl: "https://login.example.org/sso/beta/acs"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"service_provider"}}})
	wantConnectionInvalid(t, err, codes.AlreadyExists, "connection.service_provider.entity_id", `already used by connection "acme"`, `"beta"`)
}

// TestSPIdentityACSAcrossReplicas: a connection created on one replica is
// served at its own ACS path by another at once (the lookup reads the
// store, not a cache filled at start).
func TestSPIdentityACSAcrossReplicas(t *testing.T) {
	f, admin := spIdentityFixture(t)
	other := startTestServerWith(t, func(c *config.Config) { c.Store = f.ts.srv.cfg.Store })
	g := &wireFixture{ts: other}
	form := url.Values{"SAMLResponse": {"bm90IGEgcmVzcG9uc2U"}}
	if a := g.postTo(t, oldACS, form); a.status != http.StatusNotFound {
		t.Fatalf("before the connection exists: %d, want 404", a.status)
	}
	if _, err := admin.CreateConnection(context.Background(), &ssogatev1.CreateConnectionRequest{
		Connection: f.wireConnection("acme", &ssogatev1.ServiceProviderInfo{EntityId: oldEntityID, AcsUrl: oldACS})}); err != nil {
		t.Fatal(err)
	}
	a := g.postTo(t, oldACS, form)
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "We could not sign you in") {
		t.Fatalf("the other replica at the new ACS path: %d, want the ACS's refusal page\n%s", a.status, a.body)
	}
	g.audit = ssogatev1.NewAuditServiceClient(other.dial(t, testAdminKey))
	if ev := g.auditEvent(t, "login.failed", a.requestID); ev.ConnectionId != "acme" {
		t.Errorf("refusal recorded for connection %q, want acme", ev.ConnectionId)
	}
}

// TestSPIdentityV1PathWithOperatorListener: with operator_addr set, /v1/
// leaves the public listener, so an old SP's ACS there (SSOReady's
// /v1/saml/{id}/acs) is accepted and served; without it, it is refused
// (TestSPIdentityRefusals).
func TestSPIdentityV1PathWithOperatorListener(t *testing.T) {
	opLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := newWireFixtureWith(t, nil, func(c *config.Config) { c.OperatorAddr = opLis.Addr().String() }, WithOperatorListener(opLis))
	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	const acs = "http://localhost:8080/v1/saml/saml_conn_01/acs"
	if _, err := admin.CreateConnection(context.Background(), &ssogatev1.CreateConnectionRequest{Connection: f.wireConnection("acme",
		&ssogatev1.ServiceProviderInfo{EntityId: "http://localhost:8080/v1/saml/saml_conn_01", AcsUrl: acs})}); err != nil {
		t.Fatal(err)
	}
	if a := f.postTo(t, acs, url.Values{"SAMLResponse": {"bm90IGEgcmVzcG9uc2U"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "We could not sign you in") {
		t.Fatalf("POST to the /v1/ ACS: %d, want the ACS's refusal page\n%s", a.status, a.body)
	}
}

// TestSPIdentityConcurrentCreates: creates of one entity ID on two
// replicas at once: exactly one wins, every other is refused naming the
// winner (the store's unique index decides, not a read before the write).
func TestSPIdentityConcurrentCreates(t *testing.T) {
	f, adminA := spIdentityFixture(t)
	other := startTestServerWith(t, func(c *config.Config) { c.Store = f.ts.srv.cfg.Store })
	adminB := ssogatev1.NewConnectionServiceClient(other.dial(t, testAdminKey))
	const n = 8
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		admin := adminA
		if i%2 == 1 {
			admin = adminB
		}
		go func() {
			<-start
			_, err := admin.CreateConnection(context.Background(), &ssogatev1.CreateConnectionRequest{
				Connection: f.wireConnection(fmt.Sprintf("c%d", i), &ssogatev1.ServiceProviderInfo{EntityId: oldEntityID})})
			errs <- err
		}()
	}
	close(start)
	var won int
	var refused []error
	for range n {
		if err := <-errs; err == nil {
			won++
		} else {
			refused = append(refused, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won, want 1; refusals: %v", won, refused)
	}
	for _, err := range refused {
		if status.Code(err) == codes.Unavailable {
			t.Fatalf("a create failed on the store (busy?), not on the entity ID: %v", err)
		}
		wantConnectionInvalid(t, err, codes.AlreadyExists, "connection.service_provider.entity_id", "is already used by connection")
	}
}
