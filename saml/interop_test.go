package saml

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

// testNow is the instant every test lives in; certificates are valid from
// 2020 to 2040.
var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const testIdPEntityID = "https://idp.example.com/metadata"

// Tests share three fixed RSA-2048 keys from testdata/keys: 0 signs for
// the IdP, 1 decrypts for the SP, 2 is an attacker's. Fixed keys keep the
// fuzz corpus's signatures valid and spare fuzz workers key generation.
var respKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		pemBytes, err := os.ReadFile(filepath.Join("testdata", "keys", fmt.Sprintf("test-rsa-%d.pem", i)))
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(pemBytes)
		if block == nil {
			return nil, fmt.Errorf("test-rsa-%d.pem: no PEM block", i)
		}
		if keys[i], err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, err
		}
	}
	return keys, nil
})

// respKey may be called with a nil t from Config edit functions.
func respKey(t testing.TB, i int) *rsa.PrivateKey {
	keys, err := respKeys()
	if err != nil {
		panic(err)
	}
	return keys[i]
}

// fixture is one connection: our SP, a crewjam IdP that issues real
// responses for it, and in-memory stand-ins for the store.
type fixture struct {
	sp       *ServiceProvider
	idpKey   *rsa.PrivateKey
	idpCert  *x509.Certificate
	idp      *crewsaml.IdentityProvider
	encCert  *x509.Certificate
	requests *memRequests
	replay   *memReplay
	// spMD, when set, is the SP metadata the IdP uses instead of one
	// built from the SP's URLs.
	spMD *crewsaml.EntityDescriptor
}

func newFixture(t testing.TB, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{idpKey: respKey(t, 0)}
	f.idpCert = selfSignedCert(t, f.idpKey)
	encKey := respKey(t, 1)
	f.encCert = selfSignedCert(t, encKey)
	cfg := Config{
		ConnectionID:   "acme",
		ExternalURL:    "https://sso.example.com",
		IdP:            IdentityProvider{EntityID: testIdPEntityID, Certificates: []*x509.Certificate{f.idpCert}},
		DecryptionKey:  encKey,
		EncryptionCert: f.encCert,
		Now:            func() time.Time { return testNow },
	}
	if edit != nil {
		edit(&cfg)
	}
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.sp = sp
	metadataURL, _ := url.Parse(testIdPEntityID)
	ssoURL, _ := url.Parse("https://idp.example.com/sso")
	f.idp = &crewsaml.IdentityProvider{
		Key:             f.idpKey,
		Certificate:     f.idpCert,
		MetadataURL:     *metadataURL,
		SSOURL:          *ssoURL,
		SignatureMethod: dsig.RSASHA256SignatureMethod,
		Clock:           dsig.NewFakeClockAt(testNow),
	}
	f.requests = &memRequests{pending: map[string]time.Time{}, used: map[string]bool{}, now: cfg.Now}
	f.replay = &memReplay{seen: map[string]time.Time{}}
	return f
}

// pend registers a pending request as StartLogin would.
func (f *fixture) pend(id string) string {
	f.requests.pending[id] = testNow.Add(10 * time.Minute)
	return id
}

func (f *fixture) input(samlResponse string) ResponseInput {
	return ResponseInput{SAMLResponse: samlResponse, Requests: f.requests, Replay: f.replay}
}

func (f *fixture) validate(t testing.TB, samlResponse string) (*Identity, error) {
	t.Helper()
	return f.sp.ValidateResponse(context.Background(), f.input(samlResponse))
}

// issue options for a crewjam-made response.
type issue struct {
	requestID         string // empty: IdP-initiated
	session           *crewsaml.Session
	unsignedAssertion bool             // only the Response is signed
	unsignedResponse  bool             // only the Assertion is signed
	encrypt           xmlenc.Encrypter // nil: plain Assertion
	editAssertion     func(*crewsaml.Assertion)
}

func defaultSession() *crewsaml.Session {
	return &crewsaml.Session{
		ID: "s1", CreateTime: testNow.Add(-time.Minute), Index: "idx-1",
		NameID: "alice@acme.example", NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
		UserEmail: "alice@acme.example", UserGivenName: "Alice", UserSurname: "Liddell", UserCommonName: "Alice Liddell",
		Groups: []string{"admins", "staff"},
	}
}

