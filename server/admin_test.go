package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

func newDevIdP(t testing.TB, base string) *devidp.IdP {
	t.Helper()
	idp, err := devidp.New(base, devidp.DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return idp
}

func idpMetadata(t testing.TB, idp *devidp.IdP) string {
	t.Helper()
	md, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	return string(md)
}

// switchableMetadata serves IdP metadata over TLS; tests change what it
// serves, or break it.
type switchableMetadata struct {
	mu     sync.Mutex
	body   string
	status int
	hits   int
}

func (m *switchableMetadata) fetches() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits
}

func (m *switchableMetadata) set(body string, status int) {
	m.mu.Lock()
	m.body, m.status = body, status
	m.mu.Unlock()
}

func (m *switchableMetadata) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hits++
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.WriteHeader(m.status)
	_, _ = io.WriteString(w, m.body)
}

func TestConnectionLifecycleOverRPC(t *testing.T) {
	ctx := context.Background()
	md := &switchableMetadata{}
	tlsIdP := httptest.NewTLSServer(md)
	t.Cleanup(tlsIdP.Close)
	first := newDevIdP(t, "https://idp.example.com/idp")
	second := newDevIdP(t, "https://idp.example.com/idp") // same IdP, rotated key
	md.set(idpMetadata(t, first), http.StatusOK)

	ts := startTestServerWith(t, func(c *config.Config) { c.AllowPrivateFetch = true }, withFetchTrust(tlsIdP))
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	login := ssogatev1.NewLoginServiceClient(ts.dial(t, testLoginKey))

	// Create from a metadata URL: DRAFT by default.
	created, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{
		Connection:     &ssogatev1.Connection{Id: "acme", TenantId: "acme-inc", EmailDomains: []string{"acme.com"}, AllowedReturnUrls: []string{"https://app.example.com/"}},
		IdpMetadataUrl: tlsIdP.URL + "/metadata",
	})
	if err != nil {
		t.Fatal(err)
	}
	c := created.Connection
	if c.State != ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT || c.IdentityProvider.EntityId != "https://idp.example.com/idp/metadata" ||
		len(c.IdentityProvider.Certificates) != 1 || c.ServiceProvider.AcsUrl != ts.srv.cfg.ExternalURL+"/saml/acme/acs" {
		t.Fatalf("created = %v", c)
	}
	firstFP := c.IdentityProvider.Certificates[0].Sha256Fingerprint

	// A login on a DRAFT connection is refused, and says why.
	_, err = login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.com/x"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "DRAFT") {
		t.Fatalf("StartLogin on DRAFT: %v", err)
	}

	// The domain belongs to at most one connection.
	_, err = admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme-2", TenantId: "acme-inc", EmailDomains: []string{"ACME.com"}}})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate domain: %v, want AlreadyExists", err)
	}
	// A duplicate id too.
	if _, err = admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "acme", TenantId: "x"}}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate id: %v", err)
	}
	// Validation names the field.
	if _, err = admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "Bad Id", TenantId: "x"}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "id:") {
		t.Fatalf("bad id: %v", err)
	}

	// DRAFT -> TESTING: only test logins.
	upd := func(state ssogatev1.ConnectionState, force ...bool) *ssogatev1.Connection {
		t.Helper()
		r, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
			Connection: &ssogatev1.Connection{Id: "acme", State: state}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
			ForceActivation: len(force) > 0 && force[0]})
		if err != nil {
			t.Fatalf("update to %v: %v", state, err)
		}
		return r.Connection
	}
	upd(ssogatev1.ConnectionState_CONNECTION_STATE_TESTING)
	if _, err := login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.com/x"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("non-test login on TESTING: %v", err)
	}
	if _, err := login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.com/x", Test: true}); err != nil {
		t.Fatalf("test login on TESTING: %v", err)
	}
	// TESTING -> ACTIVE needs a passing test login, or the operator's
	// force_activation; then logins by email domain work.
	_, err = admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme", State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "force_activation") {
		t.Fatalf("activation without a passing test = %v, want FAILED_PRECONDITION naming force_activation", err)
	}
	upd(ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE, true)
	start, err := login.StartLogin(ctx, &ssogatev1.StartLoginRequest{Email: "jo@Acme.com", ReturnTo: "https://app.example.com/x"})
	if err != nil || start.ConnectionId != "acme" || !strings.HasPrefix(start.RedirectUrl, "https://idp.example.com/idp/sso?SAMLRequest=") {
		t.Fatalf("StartLogin on ACTIVE: %v %v", start, err)
	}
	// ACTIVE -> DISABLED refuses again.
	upd(ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED)
	if _, err := login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.com/x"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("login on DISABLED: %v", err)
	}
	upd(ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE, true)

	// The IdP rotates its key: a refresh picks up the new certificate.
	md.set(idpMetadata(t, second), http.StatusOK)
	ref, err := admin.RefreshIdentityProviderMetadata(ctx, &ssogatev1.RefreshIdentityProviderMetadataRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	certs := ref.Connection.IdentityProvider.Certificates
	if len(certs) != 1 || certs[0].Sha256Fingerprint == firstFP {
		t.Fatalf("refresh did not pick up the new certificate: %v", certs)
	}
	// A broken refresh keeps the last good metadata and says why.
	md.set("<html>maintenance</html>", http.StatusServiceUnavailable)
	_, err = admin.RefreshIdentityProviderMetadata(ctx, &ssogatev1.RefreshIdentityProviderMetadataRequest{ConnectionId: "acme"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "503") {
		t.Fatalf("broken refresh: %v, want Unavailable naming the HTTP status", err)
	}
	got, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if fp := got.Connection.IdentityProvider.Certificates[0].Sha256Fingerprint; fp != certs[0].Sha256Fingerprint {
		t.Error("a failed refresh replaced the pinned certificate")
	}
	if got.Connection.IdentityProvider.MetadataRefreshError == "" {
		t.Error("the refresh error is not recorded on the connection")
	}
	if _, body, _ := get(t, ts.httpURL+"/metrics"); !strings.Contains(body, `ssogate_idp_metadata_refresh_total{result="failure"} 1`) {
		t.Error("no metric for the failed refresh")
	}
	audit := ssogatev1.NewAuditServiceClient(ts.dial(t, testAdminKey))
	evs, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", Type: "metadata.refresh_failed"})
	if err != nil || len(evs.Events) != 1 || !strings.Contains(evs.Events[0].Message, "last good metadata") {
		t.Fatalf("audit of the failed refresh: %v %v", evs, err)
	}

	// Stale etag is refused; the current one works.
	if _, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme", DisplayName: "Acme", Etag: "1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}}); status.Code(err) != codes.Aborted {
		t.Fatalf("stale etag: %v", err)
	}
	if _, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"id"}}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("changing the id: %v", err)
	}
	r, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme", DisplayName: "Acme (Okta)", Etag: got.Connection.Etag}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
	if err != nil || r.Connection.DisplayName != "Acme (Okta)" || r.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		t.Fatalf("update display_name: %v %v", r, err)
	}

	// SP metadata for the IdP admin.
	spmd, err := admin.GetServiceProviderMetadata(ctx, &ssogatev1.GetServiceProviderMetadataRequest{ConnectionId: "acme"})
	if err != nil || !strings.Contains(spmd.MetadataXml, `entityID="`+spmd.ServiceProvider.EntityId+`"`) || !strings.Contains(spmd.MetadataXml, spmd.ServiceProvider.AcsUrl) {
		t.Fatalf("sp metadata: %v %v", spmd, err)
	}

	// Delete frees the domain.
	if _, err := admin.DeleteConnection(ctx, &ssogatev1.DeleteConnectionRequest{ConnectionId: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "acme"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme-2", TenantId: "acme-inc", EmailDomains: []string{"acme.com"}}}); err != nil {
		t.Fatalf("domain not freed by delete: %v", err)
	}
}

