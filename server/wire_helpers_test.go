package server

// Helpers for wire_test.go: a real IdP (devidp, i.e. crewjam's samlidp) on
// its own HTTP server, ssogate on real listeners, and the three places a
// rejection must show up: the end user's page, the audit log (over gRPC)
// and /metrics.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"html"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"google.golang.org/grpc/metadata"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// wireReturnTo is the one return URL prefix every wire connection allows.
const wireReturnTo = "https://app.example.com/cb"

// wireFixture is an IdP and an ssogate server with connections to it,
// each connection's SP metadata registered with the IdP.
type wireFixture struct {
	ts     *testServer
	idp    *devidp.IdP
	idpURL string // the IdP's base URL (its entity ID is idpURL+"/metadata")
	login  ssogatev1.LoginServiceClient
	audit  ssogatev1.AuditServiceClient
}

// wireConn declares one connection: the defaults of wireFixture.connection
// with set's top-level fields put over them.
type wireConn struct {
	id  string
	set map[string]any
}

func newWireFixture(t *testing.T, conns []wireConn, opts ...Option) *wireFixture {
	t.Helper()
	return newWireFixtureWith(t, conns, nil, opts...)
}

// newWireFixtureWith is newWireFixture with the configuration adjusted by
// mutate (after the connections are added).
func newWireFixtureWith(t *testing.T, conns []wireConn, mutate func(*config.Config), opts ...Option) *wireFixture {
	t.Helper()
	mux := http.NewServeMux()
	idpServer := httptest.NewServer(mux)
	t.Cleanup(idpServer.Close)
	f := &wireFixture{idpURL: idpServer.URL + "/idp"}
	f.idp = newDevIdP(t, f.idpURL)
	mux.Handle("/idp/", http.StripPrefix("/idp", f.idp.Handler()))
	f.ts = startTestServerWith(t, func(c *config.Config) {
		for _, wc := range conns {
			c.Connections = append(c.Connections, f.connection(wc))
		}
		if mutate != nil {
			mutate(c)
		}
	}, opts...)
	for _, wc := range conns {
		if err := f.idp.RegisterServiceProvider(wc.id, f.spMetadata(t, wc.id)); err != nil {
			t.Fatal(err)
		}
	}
	f.login = ssogatev1.NewLoginServiceClient(f.ts.dial(t, testLoginKey))
	f.audit = ssogatev1.NewAuditServiceClient(f.ts.dial(t, testAdminKey))
	return f
}

