package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// offsetClock is the real time moved on by a settable offset: the
// crewjam IdP lives in real time, so a jump must stay inside the clock
// skew both sides allow (a minute's overlap, then 61 s on).
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}
func (c *offsetClock) add(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// keyDescriptors lists SP metadata's KeyDescriptors as use:fingerprint.
func keyDescriptors(t *testing.T, md []byte) []string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(md); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kd := range doc.FindElements("//KeyDescriptor") {
		c := kd.FindElement("KeyInfo/X509Data/X509Certificate")
		if c == nil {
			t.Fatalf("KeyDescriptor without a certificate:\n%s", md)
		}
		der, err := base64.StdEncoding.DecodeString(c.Text())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kd.SelectAttrValue("use", "")+":"+fingerprint(der))
	}
	return out
}

func certSummary(certs []*ssogatev1.ServiceProviderCertificate) string {
	var parts []string
	for _, c := range certs {
		use := strings.TrimPrefix(c.Use.String(), "SERVICE_PROVIDER_KEY_USE_")
		state := strings.TrimPrefix(c.State.String(), "SERVICE_PROVIDER_KEY_STATE_")
		s := fmt.Sprintf("%s/%s/%s", state, use, c.Sha256Fingerprint[:8])
		if c.Shared {
			s += "/shared"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// signInAt signs in at the IdP as user and returns what it posts, or the
// IdP's refusal.
func (f *wireFixture) signInAt(t *testing.T, connID, user string) (devidp.Posted, error) {
	t.Helper()
	start := f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: connID, ReturnTo: wireReturnTo, State: "st"})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// With the HTTP-POST binding the redirect goes to our page that posts
	// the request; it is served at the external URL.
	page := strings.Replace(start.RedirectUrl, f.ts.srv.cfg.ExternalURL, f.ts.httpURL, 1)
	return devidp.SignIn(context.Background(), &http.Client{Jar: jar, Timeout: 10 * time.Second}, page, user, user)
}

// loginWorks runs a whole login at the crewjam IdP, which verifies the
// signed AuthnRequest against the SP certificates it knows and encrypts
// the assertion to the first encryption certificate it knows; the
// connection refuses plain assertions, so a code proves decryption.
func (f *wireFixture) loginWorks(t *testing.T, connID, what string) {
	t.Helper()
	posted, err := f.signInAt(t, connID, "alice")
	if err != nil {
		t.Fatalf("%s: the IdP refused: %v", what, err)
	}
	a := f.postACS(t, connID, posted.SAMLResponse, posted.RelayState)
	if a.status != http.StatusSeeOther {
		t.Fatalf("%s: ACS = %d\n%s", what, a.status, a.body)
	}
	wantCodeRedirect(t, a, wireReturnTo)
}

// TestSPKeyRotationWithOverlap is issue 14's done-means: during the
// overlap an IdP that pinned the old SP certificate and one that read the
// new metadata both work (signed requests verified by crewjam's IdP,
// assertions encrypted to either key decrypted); after it the old
// certificate is gone from metadata and requests are signed with the new
// key, which the IdP that pinned only the old one now refuses.
func TestSPKeyRotationWithOverlap(t *testing.T) {
	ctx := context.Background()
	clock := &offsetClock{}
	// The HTTP-POST binding: crewjam's login form posts the AuthnRequest
	// on with its enveloped signature, where a query signature is lost.
	postBinding := func(c *config.Config) {
		idp := c.Connections[0]["identity_provider"].(map[string]any)
		idp["sso_post_url"] = idp["sso_url"]
		delete(idp, "sso_url")
	}
	f := newWireFixtureWith(t, []wireConn{{id: "rot", set: map[string]any{"sign_requests": true, "want_encrypted_assertions": true}}}, postBinding, WithClock(clock.now))
	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	oldMD := f.spMetadata(t, "rot")
	shared := fingerprint(f.ts.srv.spCreds.signingCert.Raw)
	if got, want := strings.Join(keyDescriptors(t, oldMD), " "), "signing:"+shared+" encryption:"+shared; got != want {
		t.Fatalf("metadata before the rotation: %s, want %s", got, want)
	}
	f.loginWorks(t, "rot", "before the rotation")

	resp, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "rot", Overlap: durationpb.New(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	certs := resp.Connection.ServiceProvider.Certificates
	if len(certs) != 2 || !certs[0].Shared || certs[1].Shared || certs[1].State != ssogatev1.ServiceProviderKeyState_SERVICE_PROVIDER_KEY_STATE_NEXT ||
		certs[1].Use != ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_UNSPECIFIED || certs[1].TransitionTime == nil {
		t.Fatalf("certificates after RotateServiceProviderKey: %s", certSummary(certs))
	}
	next := certs[1].Sha256Fingerprint
	if d := certs[1].TransitionTime.AsTime().Sub(clock.now()); d < 50*time.Second || d > time.Minute {
		t.Errorf("transition in %v, want a minute", d)
	}
	if strings.Contains(protojson.Format(resp), "PRIVATE KEY") || strings.Contains(f.ts.logs.String(), "PRIVATE KEY") {
		t.Fatal("a private key left the server")
	}
	newMD := f.spMetadata(t, "rot")
	if got, want := strings.Join(keyDescriptors(t, newMD), " "),
		"signing:"+shared+" signing:"+next+" encryption:"+next+" encryption:"+shared; got != want {
		t.Fatalf("metadata during the overlap:\n got %s\nwant %s", got, want)
	}

	// The IdP still pins the old metadata: requests are signed with the
	// current (shared) key, and it encrypts to the old certificate.
	f.loginWorks(t, "rot", "overlap, IdP pinned the old certificate")
	// It reads the new metadata: encrypts to the next key (listed first).
	if err := f.idp.RegisterServiceProvider("rot", newMD); err != nil {
		t.Fatal(err)
	}
	f.loginWorks(t, "rot", "overlap, IdP read the new metadata")

	clock.add(61 * time.Second)
	afterMD := f.spMetadata(t, "rot")
	if got, want := strings.Join(keyDescriptors(t, afterMD), " "), "signing:"+next+" encryption:"+next; got != want {
		t.Fatalf("metadata after the overlap:\n got %s\nwant %s", got, want)
	}
	got, err := admin.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: "rot"})
	if err != nil {
		t.Fatal(err)
	}
	if s := certSummary(got.Connection.ServiceProvider.Certificates); s != "CURRENT/UNSPECIFIED/"+next[:8] {
		t.Errorf("certificates after the overlap: %s", s)
	}
	f.loginWorks(t, "rot", "after the overlap, IdP with the metadata of the overlap")
	if err := f.idp.RegisterServiceProvider("rot", afterMD); err != nil {
		t.Fatal(err)
	}
	f.loginWorks(t, "rot", "after the overlap, IdP with the new metadata")
	// Requests are now signed with the new key: an IdP that knows only the
	// old certificate cannot verify them.
	if err := f.idp.RegisterServiceProvider("rot", oldMD); err != nil {
		t.Fatal(err)
	}
	if _, err := f.signInAt(t, "rot", "alice"); err == nil {
		t.Fatal("after the overlap an IdP that pinned only the old certificate still accepted the AuthnRequest: it is not signed with the new key")
	}
}