func TestCreateConnectionFromXMLAndPaging(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t)
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	xml := idpMetadata(t, newDevIdP(t, "https://idp.example.com/idp"))
	for _, id := range []string{"c-1", "c-2", "c-3", "c-4", "c-5"} {
		if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{
			Connection: &ssogatev1.Connection{Id: id, TenantId: "t"}, IdpMetadataXml: xml}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "bad", TenantId: "t"}, IdpMetadataXml: "<nope/>"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "idp_metadata_xml") {
		t.Fatalf("garbage metadata: %v", err)
	}
	// Output-only fields sent by a caller are ignored.
	forged, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: "z-forged", TenantId: "t", CreateTime: timestamppb.New(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)),
		IdentityProvider: &ssogatev1.IdentityProviderSettings{MetadataRefreshError: "forged"}}})
	if err != nil || forged.Connection.CreateTime.AsTime().Year() == 1999 || forged.Connection.IdentityProvider.MetadataRefreshError != "" {
		t.Fatalf("forged output fields kept: %v %v", forged, err)
	}
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		resp, err := admin.ListConnections(ctx, &ssogatev1.ListConnectionsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Connections {
			ids = append(ids, c.Id)
		}
		if token = resp.NextPageToken; token == "" {
			if pages != 2 {
				t.Errorf("6 connections in pages of 2 took %d pages", pages+1)
			}
			break
		}
	}
	if strings.Join(ids, ",") != "c-1,c-2,c-3,c-4,c-5,z-forged" {
		t.Fatalf("listed %v", ids)
	}
}