// spMetadata is what the IdP knows of our SP, built from the SP's own
// URLs (and its encryption certificate when the IdP is to encrypt).
func (f *fixture) spMetadata(encrypt bool) *crewsaml.EntityDescriptor {
	sso := crewsaml.SPSSODescriptor{
		SSODescriptor: crewsaml.SSODescriptor{RoleDescriptor: crewsaml.RoleDescriptor{
			ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
		}},
		AssertionConsumerServices: []crewsaml.IndexedEndpoint{{
			Binding: crewsaml.HTTPPostBinding, Location: f.sp.ACSURL(), Index: 1,
		}},
	}
	if encrypt {
		sso.KeyDescriptors = []crewsaml.KeyDescriptor{{
			Use: "encryption",
			KeyInfo: crewsaml.KeyInfo{X509Data: crewsaml.X509Data{X509Certificates: []crewsaml.X509Certificate{{
				Data: base64.StdEncoding.EncodeToString(f.encCert.Raw),
			}}}},
		}}
	}
	return &crewsaml.EntityDescriptor{EntityID: f.sp.EntityID(), SPSSODescriptors: []crewsaml.SPSSODescriptor{sso}}
}

// issue has the crewjam IdP answer a login and returns the POST value.
func (f *fixture) issue(t testing.TB, o issue) string {
	t.Helper()
	md := f.spMD
	if md == nil {
		md = f.spMetadata(o.encrypt != nil)
	}
	f.idp.AssertionEncrypter = o.encrypt
	req := &crewsaml.IdpAuthnRequest{
		IDP:                     f.idp,
		HTTPRequest:             httptest.NewRequest("POST", f.sp.ACSURL(), nil),
		Now:                     testNow,
		Request:                 crewsaml.AuthnRequest{ID: o.requestID, IssueInstant: testNow},
		ServiceProviderMetadata: md,
		SPSSODescriptor:         &md.SPSSODescriptors[0],
		ACSEndpoint:             &md.SPSSODescriptors[0].AssertionConsumerServices[0],
	}
	session := o.session
	if session == nil {
		session = defaultSession()
	}
	if err := (crewsaml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		t.Fatal(err)
	}
	if o.editAssertion != nil {
		o.editAssertion(req.Assertion)
	}
	if o.unsignedAssertion {
		req.AssertionEl = req.Assertion.Element()
	}
	if err := req.MakeResponse(); err != nil {
		t.Fatal(err)
	}
	if o.unsignedResponse {
		sig := firstChild(req.ResponseEl, dsig.Namespace, "Signature")
		if sig == nil {
			t.Fatal("crewjam response has no signature")
		}
		req.ResponseEl.RemoveChild(sig)
	}
	form, err := req.PostBinding()
	if err != nil {
		t.Fatal(err)
	}
	return form.SAMLResponse
}

// tamper parses a response, lets edit change it, and signs it again with
// the IdP's own key where it was signed before (or as resign says), so the
// signature is valid and only the edited value is wrong.
type resign struct {
	assertion, response bool
	method              string // default RSA-SHA256
	key                 crypto.Signer
	cert                *x509.Certificate
	// rawECDSA writes ECDSA signature values as r||s (XML Signature's
	// form) instead of goxmldsig's ASN.1 DER.
	rawECDSA bool
	// sigLast leaves the signature as the last child, where goxmldsig
	// puts it, instead of after the Issuer.
	sigLast bool
	// mixed, when set, re-signs with a signature method and digest that
	// goxmldsig would not pair.
	mixed *mixedAlgs
}

type mixedAlgs struct {
	sigMethod  string
	sigHash    crypto.Hash
	digestURI  string
	digestHash crypto.Hash
}