// connection is an ACTIVE connection to the fixture's IdP, in the config
// file's form, that maps the IdP's group attribute.
func (f *wireFixture) connection(wc wireConn) map[string]any {
	m := map[string]any{
		"id": wc.id, "tenant_id": "tenant-" + wc.id, "state": "CONNECTION_STATE_ACTIVE",
		"identity_provider": map[string]any{
			"entity_id": f.idpURL + "/metadata", "sso_url": f.idpURL + "/sso",
			"certificates": []any{map[string]any{"pem": pemOf(f.idp.Certificate)}},
		},
		"allowed_return_urls": []any{wireReturnTo},
		"attribute_mapping":   map[string]any{"groups": map[string]any{"names": []any{devidp.GroupsAttribute}}},
	}
	maps.Copy(m, wc.set)
	return m
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func (f *wireFixture) spMetadata(t *testing.T, connID string) []byte {
	t.Helper()
	code, md, _ := get(t, f.ts.httpURL+"/saml/"+connID+"/metadata")
	if code != http.StatusOK {
		t.Fatalf("SP metadata of %q: status %d", connID, code)
	}
	return []byte(md)
}

// acsURL is the connection's ACS as IdPs know it (external_url based).
func (f *wireFixture) acsURL(connID string) string {
	return f.ts.srv.cfg.ExternalURL + "/saml/" + connID + "/acs"
}

// withCallID gives a gRPC call a request id of ours, which the server
// records as the audit events' correlation id.
func withCallID(ctx context.Context) (context.Context, string) {
	id := newRequestID()
	return metadata.AppendToOutgoingContext(ctx, "x-request-id", id), id
}

func (f *wireFixture) startLogin(t *testing.T, req *ssogatev1.StartLoginRequest) *ssogatev1.StartLoginResponse {
	t.Helper()
	resp, err := f.login.StartLogin(context.Background(), req)
	if err != nil {
		t.Fatalf("StartLogin(%v): %v", req, err)
	}
	return resp
}

// loginAtIdP plays a browser without JavaScript at the IdP: it follows
// redirectURL to the login form, signs in as user (password = user name),
// and returns the fields of the auto-submitting form the IdP answers with.
// That form must be aimed at connID's ACS.
func (f *wireFixture) loginAtIdP(t *testing.T, connID, redirectURL, user string) (samlResponse, relayState string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	posted, err := devidp.SignIn(context.Background(), &http.Client{Jar: jar, Timeout: 10 * time.Second}, redirectURL, user, user)
	if err != nil {
		t.Fatalf("sign in at the IdP as %s: %v", user, err)
	}
	if want := f.acsURL(connID); posted.ACSURL != want {
		t.Fatalf("the IdP posts to %q, want %q", posted.ACSURL, want)
	}
	return posted.SAMLResponse, posted.RelayState
}

// acsAnswer is what a browser gets back from the ACS.
type acsAnswer struct {
	status    int
	header    http.Header
	body      string
	requestID string // X-Request-Id
}

// location parses the redirect target.
func (a acsAnswer) location(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(a.header.Get("Location"))
	if err != nil || a.header.Get("Location") == "" {
		t.Fatalf("ACS answer %d has no usable Location %q: %v\n%s", a.status, a.header.Get("Location"), err, a.body)
	}
	return u
}

// postACS posts a SAMLResponse to connID's ACS as the IdP's form would,
// without following the redirect.
func (f *wireFixture) postACS(t *testing.T, connID, samlResponse, relayState string) acsAnswer {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(f.ts.httpURL+"/saml/"+connID+"/acs",
		url.Values{"SAMLResponse": {samlResponse}, "RelayState": {relayState}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return acsAnswer{status: resp.StatusCode, header: resp.Header, body: string(body), requestID: resp.Header.Get(requestIDHeader)}
}

// signedResponse starts a login on connID and signs in at the IdP.
func (f *wireFixture) signedResponse(t *testing.T, connID, user string) (samlResponse, relayState string) {
	t.Helper()
	start := f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: connID, ReturnTo: wireReturnTo, State: "st-" + user})
	return f.loginAtIdP(t, connID, start.RedirectUrl, user)
}

// loginCode runs a whole SP-initiated login and returns the code the ACS
// hands the browser.
func (f *wireFixture) loginCode(t *testing.T, connID, user string) string {
	t.Helper()
	resp, relay := f.signedResponse(t, connID, user)
	return wantCodeRedirect(t, f.postACS(t, connID, resp, relay), wireReturnTo)
}

// wantCodeRedirect checks a successful ACS answer: 303 to returnTo with a
// code, and returns the code.
func wantCodeRedirect(t *testing.T, a acsAnswer, returnTo string) string {
	t.Helper()
	if a.status != http.StatusSeeOther {
		t.Fatalf("ACS = %d, want 303\n%s", a.status, a.body)
	}
	loc := a.location(t)
	code := loc.Query().Get("code")
	if loc.Scheme+"://"+loc.Host+loc.Path != returnTo || len(code) < 40 {
		t.Fatalf("ACS redirects to %s, want %s?code=<≥256 bits>", loc.Redacted(), returnTo)
	}
	return code
}

var correlationIDPattern = regexp.MustCompile(`<code id="correlation-id">([^<]*)</code>`)

// wantGenericPage checks what an end user sees of a rejection: the status,
// the generic page, its correlation id equal to the X-Request-Id, no
// redirect, and none of the detail (the reason name, the audit message, or
// any of hidden).
func wantGenericPage(t *testing.T, a acsAnswer, status int, ev *ssogatev1.AuditEvent, hidden ...string) {
	t.Helper()
	if a.status != status {
		t.Errorf("ACS status %d, want %d", a.status, status)
	}
	if loc := a.header.Get("Location"); loc != "" {
		t.Errorf("a rejection redirects to %q", loc)
	}
	if !strings.Contains(a.body, "We could not sign you in") {
		t.Errorf("not the generic error page:\n%s", a.body)
	}
	m := correlationIDPattern.FindStringSubmatch(a.body)
	if m == nil || m[1] == "" || m[1] != a.requestID {
		t.Errorf("correlation id on the page %q, X-Request-Id %q: want equal and set", m, a.requestID)
	}
	text := html.UnescapeString(a.body)
	hidden = append(hidden, "REJECTION_REASON", strings.TrimPrefix(ev.Reason.String(), "REJECTION_REASON_"), ev.Message)
	for _, h := range hidden {
		if h != "" && strings.Contains(text, h) {
			t.Errorf("the end-user page shows %q:\n%s", h, a.body)
		}
	}
}

// auditEvent returns the one event of type typ with the correlation id.
func (f *wireFixture) auditEvent(t *testing.T, typ, correlationID string) *ssogatev1.AuditEvent {
	t.Helper()
	resp, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{Type: typ, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	var found []*ssogatev1.AuditEvent
	for _, ev := range resp.Events {
		if ev.Type != typ {
			t.Fatalf("filter by type %q returned a %q event", typ, ev.Type)
		}
		if ev.CorrelationId == correlationID {
			found = append(found, ev)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %q audit events with correlation id %q, want 1; all of that type: %v", len(found), typ, correlationID, resp.Events)
	}
	return found[0]
}

// wantAudit checks an event's reason, connection and that its message
// names every one of mentions.
func wantAudit(t *testing.T, ev *ssogatev1.AuditEvent, reason ssogatev1.RejectionReason, connID string, mentions ...string) {
	t.Helper()
	if ev.Reason != reason || ev.ConnectionId != connID {
		t.Errorf("audit %s: reason %v connection %q, want %v %q (message %q)", ev.Type, ev.Reason, ev.ConnectionId, reason, connID, ev.Message)
	}
	for _, m := range mentions {
		if !strings.Contains(ev.Message, m) {
			t.Errorf("audit %s message %q does not mention %q", ev.Type, ev.Message, m)
		}
	}
}

// metricSnapshot maps a series ("name{label=\"value\"}") to its value.
type metricSnapshot map[string]float64

func (f *wireFixture) metrics(t *testing.T) metricSnapshot {
	t.Helper()
	code, body, _ := get(t, f.ts.httpURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	out := metricSnapshot{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
			// ACS outcomes also summed over connections, by reason.
			if m := acsOutcomeLine.FindStringSubmatch(line[:i]); m != nil {
				out[acsOutcome(m[1])] += v
			}
		}
	}
	return out
}

var acsOutcomeLine = regexp.MustCompile(`^ssogate_acs_outcomes_total\{connection="[^"]*",reason="([^"]*)"\}$`)

// series names a metric series; labels are name/value pairs in name order,
// as the exposition format writes them.
func metricSeries(name string, labels ...string) string {
	var b strings.Builder
	b.WriteString(name + "{")
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i] + `="` + labels[i+1] + `"`)
	}
	return b.String() + "}"
}