// TestSPKeyRotationAcrossReplicas: a replica that cached the connection
// sees the next key at once (the rotation bumps the version) and drops the
// old one at the transition time by its own clock, with no job running.
func TestSPKeyRotationAcrossReplicas(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db := "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
		spKeyRotationAcrossReplicas(t, func(c *config.Config) { c.Store = db })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresDSN(t)
		spKeyRotationAcrossReplicas(t, func(c *config.Config) {
			c.Store, c.KEK = dsn, base64.StdEncoding.EncodeToString(make([]byte, 32))
		})
	})
}

func spKeyRotationAcrossReplicas(t *testing.T, useDB func(*config.Config)) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	a := startTestServerWith(t, useDB, WithClock(clock.now))
	admin := ssogatev1.NewConnectionServiceClient(a.dial(t, testAdminKey))
	if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "rep", TenantId: "t"}}); err != nil {
		t.Fatal(err)
	}
	b := startTestServerWith(t, useDB, WithClock(clock.now))
	metadataAt := func(ts *testServer) string {
		code, md, _ := get(t, ts.httpURL+"/saml/rep/metadata")
		if code != http.StatusOK {
			t.Fatalf("metadata: %d", code)
		}
		return strings.Join(keyDescriptors(t, []byte(md)), " ")
	}
	shared := fingerprint(a.srv.spCreds.signingCert.Raw)
	if got := metadataAt(b); got != "signing:"+shared {
		t.Fatalf("b before: %s", got)
	}
	resp, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "rep",
		Use: ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING})
	if err != nil {
		t.Fatal(err)
	}
	next := resp.Connection.ServiceProvider.Certificates[1]
	if d := next.TransitionTime.AsTime().Sub(clock.now()); d != 30*24*time.Hour {
		t.Errorf("default overlap %v, want 30 days", d)
	}
	if got := metadataAt(b); got != "signing:"+shared+" signing:"+next.Sha256Fingerprint {
		t.Fatalf("b during the overlap: %s", got)
	}
	clock.add(30*24*time.Hour - time.Second)
	if got := metadataAt(b); got != "signing:"+shared+" signing:"+next.Sha256Fingerprint {
		t.Fatalf("b a second before the transition: %s", got)
	}
	clock.add(time.Second)
	if got := metadataAt(b); got != "signing:"+next.Sha256Fingerprint {
		t.Fatalf("b at the transition: %s", got)
	}
	if got := metadataAt(a); got != "signing:"+next.Sha256Fingerprint {
		t.Fatalf("a at the transition: %s", got)
	}
}