func (f *fixture) tamper(t testing.TB, b64 string, edit func(resp, assertion *etree.Element), rs resign) string {
	t.Helper()
	doc := parseB64(t, b64)
	resp := doc.Root()
	a := firstChild(resp, nsAssertion, "Assertion")
	if edit != nil {
		edit(resp, a)
	}
	var key crypto.Signer = f.idpKey
	cert := f.idpCert
	if rs.key != nil {
		key, cert = rs.key, rs.cert
	}
	if rs.assertion {
		a = firstChild(resp, nsAssertion, "Assertion")
		signed := signElement(t, mustDetach(t, a), key, cert, rs.method)
		if rs.mixed != nil {
			resignMixed(t, signed, key, *rs.mixed)
		}
		if rs.sigLast {
			moveLast(signed, firstChild(signed, dsig.Namespace, "Signature"))
		}
		if rs.rawECDSA {
			derSignatureToRaw(t, signed, cert)
		}
		replaceChild(resp, a, signed)
	}
	if rs.response {
		if old := firstChild(resp, dsig.Namespace, "Signature"); old != nil {
			resp.RemoveChild(old)
		}
		resp = signElement(t, resp, key, cert, rs.method)
		if rs.mixed != nil {
			resignMixed(t, resp, key, *rs.mixed)
		}
		if rs.sigLast {
			moveLast(resp, firstChild(resp, dsig.Namespace, "Signature"))
		}
		if rs.rawECDSA {
			derSignatureToRaw(t, resp, cert)
		}
		doc.SetRoot(resp)
	}
	return encodeDoc(t, doc)
}

func parseB64(t testing.TB, b64 string) *etree.Document {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc
}

