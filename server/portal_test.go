package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store"
)

// portalFixture is a server with two DRAFT connections and a setup link
// for the first.
type portalFixture struct {
	ts     *testServer
	admin  ssogatev1.ConnectionServiceClient
	audit  ssogatev1.AuditServiceClient
	clock  *fakeClock
	link   *ssogatev1.CreateSetupLinkResponse
	client *http.Client
}

const portalOrigin = "http://localhost:8080" // the default external URL

func newPortalFixture(t *testing.T) *portalFixture {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	f := &portalFixture{clock: clock}
	f.ts = startTestServerWith(t, nil, WithClock(clock.now))
	conn := f.ts.dial(t, testAdminKey)
	f.admin = ssogatev1.NewConnectionServiceClient(conn)
	f.audit = ssogatev1.NewAuditServiceClient(conn)
	ctx := context.Background()
	for _, id := range []string{"acme", "beta"} {
		if _, err := f.admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
			Id: id, TenantId: "t-" + id, EmailDomains: []string{id + ".com"}}}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	f.link, err = f.admin.CreateSetupLink(ctx, &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme", Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	f.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// do sends a request with the portal cookie (when cookie is set).
func (f *portalFixture) do(t *testing.T, method, path, cookie string, form url.Values, header map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.ts.httpURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "ssogate_setup", Value: cookie})
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no CSRF token:\n%s", page)
	}
	return m[1]
}

func (f *portalFixture) open(t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(f.link.SetupLink.Url)
	resp, _ := f.do(t, "GET", u.Path, "", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/setup/" {
		t.Fatalf("open link = %d Location %q, want 303 to /setup/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy %q on the link redirect", got)
	}
	var c *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "ssogate_setup" {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/setup/" || c.Value != f.link.Secret {
		t.Fatalf("portal cookie = %+v", c)
	}
	return c.Value
}