// pemBody is a line from the middle of a PEM block's base64, or "".
func pemBody(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 4 {
		return ""
	}
	return lines[len(lines)/2]
}

func keyPairPEM(t *testing.T, name string) (keyPKCS8, keyPKCS1, certPEM string, cert *x509.Certificate) {
	t.Helper()
	key, cert := signingKey(t, name)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})), pemOf(cert), cert
}

// TestSPKeyImportOnCreate: a migrated connection keeps the SP certificate
// its IdP pinned; a pair that does not match, or is not RSA of 2048 bits,
// is refused with a message naming the field.
func TestSPKeyImportOnCreate(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t)
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	keyPEM, pkcs1PEM, certPEM, cert := keyPairPEM(t, "old SP")
	_, _, otherCertPEM, _ := keyPairPEM(t, "another SP")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	smallPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER}))

	for _, tc := range []struct {
		name, key, cert, field, mention string
	}{
		{"certificate of another key", keyPEM, otherCertPEM, "service_provider_certificate_pem", "not the certificate of the given private key"},
		{"1024-bit key", smallPEM, certPEM, "service_provider_private_key_pem", "at least 2048"},
		{"not PEM", "hello", certPEM, "service_provider_private_key_pem", "not a PEM private key"},
		{"certificate not PEM", keyPEM, "hello", "service_provider_certificate_pem", "not a PEM certificate"},
	} {
		_, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "bad", TenantId: "t"},
			ServiceProviderPrivateKeyPem: tc.key, ServiceProviderCertificatePem: tc.cert})
		if status.Code(err) != codes.InvalidArgument || errorReason(err) != reasonConnectionInvalid ||
			!strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT %s naming %s: %s", tc.name, err, reasonConnectionInvalid, tc.field, tc.mention)
		}
		if body := pemBody(tc.key); body != "" && strings.Contains(fmt.Sprint(err), body) {
			t.Errorf("%s: the error echoes the key", tc.name)
		}
	}
	if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "half", TenantId: "t"},
		ServiceProviderPrivateKeyPem: keyPEM}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "service_provider_certificate_pem") {
		t.Errorf("key without certificate: %v", err)
	}

	for i, key := range []string{keyPEM, pkcs1PEM} {
		id := fmt.Sprintf("migrated-%d", i)
		resp, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: id, TenantId: "t", PublishEncryptionKey: true},
			ServiceProviderPrivateKeyPem: key, ServiceProviderCertificatePem: certPEM})
		if err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
		fp := fingerprint(cert.Raw)
		if s := certSummary(resp.Connection.ServiceProvider.Certificates); s != "CURRENT/UNSPECIFIED/"+fp[:8] {
			t.Errorf("certificates of %s: %s", id, s)
		}
		if strings.Contains(protojson.Format(resp), "PRIVATE KEY") || strings.Contains(protojson.Format(resp), pemBody(key)) {
			t.Fatal("CreateConnection returned the private key")
		}
		code, md, _ := get(t, ts.httpURL+"/saml/"+id+"/metadata")
		if got := strings.Join(keyDescriptors(t, []byte(md)), " "); code != http.StatusOK || got != "signing:"+fp+" encryption:"+fp {
			t.Errorf("metadata of %s: %d %s", id, code, got)
		}
	}
	if strings.Contains(ts.logs.String(), "PRIVATE KEY") || strings.Contains(ts.logs.String(), pemBody(keyPEM)) {
		t.Fatal("a private key was logged")
	}

	// A deleted connection's key does not serve a new one of the same id.
	if _, err := admin.DeleteConnection(ctx, &ssogatev1.DeleteConnectionRequest{ConnectionId: "migrated-0"}); err != nil {
		t.Fatal(err)
	}
	again, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "migrated-0", TenantId: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := again.Connection.ServiceProvider.Certificates; len(c) != 1 || !c[0].Shared {
		t.Errorf("recreated connection: %s, want the shared key", certSummary(c))
	}
}