func acsOutcome(reason string) string {
	return metricSeries("ssogate_acs_outcomes_total", "reason", reason)
}

// wantDelta checks that each series grew by exactly want between two
// scrapes.
func wantDelta(t *testing.T, before, after metricSnapshot, want float64, names ...string) {
	t.Helper()
	for _, s := range names {
		if d := after[s] - before[s]; d != want {
			t.Errorf("%s grew by %v, want %v", s, d, want)
		}
	}
}

// unsolicitedIdP is crewjam's saml.IdentityProvider driven directly, to
// mint IdP-initiated responses (no InResponseTo): devidp serves only
// SP-initiated logins.
type unsolicitedIdP struct {
	idp *crewsaml.IdentityProvider
}

// signingKey makes an RSA key and a self-signed certificate for it, as an
// IdP's signing credential.
func signingKey(t *testing.T, name string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func newUnsolicitedIdP(t *testing.T) *unsolicitedIdP {
	t.Helper()
	key, cert := signingKey(t, "unsolicited IdP")
	md, _ := url.Parse("https://unsolicited-idp.example.com/metadata")
	sso, _ := url.Parse("https://unsolicited-idp.example.com/sso")
	return &unsolicitedIdP{idp: &crewsaml.IdentityProvider{
		Key: key, Signer: key, Certificate: cert, MetadataURL: *md, SSOURL: *sso,
		SignatureMethod: dsig.RSASHA256SignatureMethod,
	}}
}

// identityProvider is the connection's identity_provider setting, with
// this IdP's certificate pinned.
func (u *unsolicitedIdP) identityProvider() map[string]any {
	return map[string]any{
		"entity_id": u.idp.MetadataURL.String(), "sso_url": u.idp.SSOURL.String(),
		"certificates": []any{map[string]any{"pem": pemOf(u.idp.Certificate)}},
	}
}

// respond signs an IdP-initiated response for the SP whose metadata is
// spMetadata, about user.
func (u *unsolicitedIdP) respond(t *testing.T, spMetadata []byte, user devidp.User) string {
	t.Helper()
	return u.respondEdited(t, spMetadata, user, nil)
}

// respondEdited is respond with the assertion changed by edit before it
// is signed.
func (u *unsolicitedIdP) respondEdited(t *testing.T, spMetadata []byte, user devidp.User, edit func(*crewsaml.Assertion)) string {
	t.Helper()
	var md crewsaml.EntityDescriptor
	if err := xml.Unmarshal(spMetadata, &md); err != nil {
		t.Fatalf("SP metadata: %v", err)
	}
	if len(md.SPSSODescriptors) != 1 {
		t.Fatalf("SP metadata has %d SPSSODescriptors", len(md.SPSSODescriptors))
	}
	sp := &md.SPSSODescriptors[0]
	var acs *crewsaml.IndexedEndpoint
	for i := range sp.AssertionConsumerServices {
		if sp.AssertionConsumerServices[i].Binding == crewsaml.HTTPPostBinding {
			acs = &sp.AssertionConsumerServices[i]
		}
	}
	if acs == nil {
		t.Fatal("SP metadata has no HTTP-POST ACS")
	}
	now := time.Now()
	req := &crewsaml.IdpAuthnRequest{
		IDP: u.idp, HTTPRequest: httptest.NewRequest(http.MethodPost, acs.Location, nil), Now: now,
		Request:                 crewsaml.AuthnRequest{IssueInstant: now}, // no ID: unsolicited
		ServiceProviderMetadata: &md, SPSSODescriptor: sp, ACSEndpoint: acs,
	}
	session := &crewsaml.Session{
		ID: "unsolicited-" + user.Name, CreateTime: now, Index: "idx-" + user.Name,
		NameID: user.Email, NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
		UserEmail: user.Email, UserGivenName: user.GivenName, UserSurname: user.Surname, Groups: user.Groups,
	}
	if err := (crewsaml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req.Assertion)
	}
	form, err := req.PostBinding()
	if err != nil {
		t.Fatal(err)
	}
	return form.SAMLResponse
}