func TestSetupLinkRPCs(t *testing.T) {
	f := newPortalFixture(t)
	ctx := context.Background()
	if f.link.Secret == "" || len(f.link.Secret) < 43 || !strings.HasSuffix(f.link.SetupLink.Url, "/setup/"+f.link.Secret) {
		t.Fatalf("CreateSetupLink = %v", f.link)
	}
	for _, tc := range []struct {
		name string
		req  *ssogatev1.CreateSetupLinkRequest
		want codes.Code
	}{
		{"ttl over 30 days", &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme", Ttl: durationpb.New(31 * 24 * time.Hour)}, codes.InvalidArgument},
		{"negative ttl", &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme", Ttl: durationpb.New(-time.Hour)}, codes.InvalidArgument},
		{"unknown connection", &ssogatev1.CreateSetupLinkRequest{ConnectionId: "nope"}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.admin.CreateSetupLink(ctx, tc.req); status.Code(err) != tc.want {
				t.Fatalf("CreateSetupLink = %v, want %v", err, tc.want)
			}
		})
	}
	def, err := f.admin.CreateSetupLink(ctx, &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if left := def.SetupLink.ExpireTime.AsTime().Sub(f.clock.now()); left != 7*24*time.Hour {
		t.Errorf("default ttl %s, want 168h", left)
	}
	if len(def.SetupLink.Features) != 2 {
		t.Errorf("default features %v, want SAML and SCIM", def.SetupLink.Features)
	}
	list, err := f.admin.ListSetupLinks(ctx, &ssogatev1.ListSetupLinksRequest{ConnectionId: "acme"})
	if err != nil || len(list.SetupLinks) != 2 {
		t.Fatalf("ListSetupLinks = %v, %v", list, err)
	}
	for _, l := range list.SetupLinks {
		if l.Url != "" {
			t.Errorf("ListSetupLinks shows a URL (the secret): %v", l)
		}
	}
	// Another connection's id cannot revoke acme's link.
	if _, err := f.admin.RevokeSetupLink(ctx, &ssogatev1.RevokeSetupLinkRequest{ConnectionId: "beta", SetupLinkId: def.SetupLink.Id}); status.Code(err) != codes.NotFound {
		t.Errorf("revoke through another connection = %v, want NOT_FOUND", err)
	}
	rev, err := f.admin.RevokeSetupLink(ctx, &ssogatev1.RevokeSetupLinkRequest{ConnectionId: "acme", SetupLinkId: def.SetupLink.Id})
	if err != nil || rev.SetupLink.RevokeTime == nil {
		t.Fatalf("RevokeSetupLink = %v, %v", rev, err)
	}
	events, err := f.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, e := range events.Events {
		types[e.Type]++
		if strings.Contains(e.String(), f.link.Secret) || strings.Contains(e.String(), def.Secret) {
			t.Errorf("audit event carries a secret: %v", e)
		}
	}
	if types["setup_link.created"] != 2 || types["setup_link.revoked"] != 1 {
		t.Errorf("audit types %v", types)
	}
}

func TestSetupPortalSessionAndIsolation(t *testing.T) {
	f := newPortalFixture(t)
	ctx := context.Background()
	if resp, _ := f.do(t, "GET", "/setup/status", "", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("portal without a session = %d, want 401", resp.StatusCode)
	}
	cookie := f.open(t)
	resp, page := f.do(t, "GET", "/setup/metadata", cookie, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<code>acme</code>") || strings.Contains(page, "beta") {
		t.Fatalf("metadata page = %d:\n%s", resp.StatusCode, page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'nonce-") || strings.Contains(csp, "unsafe-inline") || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers: CSP %q, Referrer-Policy %q", csp, resp.Header.Get("Referrer-Policy"))
	}
	token := csrfOf(t, page)
	md := idpMetadata(t, newDevIdP(t, "https://idp.example.com/idp"))
	// The form names another connection; the session's link decides.
	form := url.Values{"csrf": {token}, "method": {"xml"}, "metadata_xml": {md}, "connection_id": {"beta"}, "id": {"beta"}}
	resp, body := f.do(t, "POST", "/setup/metadata", cookie, form, map[string]string{"Origin": portalOrigin, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("metadata post = %d:\n%s", resp.StatusCode, body)
	}
	for id, want := range map[string]ssogatev1.ConnectionState{"acme": ssogatev1.ConnectionState_CONNECTION_STATE_TESTING, "beta": ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT} {
		got, err := f.admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: id})
		if err != nil || got.Connection.State != want {
			t.Errorf("%s: %v %v, want %v", id, got.GetConnection().GetState(), err, want)
		}
		if id == "beta" && got.Connection.GetIdentityProvider().GetEntityId() != "" {
			t.Errorf("the link for acme changed beta: %v", got.Connection.IdentityProvider)
		}
	}
	upd, err := f.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", Type: "connection.updated"})
	if err != nil || len(upd.Events) != 1 || upd.Events[0].Detail.AsMap()["caller"] != "setup link "+f.link.SetupLink.Id {
		t.Errorf("change through the link audited as %v (%v)", upd.GetEvents(), err)
	}
	opened, _ := f.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", Type: "setup_link.opened"})
	if len(opened.GetEvents()) != 1 {
		t.Errorf("setup_link.opened events: %v", opened.GetEvents())
	}

	// Activation before a passing test is refused in the browser.
	_, page = f.do(t, "GET", "/setup/activate", cookie, nil, nil)
	resp, body = f.do(t, "POST", "/setup/activate", cookie, url.Values{"csrf": {csrfOf(t, page)}}, map[string]string{"Origin": portalOrigin})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "run a test login that succeeds first") {
		t.Errorf("activation without a test = %d:\n%s", resp.StatusCode, body)
	}

	// The status page shows its own connection's certificate and metadata
	// notices, never another's.
	for _, e := range []store.AuditEvent{
		{Type: "metadata.refresh_failed", ConnectionID: "acme", TenantID: "t-acme", Message: "acme-metadata-answered-404"},
		{Type: "certificate.expiring", ConnectionID: "beta", TenantID: "t-beta", Message: "beta-certificate-expires-soon"},
		{Type: "login.failed", ConnectionID: "acme", TenantID: "t-acme", Message: "acme-not-a-notice"},
		{Type: "sp_certificate.expiring", ConnectionID: "acme", TenantID: "t-acme", Message: "acme-sp-certificate-expires-soon"},
	} {
		e.ID, e.Time = newRequestID(), f.clock.now()
		if err := f.ts.srv.store.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	betaLink, err := f.admin.CreateSetupLink(ctx, &ssogatev1.CreateSetupLinkRequest{ConnectionId: "beta", Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cookie, want, other, label string }{
		{cookie, "acme-metadata-answered-404", "beta-certificate-expires-soon", "Metadata refresh failed"},
		{cookie, "acme-sp-certificate-expires-soon", "beta-certificate-expires-soon", "Our certificate expiring"},
		{betaLink.Secret, "beta-certificate-expires-soon", "acme-metadata-answered-404", "Certificate expiring"},
	} {
		resp, page := f.do(t, "GET", "/setup/status", tc.cookie, nil, nil)
		notices, _, _ := strings.Cut(page[strings.Index(page, `id="notices"`)+1:], "</table>")
		if resp.StatusCode != http.StatusOK || !strings.Contains(notices, tc.want) || !strings.Contains(notices, tc.label) ||
			strings.Contains(page, tc.other) || strings.Contains(page, "acme-not-a-notice") {
			t.Errorf("status page = %d, want notice %q (%s) and not %q:\n%s", resp.StatusCode, tc.want, tc.label, tc.other, page)
		}
	}

	// The secret is never logged.
	if strings.Contains(f.ts.logs.String(), f.link.Secret) {
		t.Errorf("logs carry the setup link secret:\n%s", f.ts.logs.String())
	}
	if !strings.Contains(f.ts.logs.String(), "/setup/[setup link secret]") {
		t.Errorf("the link request is not logged with its path redacted")
	}

	// Revoked: plain page, no session, and the open cookie stops working.
	if _, err := f.admin.RevokeSetupLink(ctx, &ssogatev1.RevokeSetupLinkRequest{ConnectionId: "acme", SetupLinkId: f.link.SetupLink.Id}); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(f.link.SetupLink.Url)
	resp, body = f.do(t, "GET", u.Path, "", nil, nil)
	if resp.StatusCode != http.StatusGone || !strings.Contains(body, "expired or was revoked") {
		t.Errorf("revoked link = %d:\n%s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "ssogate_setup" && c.Value != "" {
			t.Errorf("a revoked link set a session cookie: %+v", c)
		}
	}
	if resp, _ := f.do(t, "GET", "/setup/status", cookie, nil, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("session of a revoked link = %d, want 410", resp.StatusCode)
	}
}

func TestSetupLinkExpires(t *testing.T) {
	f := newPortalFixture(t)
	cookie := f.open(t)
	f.clock.add(time.Hour + time.Second)
	if resp, body := f.do(t, "GET", "/setup/idp", cookie, nil, nil); resp.StatusCode != http.StatusGone || strings.Contains(body, "Choose your identity provider") {
		t.Errorf("session of an expired link = %d:\n%s", resp.StatusCode, body)
	}
	u, _ := url.Parse(f.link.SetupLink.Url)
	if resp, _ := f.do(t, "GET", u.Path, "", nil, nil); resp.StatusCode != http.StatusGone || len(resp.Cookies()) > 0 && resp.Cookies()[0].Value != "" {
		t.Errorf("expired link = %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if resp, _ := f.do(t, "GET", "/setup/"+strings.Repeat("A", 43), "", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown link = %d, want 404", resp.StatusCode)
	}
}

func TestSetupPortalRefusesCrossSitePosts(t *testing.T) {
	f := newPortalFixture(t)
	cookie := f.open(t)
	_, page := f.do(t, "GET", "/setup/test", cookie, nil, nil)
	token := csrfOf(t, page)
	actions := []string{"/setup/metadata", "/setup/test", "/setup/activate"}
	for _, tc := range []struct {
		name   string
		token  string
		header map[string]string
	}{
		{"no token", "", map[string]string{"Origin": portalOrigin}},
		{"wrong token", token[:len(token)-2] + "xx", map[string]string{"Origin": portalOrigin}},
		{"foreign origin", token, map[string]string{"Origin": "https://evil.example"}},
		{"cross-site fetch", token, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"opaque origin, no fetch metadata", token, map[string]string{"Origin": "null"}},
	} {
		for _, action := range actions {
			t.Run(tc.name+" "+action, func(t *testing.T) {
				form := url.Values{"csrf": {tc.token}, "method": {"fields"}, "entity_id": {"x"}}
				if resp, body := f.do(t, "POST", action, cookie, form, tc.header); resp.StatusCode != http.StatusForbidden {
					t.Errorf("= %d, want 403:\n%s", resp.StatusCode, body)
				}
			})
		}
	}
	// The same form from the portal itself is accepted (it fails on its
	// content, not on CSRF).
	form := url.Values{"csrf": {token}, "method": {"fields"}}
	if resp, body := f.do(t, "POST", "/setup/metadata", cookie, form, map[string]string{"Origin": portalOrigin, "Sec-Fetch-Site": "same-origin"}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Paste your IdP&#39;s entity ID") {
		t.Errorf("same-site post = %d:\n%s", resp.StatusCode, body)
	}
}

func TestConflictNamesTheOwner(t *testing.T) {
	f := newPortalFixture(t)
	ctx := context.Background()
	_, err := f.admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: "gamma", TenantId: "t-g", EmailDomains: []string{"acme.com"}}})
	if status.Code(err) != codes.AlreadyExists || status.Convert(err).Message() != "email domain acme.com already belongs to connection acme" {
		t.Errorf("create with a taken domain = %v", err)
	}
	_, err = f.admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "beta", EmailDomains: []string{"beta.com", "ACME.com"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"email_domains"}}})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "already belongs to connection acme") ||
		strings.Contains(status.Convert(err).Message(), "retry") {
		t.Errorf("update with a taken domain = %v", err)
	}
	_, err = f.admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "acme", TenantId: "x"}})
	if status.Code(err) != codes.AlreadyExists || status.Convert(err).Message() != "connection acme already exists" {
		t.Errorf("duplicate id = %v", err)
	}
}