// TestEncryptionKeyPublishedOnlyWhenAsked: IdPs that encrypt whenever
// metadata offers a key must not start unasked.
func TestEncryptionKeyPublishedOnlyWhenAsked(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t)
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	shared := fingerprint(ts.srv.spCreds.signingCert.Raw)
	for _, tc := range []struct {
		id   string
		conn *ssogatev1.Connection
		want string
	}{
		{"plain", &ssogatev1.Connection{}, "signing:" + shared},
		{"publish", &ssogatev1.Connection{PublishEncryptionKey: true}, "signing:" + shared + " encryption:" + shared},
		{"want", &ssogatev1.Connection{WantEncryptedAssertions: true}, "signing:" + shared + " encryption:" + shared},
	} {
		tc.conn.Id, tc.conn.TenantId = tc.id, "t"
		resp, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: tc.conn})
		if err != nil {
			t.Fatal(err)
		}
		_, md, _ := get(t, ts.httpURL+"/saml/"+tc.id+"/metadata")
		if got := strings.Join(keyDescriptors(t, []byte(md)), " "); got != tc.want {
			t.Errorf("%s: metadata %s, want %s", tc.id, got, tc.want)
		}
		wantUse := "SIGNING"
		if tc.id != "plain" {
			wantUse = "UNSPECIFIED"
		}
		if s := certSummary(resp.Connection.ServiceProvider.Certificates); s != "CURRENT/"+wantUse+"/"+shared[:8]+"/shared" {
			t.Errorf("%s: certificates %s", tc.id, s)
		}
	}
	// publish_encryption_key can be switched on later.
	if _, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{Connection: &ssogatev1.Connection{Id: "plain", PublishEncryptionKey: true}}); err != nil {
		t.Fatal(err)
	}
	if _, md, _ := get(t, ts.httpURL+"/saml/plain/metadata"); !strings.Contains(md, `use="encryption"`) {
		t.Error("publish_encryption_key set by UpdateConnection is not in the metadata")
	}
}

