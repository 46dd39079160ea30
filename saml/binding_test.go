package saml

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// protoNow is the clock of every protocol-message test.
var protoNow = time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	testIdPEntity = "https://idp.example.com/saml"
	testIdPSSO    = "https://idp.example.com/sso"
	testIdPSLO    = "https://idp.example.com/slo"
)

// testKey is a key pair with its self-signed certificate. Keys are made
// once per test binary: RSA generation is slow.
type testKey struct {
	signer crypto.Signer
	cert   *x509.Certificate
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]testKey{}
)

// key returns the named test key; names starting with "ec" are ECDSA P-256,
// the others RSA-2048.
func key(t testing.TB, name string) testKey {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[name]; ok {
		return k
	}
	var s crypto.Signer
	var err error
	if strings.HasPrefix(name, "ec") {
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	k := testKey{signer: s, cert: selfSignedCert(t, s)}
	testKeys[name] = k
	return k
}

// newTestSP returns the SP of connection "acme" whose IdP signs with the
// "idp" key, at protoNow; edit adjusts the config first.
func newTestSP(t testing.TB, edit func(*Config)) *ServiceProvider {
	t.Helper()
	cfg := Config{
		ConnectionID: "acme",
		ExternalURL:  "https://sso.example.com",
		IdP: IdentityProvider{
			EntityID:       testIdPEntity,
			SSORedirectURL: testIdPSSO,
			SSOPostURL:     testIdPSSO,
			SLORedirectURL: testIdPSLO,
			SLOPostURL:     testIdPSLO,
			Certificates:   []*x509.Certificate{key(t, "idp").cert},
		},
		Now: func() time.Time { return protoNow },
	}
	if edit != nil {
		edit(&cfg)
	}
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// signing makes a Config sign its messages with the named key.
func signing(t testing.TB, name string) func(*Config) {
	return func(c *Config) {
		k := key(t, name)
		c.SignRequests, c.SigningKey, c.SigningCert = true, k.signer, k.cert
	}
}

// rawQueryOf returns the query of a redirect URL, as a server would see it
// in r.URL.RawQuery.
func rawQueryOf(t testing.TB, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.RawQuery
}

// decodeRedirect returns the XML a redirect URL carries in param.
func decodeRedirect(t testing.TB, u, param string) *etree.Element {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(p.Query().Get(param))
	if err != nil {
		t.Fatal(err)
	}
	xmlBytes, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(xmlBytes); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

var formField = regexp.MustCompile(`name="([A-Za-z]+)" value="([^"]*)"`)

// postFields returns the hidden fields of a PostForm page, unescaped.
func postFields(t testing.TB, page []byte) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range formField.FindAllStringSubmatch(string(page), -1) {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<x a="` + m[2] + `"/>`); err != nil {
			t.Fatalf("field %s is not attribute-safe: %v", m[1], err)
		}
		v.Add(m[1], doc.Root().SelectAttrValue("a", ""))
	}
	return v
}

func TestParseXMLShape(t *testing.T) {
	tests := []struct {
		name, doc string
		reason    Reason
		limit     int
	}{
		{"doctype", `<!DOCTYPE a><a/>`, ReasonForbiddenXML, 0},
		{"entity", `<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>`, ReasonForbiddenXML, 0},
		{"processing instruction", `<a><?php x?></a>`, ReasonForbiddenXML, 0},
		{"late xml declaration", `<a/><?xml version="1.0"?>`, ReasonForbiddenXML, 0},
		{"two roots", `<a/><b/>`, ReasonMalformedXML, 0},
		{"no root", ` `, ReasonMalformedXML, 0},
		{"text after root", `<a/>x`, ReasonMalformedXML, 0},
		{"deep", strings.Repeat("<a>", maxElementDepth+1) + strings.Repeat("</a>", maxElementDepth+1), ReasonXMLTooComplex, 0},
		{"namespace flood", "<a " + nsFlood(maxNamespacesInScope+1) + "/>", ReasonXMLTooComplex, 0},
		{"too large", "<a>" + strings.Repeat("x", 100) + "</a>", ReasonBodyTooLarge, 100},
		{"too many elements", "<a>" + strings.Repeat("<b/>", DefaultMaxXMLElements) + "</a>", ReasonXMLTooComplex, 1 << 20},
		{"too many attributes", "<a>" + strings.Repeat(`<b x="1" y="2"/>`, DefaultMaxXMLAttributes/2) + "</a>", ReasonXMLTooComplex, 1 << 20},
		{"too many namespace declarations", "<a>" + strings.Repeat(`<b xmlns="urn:x" xmlns:y="urn:y"/>`, DefaultMaxXMLNamespaceDecls/2) + "</a>", ReasonXMLTooComplex, 1 << 20},
		{"duplicate attribute", `<a x="1" x="2"/>`, ReasonMalformedXML, 0},
		{"duplicate namespace declaration", `<a xmlns:p="urn:x" xmlns:p="urn:y"/>`, ReasonMalformedXML, 0},
		{"duplicate across prefixes of one namespace", `<a xmlns:p="urn:x" xmlns:q="urn:x" p:n="1" q:n="2"/>`, ReasonMalformedXML, 0},
		{"duplicate across prefixes, namespace declared on the parent", `<r xmlns:p="urn:x"><a xmlns:q="urn:x" q:n="2" p:n="1"/></r>`, ReasonMalformedXML, 0},
		{"duplicate across prefixes, namespace names spelled differently", `<a xmlns:p="urn:x" xmlns:q="urn:&#120;" p:n="1" q:n="2"/>`, ReasonMalformedXML, 0},
		{"duplicate among many attributes", "<a " + manyAttrs(20) + ` v3="again"/>`, ReasonMalformedXML, 0},
		{"xml prefix twice", `<a xml:lang="en" xml:lang="de"/>`, ReasonMalformedXML, 0},
		{"encoding UTF-16", `<?xml version="1.0" encoding="UTF-16"?><a/>`, ReasonMalformedXML, 0},
		{"encoding ISO-8859-1", `<?xml version='1.0' encoding='ISO-8859-1'?><a/>`, ReasonMalformedXML, 0},
		{"malformed declaration", `<?xml version="1.0" encoding?><a/>`, ReasonMalformedXML, 0},
		// Names encoding/xml does not write back as read (mattermost's
		// xml-roundtrip-validator cases), and end tags that close another
		// element (encoding/xml's RawToken, which etree reads with, does not
		// check).
		{"colons in an element name", `<x::Root/>`, ReasonMalformedXML, 0},
		{"colons in a nested element name", `<Root><x::Element></x::Element></Root>`, ReasonMalformedXML, 0},
		{"two prefixes", `<a:b:c xmlns:a="urn:a"/>`, ReasonMalformedXML, 0},
		{"colons in an attribute name", `<Root><Element ::attr="foo"></Element></Root>`, ReasonMalformedXML, 0},
		{"empty local name", `<x:/>`, ReasonMalformedXML, 0},
		{"empty attribute name", `<Root :="value"/>`, ReasonMalformedXML, 0},
		{"empty attribute local name", `<Root x:="value"/>`, ReasonMalformedXML, 0},
		{"empty xmlns local name", `<Root xmlns="x" xmlns:="y"></Root>`, ReasonMalformedXML, 0},
		{"leading colon", `<:Root/>`, ReasonMalformedXML, 0},
		{"local name starting with a digit", `<A:0000/>`, ReasonMalformedXML, 0},
		{"attribute local name starting with a dot", `<a xmlns:p="urn:x" p:.x="1"/>`, ReasonMalformedXML, 0},
		{"end tag closes another element", `<a><b></c></a>`, ReasonMalformedXML, 0},
		{"end tag with colons", `<Root></x::Element></Root>`, ReasonMalformedXML, 0},
		{"directive", `<Root><! <<!-- -->!-- x --> y></Root>`, ReasonForbiddenXML, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = 64 << 10
			}
			_, err := parseXML([]byte(tc.doc), limit, defaultXMLLimits)
			var se *Error
			if !errors.As(err, &se) || se.Reason != tc.reason {
				t.Fatalf("error = %v, want reason %s", err, tc.reason)
			}
		})
	}
	for _, doc := range []string{
		`<?xml version="1.0"?><a xmlns="urn:x"><b/></a>`,
		`<?xml version="1.0" encoding="UTF-8" standalone="yes" ?><a/>`,
		`<?xml version="1.0" encoding="utf-8"?><a/>`,
		// Same local name, different namespaces: distinct attributes.
		`<a xmlns:p="urn:x" xmlns:q="urn:y" p:n="1" q:n="2" n="3"/>`,
		// A prefix rebound in a child names another namespace there.
		`<r xmlns:p="urn:x" p:n="1"><a xmlns:p="urn:y" p:n="1"/><b p:n="2"/></r>`,
		"<a " + manyAttrs(20) + "/>",
		"<a>" + strings.Repeat("<b/>", DefaultMaxXMLElements-1) + "</a>",
	} {
		if _, err := parseXML([]byte(doc), 1<<20, defaultXMLLimits); err != nil {
			t.Errorf("%.80s: refused: %v", doc, err)
		}
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ` v%d="%d"`, i, i)
	}
	return b.String()
}

func nsFlood(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`xmlns:p` + strings.Repeat("x", i+1) + `="urn:x" `)
	}
	return b.String()
}

func TestParseRedirectQueryRawOctets(t *testing.T) {
	// The signature covers parameters as received, in this order, whatever
	// else the query holds and however it percent-encodes.
	q, err := parseRedirectQuery("foo=1&SigAlg=a%2fb&SAMLRequest=x%2Bz&Signature=s&RelayState=r%20s", "SAMLRequest")
	if err != nil {
		t.Fatal(err)
	}
	if q.signed != "SAMLRequest=x%2Bz&RelayState=r%20s&SigAlg=a%2fb" {
		t.Errorf("signed octets %q", q.signed)
	}
	if q.message != "x+z" || q.relayState != "r s" || q.sigAlg != "a/b" || q.signature != "s" {
		t.Errorf("decoded %+v", q)
	}
	for _, bad := range []string{"SAMLRequest=a&SAMLRequest=b", "RelayState=a", "SAMLRequest=%zz", "SAMLRequest=a&RelayState=1&RelayState=2"} {
		if _, err := parseRedirectQuery(bad, "SAMLRequest"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestECDSASignatureFormats(t *testing.T) {
	k := key(t, "ec-fmt")
	digest := make([]byte, 32)
	der, err := k.signer.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := derToRaw(der, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 64 || !bytes.Equal(rawToDER(raw), der) {
		t.Fatalf("raw %d bytes; DER round trip differs", len(raw))
	}
	for name, sig := range map[string][]byte{"der": der, "raw": raw} {
		if !verifyDigest(k.cert.PublicKey, crypto.SHA256, digest, sig) {
			t.Errorf("%s signature refused", name)
		}
	}
	raw[5] ^= 1
	if verifyDigest(k.cert.PublicKey, crypto.SHA256, digest, raw) {
		t.Error("altered signature accepted")
	}
}