func TestOnlyExpiredCertificatesRefused(t *testing.T) {
	f := newPortalFixture(t)
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "old idp"},
		NotBefore: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	expired := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	idp := &ssogatev1.IdentityProviderSettings{EntityId: "https://idp.example.com", SsoUrl: "https://idp.example.com/sso",
		Certificates: []*ssogatev1.Certificate{{Pem: expired}}}
	_, err = f.admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: "old", TenantId: "t", State: ssogatev1.ConnectionState_CONNECTION_STATE_TESTING, IdentityProvider: idp}})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, `"CN=old idp"`) || !strings.Contains(msg, "expired 2021-01-01T00:00:00Z") {
		t.Errorf("create with only an expired certificate = %v", err)
	}
	// With a current certificate beside it, the expired one is accepted
	// (a rollover in progress).
	idp.Certificates = append(idp.Certificates, &ssogatev1.Certificate{Pem: pemOf(newDevIdP(t, "https://idp.example.com").Certificate)})
	if _, err := f.admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: "old", TenantId: "t", State: ssogatev1.ConnectionState_CONNECTION_STATE_TESTING, IdentityProvider: idp}}); err != nil {
		t.Errorf("create with a current certificate too: %v", err)
	}
}

func TestDraftTestLoginSaysWhatToDo(t *testing.T) {
	f := newPortalFixture(t)
	code, body, _ := get(t, f.ts.httpURL+"/saml/beta/login?test=1")
	if code != http.StatusBadRequest || !strings.Contains(body, "CONNECTION_INACTIVE") || !strings.Contains(body, "metadata") ||
		strings.Contains(body, "contact your IT administrator") {
		t.Errorf("test login on DRAFT = %d:\n%s", code, body)
	}
	// A non-test login of an end user still gets the plain page.
	code, body, _ = get(t, f.ts.httpURL+"/saml/beta/login")
	if strings.Contains(body, "CONNECTION_INACTIVE") || code == http.StatusOK {
		t.Errorf("end-user login on DRAFT = %d:\n%s", code, body)
	}
}