func TestRotateServiceProviderKeyRefusals(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t)
	admin := ssogatev1.NewConnectionServiceClient(ts.dial(t, testAdminKey))
	if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: "r", TenantId: "t"}}); err != nil {
		t.Fatal(err)
	}
	keyPEM, _, _, _ := keyPairPEM(t, "a")
	_, _, otherCert, _ := keyPairPEM(t, "b")
	for name, req := range map[string]*ssogatev1.RotateServiceProviderKeyRequest{
		"negative overlap":    {ConnectionId: "r", Overlap: durationpb.New(-time.Hour)},
		"overlap over a year": {ConnectionId: "r", Overlap: durationpb.New(400 * 24 * time.Hour)},
		"mismatched pair":     {ConnectionId: "r", PrivateKeyPem: keyPEM, CertificatePem: otherCert},
		"key without cert":    {ConnectionId: "r", PrivateKeyPem: keyPEM},
		"unknown use":         {ConnectionId: "r", Use: 7},
	} {
		if _, err := admin.RotateServiceProviderKey(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if _, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown connection: %v", err)
	}
	if _, err := ssogatev1.NewConnectionServiceClient(ts.dial(t, testLoginKey)).RotateServiceProviderKey(ctx,
		&ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "r"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("with the login scope: %v, want PERMISSION_DENIED", err)
	}
	if _, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "r",
		Use: ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_ENCRYPTION}); err != nil {
		t.Fatal(err)
	}
	_, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "r"})
	if status.Code(err) != codes.FailedPrecondition || errorReason(err) != reasonSPKeyRotationPending {
		t.Errorf("second rotation while one is pending: %v", err)
	}
	// A signing rotation does not wait for the encryption one; overlap
	// zero makes it current at once.
	resp, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "r",
		Use: ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING, Overlap: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	if s := certSummary(resp.Connection.ServiceProvider.Certificates); !strings.HasPrefix(s, "CURRENT/SIGNING/") || strings.Contains(s, "SIGNING/"+fingerprint(ts.srv.spCreds.signingCert.Raw)[:8]) {
		t.Errorf("after a signing rotation with zero overlap: %s", s)
	}

	// The REST mapping.
	req, _ := http.NewRequest(http.MethodPost, ts.httpURL+"/v1/connections/r:rotateServiceProviderKey",
		strings.NewReader(`{"use": "SERVICE_PROVIDER_KEY_USE_SIGNING", "overlap": "3600s"}`))
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	req.Header.Set("Content-Type", "application/json")
	httpResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer httpResp.Body.Close()
	var out ssogatev1.RotateServiceProviderKeyResponse
	raw, _ := io.ReadAll(httpResp.Body)
	if err := protojson.Unmarshal(raw, &out); httpResp.StatusCode != http.StatusOK || err != nil ||
		!strings.Contains(certSummary(out.Connection.GetServiceProvider().GetCertificates()), "NEXT/SIGNING/") {
		t.Errorf("REST rotate = %d %v:\n%s", httpResp.StatusCode, err, raw)
	}
}

// TestSPCertificateExpiryNotices: 30, 7 and 1 days before a connection's
// SP certificate expires, once each across replicas; none once a
// successor that takes over in time is published.
func TestSPCertificateExpiryNotices(t *testing.T) {
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(60 * 24 * time.Hour).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "expiring SP"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	clock := &fakeClock{t: notAfter.Add(-40 * 24 * time.Hour)}
	db := "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
	useDB := func(c *config.Config) { c.Store = db }
	a := startTestServerWith(t, useDB, WithClock(clock.now))
	admin := ssogatev1.NewConnectionServiceClient(a.dial(t, testAdminKey))
	for _, id := range []string{"soon", "rotated"} {
		if _, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{Id: id, TenantId: "t"},
			ServiceProviderPrivateKeyPem:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
			ServiceProviderCertificatePem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.RotateServiceProviderKey(ctx, &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: "rotated",
		Overlap: durationpb.New(37 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b := startTestServerWith(t, useDB, WithClock(clock.now))
	for _, left := range []time.Duration{40 * 24 * time.Hour, 20 * 24 * time.Hour, 19 * 24 * time.Hour, 5 * 24 * time.Hour, 12 * time.Hour, time.Hour} {
		clock.t = notAfter.Add(-left)
		a.srv.connectionSweep(ctx)
		b.srv.connectionSweep(ctx)
	}
	audit := ssogatev1.NewAuditServiceClient(a.dial(t, testAdminKey))
	evs, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "soon", Type: "sp_certificate.expiring", After: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	var days []any
	for _, e := range evs.Events {
		days = append(days, e.Detail.AsMap()["days"])
		if fp := e.Detail.AsMap()["fingerprint"]; fp != fingerprint(der) || !strings.Contains(e.Message, "rotate-sp-key soon") {
			t.Errorf("event %s: fingerprint %v, message %q", e.Id, fp, e.Message)
		}
	}
	if fmt.Sprint(days) != "[30 7 1]" {
		t.Fatalf("SP certificate expiry notices at days %v, want [30 7 1] once each", days)
	}
	if evs, err := audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "rotated", Type: "sp_certificate.expiring", After: new(int64)}); err != nil || len(evs.Events) != 0 {
		t.Errorf("a connection whose successor is published in time got %v (%v)", evs.GetEvents(), err)
	}
}