func encodeDoc(t testing.TB, doc *etree.Document) string {
	t.Helper()
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustDetach(t testing.TB, el *etree.Element) *etree.Element {
	t.Helper()
	d, err := detach(el)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func replaceChild(parent, old, repl *etree.Element) {
	i := old.Index()
	parent.RemoveChild(old)
	parent.InsertChildAt(i, repl)
}

// signElement drops el's enveloped signature, if any, and signs it again
// with goxmldsig, placing the signature after the Issuer as the schema
// wants.
func signElement(t testing.TB, el *etree.Element, key crypto.Signer, cert *x509.Certificate, method string) *etree.Element {
	t.Helper()
	if old := firstChild(el, dsig.Namespace, "Signature"); old != nil {
		el.RemoveChild(old)
	}
	ctx, err := dsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	if method == "" {
		method = dsig.RSASHA256SignatureMethod
	}
	if err := ctx.SetSignatureMethod(method); err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	// goxmldsig appends the signature without parenting it; take it off
	// the slice and insert it properly.
	sig := signed.Child[len(signed.Child)-1].(*etree.Element)
	signed.Child = signed.Child[:len(signed.Child)-1]
	at := 0
	if iss := firstChild(signed, nsAssertion, "Issuer"); iss != nil {
		at = iss.Index() + 1
	}
	signed.InsertChildAt(at, sig)
	return signed
}

// resignMixed recomputes the digest and the signature value of el's
// enveloped signature with the algorithms in m.
func resignMixed(t testing.TB, el *etree.Element, key crypto.Signer, m mixedAlgs) {
	t.Helper()
	c14n := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	sig := firstChild(el, dsig.Namespace, "Signature")
	unsigned := el.Copy()
	unsigned.RemoveChild(firstChild(unsigned, dsig.Namespace, "Signature"))
	body, err := c14n.Canonicalize(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	h := m.digestHash.New()
	h.Write(body)
	si := firstChild(sig, dsig.Namespace, "SignedInfo")
	ref := firstChild(si, dsig.Namespace, "Reference")
	firstChild(ref, dsig.Namespace, "DigestMethod").CreateAttr("Algorithm", m.digestURI)
	firstChild(ref, dsig.Namespace, "DigestValue").SetText(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	firstChild(si, dsig.Namespace, "SignatureMethod").CreateAttr("Algorithm", m.sigMethod)
	canonSI, err := c14n.Canonicalize(mustDetach(t, si))
	if err != nil {
		t.Fatal(err)
	}
	sh := m.sigHash.New()
	sh.Write(canonSI)
	value, err := key.Sign(rand.Reader, sh.Sum(nil), m.sigHash)
	if err != nil {
		t.Fatal(err)
	}
	firstChild(sig, dsig.Namespace, "SignatureValue").SetText(base64.StdEncoding.EncodeToString(value))
}

func moveLast(parent, child *etree.Element) {
	parent.RemoveChild(child)
	parent.AddChild(child)
}

func derSignatureToRaw(t testing.TB, el *etree.Element, cert *x509.Certificate) {
	t.Helper()
	sv := firstChild(firstChild(el, dsig.Namespace, "Signature"), dsig.Namespace, "SignatureValue")
	der, err := base64.StdEncoding.DecodeString(sv.Text())
	if err != nil {
		t.Fatal(err)
	}
	size := (cert.PublicKey.(*ecdsa.PublicKey).Curve.Params().BitSize + 7) / 8
	raw, err := derToRaw(der, size)
	if err != nil {
		t.Fatal(err)
	}
	sv.SetText(base64.StdEncoding.EncodeToString(raw))
}

// memRequests and memReplay stand in for the store with the semantics
// the store's implementations must have.
type memRequests struct {
	mu      sync.Mutex
	pending map[string]time.Time
	used    map[string]bool
	now     func() time.Time
	calls   int
}

func (m *memRequests) ConsumeRequest(_ context.Context, connectionID, requestID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if connectionID != "acme" {
		return fmt.Errorf("connection %q: %w", connectionID, ErrRequestUnknown)
	}
	exp, ok := m.pending[requestID]
	switch {
	case !ok:
		return fmt.Errorf("request %q: %w", requestID, ErrRequestUnknown)
	case m.used[requestID]:
		return fmt.Errorf("request %q: %w", requestID, ErrRequestUsed)
	case !m.now().Before(exp):
		return fmt.Errorf("request %q: %w", requestID, ErrRequestExpired)
	}
	m.used[requestID] = true
	return nil
}

type memReplay struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	calls int
}

func (m *memReplay) RecordAssertion(_ context.Context, _, assertionID string, expiresAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if _, ok := m.seen[assertionID]; ok {
		return fmt.Errorf("assertion %q: %w", assertionID, ErrAssertionSeen)
	}
	m.seen[assertionID] = expiresAt
	return nil
}

func wantReason(t testing.TB, err error, want Reason) *Error {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error = %v, want *saml.Error with reason %s", err, want)
	}
	if se.Reason != want {
		t.Fatalf("reason = %s (%s), want %s", se.Reason, se.Message, want)
	}
	return se
}

// TestInteropCrewjam has crewjam/saml's IdP answer our SP in every shape it
// can sign and encrypt, and checks the identity that comes out.
func TestInteropCrewjam(t *testing.T) {
	gcm := xmlenc.OAEP_SHA256()
	gcm.BlockCipher = xmlenc.AES256GCM
	gcmMGF1P := xmlenc.OAEP()
	gcmMGF1P.DigestMethod = &xmlenc.SHA1
	gcmMGF1P.BlockCipher = xmlenc.AES128GCM
	cbc := xmlenc.OAEP()
	cbc.BlockCipher = xmlenc.AES256CBC
	rsa15 := xmlenc.PKCS1v15()
	rsa15.BlockCipher = xmlenc.AES128CBC

	tests := []struct {
		name   string
		edit   func(*Config)
		issue  issue
		signed [2]bool // response, assertion
		enc    bool
	}{
		{name: "response and assertion signed", issue: issue{}, signed: [2]bool{true, true}},
		{name: "assertion signed only", issue: issue{unsignedResponse: true}, signed: [2]bool{false, true}},
		{name: "response signed only", issue: issue{unsignedAssertion: true}, signed: [2]bool{true, false}},
		{name: "encrypted AES-256-GCM RSA-OAEP-SHA256", issue: issue{encrypt: gcm}, signed: [2]bool{true, true}, enc: true},
		{name: "encrypted AES-128-GCM RSA-OAEP-MGF1P, assertion signed only", issue: issue{encrypt: gcmMGF1P, unsignedResponse: true}, signed: [2]bool{false, true}, enc: true},
		{name: "encrypted, required by connection", edit: func(c *Config) { c.WantEncryptedAssertions = true }, issue: issue{encrypt: gcm}, signed: [2]bool{true, true}, enc: true},
		{name: "encrypted AES-CBC with legacy allowed", edit: func(c *Config) { c.AllowLegacyEncryption = true }, issue: issue{encrypt: cbc}, signed: [2]bool{true, true}, enc: true},
		{name: "encrypted AES-CBC RSA-1.5 with legacy allowed", edit: func(c *Config) { c.AllowLegacyEncryption = true }, issue: issue{encrypt: rsa15}, signed: [2]bool{true, true}, enc: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.edit)
			tc.issue.requestID = f.pend("id-req-1")
			id, err := f.validate(t, f.issue(t, tc.issue))
			if err != nil {
				t.Fatal(err)
			}
			d := id.Diagnostics
			if d.ResponseSigned != tc.signed[0] || d.AssertionSigned != tc.signed[1] || d.Encrypted != tc.enc {
				t.Errorf("diagnostics signed=(%v,%v) encrypted=%v, want %v %v", d.ResponseSigned, d.AssertionSigned, d.Encrypted, tc.signed, tc.enc)
			}
			if id.NameID != "alice@acme.example" || id.InResponseTo != "id-req-1" || id.Issuer != testIdPEntityID || id.SessionIndex != "idx-1" {
				t.Errorf("identity = %+v", id)
			}
			if got := id.Attributes["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"]; strings.Join(got, ",") != "admins,staff" {
				t.Errorf("groups attribute = %q", got)
			}
			if d.SignatureAlgorithm != dsig.RSASHA256SignatureMethod || d.CertificateSubject != "CN=ssogate test" {
				t.Errorf("diagnostics = %+v", d)
			}
			if !f.requests.used["id-req-1"] || len(f.replay.seen) != 1 {
				t.Errorf("request consumed = %v, assertions recorded = %d", f.requests.used["id-req-1"], len(f.replay.seen))
			}
		})
	}
}