func TestKeysOverRPC(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t)
	keys := ssogatev1.NewKeyServiceClient(ts.dial(t, testAdminKey))
	before, err := keys.ListSigningKeys(ctx, &ssogatev1.ListSigningKeysRequest{})
	if err != nil || len(before.Keys) != 1 || before.Keys[0].Status != "active" {
		t.Fatalf("initial keys: %v %v", before, err)
	}
	rot, err := keys.RotateSigningKey(ctx, &ssogatev1.RotateSigningKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := keys.GetJWKS(ctx, &ssogatev1.GetJWKSRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range jwks.Jwks.Fields["keys"].GetListValue().Values {
		kids = append(kids, k.GetStructValue().Fields["kid"].GetStringValue())
	}
	if !strings.Contains(strings.Join(kids, ","), rot.Key.Kid) || !strings.Contains(strings.Join(kids, ","), before.Keys[0].Kid) {
		t.Fatalf("JWKS kids %v lack the new %s or the current %s", kids, rot.Key.Kid, before.Keys[0].Kid)
	}
	if strings.Contains(strings.Join(kids, ","), spCredentialID) {
		t.Error("the SAML credential leaked into the JWKS")
	}
}

func TestExpiringCertificateIsReported(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t)
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	// testCertPEM expires in 24 hours: well inside the 30-day warning.
	if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: "soon", TenantId: "t", IdentityProvider: &ssogatev1.IdentityProviderSettings{
			Certificates: []*ssogatev1.Certificate{{Pem: testCertPEM(t)}}}}}); err != nil {
		t.Fatal(err)
	}
	ts.srv.connectionSweep(ctx)
	ts.srv.connectionSweep(ctx) // a second pass the same day does not audit again
	_, body, _ := get(t, ts.httpURL+"/metrics")
	if !strings.Contains(body, `ssogate_idp_certificate_expiry_seconds{connection="soon"`) {
		t.Error("no expiry gauge for the pinned certificate")
	}
	evs, err := ssogatev1.NewAuditServiceClient(ts.dial(t, testAdminKey)).ListAuditEvents(ctx,
		&ssogatev1.ListAuditEventsRequest{ConnectionId: "soon", Type: "certificate.expiring"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) != 1 || !strings.Contains(evs.Events[0].Message, "CN=idp.example.com") {
		t.Fatalf("expiry audit events: %v", evs.Events)
	}
}

func TestAuditFiltersAndPaging(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	ts := startTestServerWith(t, nil, WithClock(clock.now))
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	audit := ssogatev1.NewAuditServiceClient(ts.dial(t, testAdminKey))
	for i, id := range []string{"a-1", "a-2", "b-1"} {
		clock.add(time.Hour)
		if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: id, TenantId: "t"}}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	all, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{Type: "connection.created"})
	if err != nil || len(all.Events) != 3 || all.Events[0].ConnectionId != "b-1" {
		t.Fatalf("all, newest first: %v %v", all, err)
	}
	one, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "a-2"})
	if err != nil || len(one.Events) != 1 || one.Events[0].Detail.Fields["caller"].GetStringValue() != "ops" {
		t.Fatalf("by connection: %v %v", one, err)
	}
	window, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{
		StartTime: timestamppb.New(time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC)),
		EndTime:   timestamppb.New(time.Date(2026, 11, 1, 11, 30, 0, 0, time.UTC))})
	if err != nil || len(window.Events) != 1 || window.Events[0].ConnectionId != "a-2" {
		t.Fatalf("time window: %v %v", window, err)
	}
	page, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{Type: "connection.created", PageSize: 2})
	if err != nil || len(page.Events) != 2 || page.NextPageToken == "" {
		t.Fatalf("page 1: %v %v", page, err)
	}
	rest, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{Type: "connection.created", PageSize: 2, PageToken: page.NextPageToken})
	if err != nil || len(rest.Events) != 1 || rest.NextPageToken != "" || rest.Events[0].ConnectionId != "a-1" {
		t.Fatalf("page 2: %v %v", rest, err)
	}
}

// A connection declared in the config file with only a metadata URL gets
// its certificates at start; when the IdP is down at a later start, the
// stored copy is kept.
func TestSeededConnectionFromMetadataURL(t *testing.T) {
	md := &switchableMetadata{}
	tlsIdP := httptest.NewTLSServer(md)
	t.Cleanup(tlsIdP.Close)
	md.set(idpMetadata(t, newDevIdP(t, "https://idp.example.com/idp")), http.StatusOK)
	dbPath := filepath.Join(t.TempDir(), "seed.db")
	mutate := func(c *config.Config) {
		c.Store = "sqlite://" + dbPath
		c.AllowPrivateFetch = true
		c.Connections = []map[string]any{{"id": "acme", "tenant_id": "t", "state": "CONNECTION_STATE_TESTING",
			"identity_provider": map[string]any{"metadata_url": tlsIdP.URL + "/metadata"}}}
	}
	certOf := func(ts *testServer) string {
		t.Helper()
		got, err := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey)).GetConnection(context.Background(), &ssogatev1.GetConnectionRequest{ConnectionId: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Connection.IdentityProvider.Certificates) != 1 {
			t.Fatalf("certificates: %v", got.Connection.IdentityProvider.Certificates)
		}
		return got.Connection.IdentityProvider.Certificates[0].Sha256Fingerprint
	}
	first := startTestServerWith(t, mutate, withFetchTrust(tlsIdP))
	fp := certOf(first)
	// Metadata fetched moments ago (at seeding, maybe by another replica)
	// is not fetched again by the periodic sweep.
	n := md.fetches()
	first.srv.connectionSweep(context.Background())
	if md.fetches() != n {
		t.Error("the sweep refetched metadata refreshed moments ago")
	}
	first.stop()

	md.set("down", http.StatusBadGateway)
	second := startTestServerWith(t, mutate, withFetchTrust(tlsIdP))
	if certOf(second) != fp {
		t.Fatal("the stored certificate was not kept while the IdP was down")
	}
}