// TestInteropCrewjamMetadataExchange configures each side only from the
// other's metadata: our ParseIdPMetadata reads crewjam's IdP metadata, and
// crewjam reads our SP metadata, picks the encryption it lists (AES-GCM)
// and answers.
func TestInteropCrewjamMetadataExchange(t *testing.T) {
	f := newFixture(t, nil)
	idpXML, err := xml.Marshal(f.idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	idp, err := ParseIdPMetadataAt(idpXML, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.sp.Config()
	cfg.IdP = idp
	if f.sp, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	spXML, err := f.sp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	f.spMD = &crewsaml.EntityDescriptor{}
	if err := xml.Unmarshal(spXML, f.spMD); err != nil {
		t.Fatal(err)
	}
	id, err := f.validate(t, f.issue(t, issue{requestID: f.pend("id-md")}))
	if err != nil {
		t.Fatal(err)
	}
	if !id.Diagnostics.Encrypted || id.NameID != "alice@acme.example" || id.InResponseTo != "id-md" {
		t.Errorf("identity = %+v", id)
	}
}

// TestGroupsBeyondGosaml2TraversalLimit: goxmldsig's namespace traversal
// stops at 1,000 elements, so gosaml2's RetrieveAssertionInfo refuses
// genuine responses from about 500 attribute values up. Ours accepts them,
// signed either way.
func TestGroupsBeyondGosaml2TraversalLimit(t *testing.T) {
	for _, unsignedResponse := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsigned response %v", unsignedResponse), func(t *testing.T) {
			f := newFixture(t, nil)
			s := defaultSession()
			s.Groups = make([]string, 600)
			for i := range s.Groups {
				s.Groups[i] = fmt.Sprintf("group-%d", i)
			}
			form := f.issue(t, issue{requestID: f.pend("id-r"), session: s, unsignedResponse: unsignedResponse})
			if _, err := f.validate(t, form); err != nil {
				t.Fatal(err)
			}
			g2 := &saml2.SAMLServiceProvider{
				IdentityProviderIssuer: testIdPEntityID, AssertionConsumerServiceURL: f.sp.ACSURL(), AudienceURI: f.sp.EntityID(),
				IDPCertificateStore: &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{f.idpCert}},
				Clock:               dsig.NewFakeClockAt(testNow),
			}
			_, err := g2.RetrieveAssertionInfo(form)
			t.Logf("gosaml2 on the same response: %v", err)
		})
	}
}
