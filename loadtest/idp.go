package loadtest

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

const (
	nsSAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsSAML  = "urn:oasis:names:tc:SAML:2.0:assertion"
	// maxAuthnRequestBytes bounds the inflated AuthnRequest read back from
	// the redirect URL (ssogate's are under 1 KiB).
	maxAuthnRequestBytes = 64 << 10
)

// IdP is the load test's own identity provider: a throwaway RSA-2048 key
// and a self-signed certificate made at start, which sign one Response per
// AuthnRequest. It lives only in memory and only as long as the run; the
// connection that trusts it is deleted at the end.
type IdP struct {
	EntityID string
	// SSOURL is where the connection sends AuthnRequests; a .invalid host
	// (RFC 6761), so a browser could never reach it: the load test reads
	// the request out of the URL instead.
	SSOURL string
	// CertificatePEM is the signing certificate, for the connection.
	CertificatePEM string
	key            *rsa.PrivateKey
	cert           *x509.Certificate
	now            func() time.Time
}

// NewIdP makes the key and certificate. The certificate is valid from an
// hour ago for a day: the connection is deleted long before.
func NewIdP(entityID, ssoURL string, now func() time.Time) (*IdP, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("loadtest IdP key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("loadtest IdP certificate serial: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ssogate loadtest IdP"},
		NotBefore:    t.Add(-time.Hour),
		NotAfter:     t.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("loadtest IdP certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("loadtest IdP certificate: %w", err)
	}
	return &IdP{
		EntityID: entityID, SSOURL: ssoURL,
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		key:            key, cert: cert, now: now,
	}, nil
}

// AuthnRequest is what the IdP reads from an HTTP-Redirect AuthnRequest.
type AuthnRequest struct {
	ID, Issuer, ACSURL, RelayState string
}

// ParseRedirect reads the AuthnRequest out of the URL StartLogin returned
// (HTTP-Redirect binding: base64 of DEFLATE), as an IdP's SSO endpoint
// would.
func (i *IdP) ParseRedirect(redirectURL string) (AuthnRequest, error) {
	u, err := url.Parse(redirectURL)
	if err != nil {
		return AuthnRequest{}, fmt.Errorf("redirect URL: %w", err)
	}
	q := u.Query()
	raw, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
	if err != nil || len(raw) == 0 {
		return AuthnRequest{}, errors.New("redirect URL has no base64 SAMLRequest (is the connection's IdP POST-only?)")
	}
	inflated, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxAuthnRequestBytes+1))
	if err != nil {
		return AuthnRequest{}, fmt.Errorf("inflate SAMLRequest: %w", err)
	}
	if len(inflated) > maxAuthnRequestBytes {
		return AuthnRequest{}, fmt.Errorf("SAMLRequest inflates beyond %d bytes", maxAuthnRequestBytes)
	}
	var req struct {
		XMLName xml.Name
		ID      string `xml:"ID,attr"`
		ACSURL  string `xml:"AssertionConsumerServiceURL,attr"`
		Issuer  string `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	}
	if err := xml.Unmarshal(inflated, &req); err != nil {
		return AuthnRequest{}, fmt.Errorf("parse AuthnRequest: %w", err)
	}
	if req.XMLName.Space != nsSAMLP || req.XMLName.Local != "AuthnRequest" || req.ID == "" || req.Issuer == "" {
		return AuthnRequest{}, fmt.Errorf("SAMLRequest is no AuthnRequest with an ID and an Issuer (root %s)", req.XMLName.Local)
	}
	return AuthnRequest{ID: req.ID, Issuer: req.Issuer, ACSURL: req.ACSURL, RelayState: q.Get("RelayState")}, nil
}

// User is who the IdP says signed in.
type User struct {
	NameID, Email, GivenName, FamilyName string
	Groups                               []string
}

// Response builds the base64 SAMLResponse answering req for user: an
// unsigned Response around an Assertion signed with RSA-SHA256 (what most
// IdPs send), Destination and Recipient acs, Audience the request's
// Issuer (the SP entity ID), valid for five minutes.
func (i *IdP) Response(req AuthnRequest, acs string, user User) (string, error) {
	now := i.now().UTC()
	respID, err := randomID()
	if err != nil {
		return "", err
	}
	assertionID, err := randomID()
	if err != nil {
		return "", err
	}
	sessionIndex, err := randomID()
	if err != nil {
		return "", err
	}
	instant, until := samlTime(now), samlTime(now.Add(5*time.Minute))

	a := etree.NewElement("saml:Assertion")
	a.CreateAttr("xmlns:saml", nsSAML)
	a.CreateAttr("ID", assertionID)
	a.CreateAttr("Version", "2.0")
	a.CreateAttr("IssueInstant", instant)
	a.CreateElement("saml:Issuer").SetText(i.EntityID)
	subj := a.CreateElement("saml:Subject")
	nameID := subj.CreateElement("saml:NameID")
	nameID.CreateAttr("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
	nameID.SetText(user.NameID)
	sc := subj.CreateElement("saml:SubjectConfirmation")
	sc.CreateAttr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
	scd := sc.CreateElement("saml:SubjectConfirmationData")
	scd.CreateAttr("InResponseTo", req.ID)
	scd.CreateAttr("NotOnOrAfter", until)
	scd.CreateAttr("Recipient", acs)
	cond := a.CreateElement("saml:Conditions")
	cond.CreateAttr("NotBefore", samlTime(now.Add(-30*time.Second)))
	cond.CreateAttr("NotOnOrAfter", until)
	cond.CreateElement("saml:AudienceRestriction").CreateElement("saml:Audience").SetText(req.Issuer)
	as := a.CreateElement("saml:AuthnStatement")
	as.CreateAttr("AuthnInstant", instant)
	as.CreateAttr("SessionIndex", sessionIndex)
	as.CreateElement("saml:AuthnContext").CreateElement("saml:AuthnContextClassRef").
		SetText("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
	attrs := a.CreateElement("saml:AttributeStatement")
	attr := func(name string, values ...string) {
		if len(values) == 0 || values[0] == "" {
			return
		}
		el := attrs.CreateElement("saml:Attribute")
		el.CreateAttr("Name", name)
		el.CreateAttr("NameFormat", "urn:oasis:names:tc:SAML:2.0:attrname-format:basic")
		for _, v := range values {
			el.CreateElement("saml:AttributeValue").SetText(v)
		}
	}
	attr("email", user.Email)
	attr("firstName", user.GivenName)
	attr("lastName", user.FamilyName)
	attr("groups", user.Groups...)

	signed, err := i.sign(a)
	if err != nil {
		return "", err
	}

	resp := etree.NewElement("samlp:Response")
	resp.CreateAttr("xmlns:samlp", nsSAMLP)
	resp.CreateAttr("xmlns:saml", nsSAML)
	resp.CreateAttr("ID", respID)
	resp.CreateAttr("Version", "2.0")
	resp.CreateAttr("IssueInstant", instant)
	resp.CreateAttr("Destination", acs)
	resp.CreateAttr("InResponseTo", req.ID)
	resp.CreateElement("saml:Issuer").SetText(i.EntityID)
	resp.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").
		CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")
	resp.AddChild(signed)

	doc := etree.NewDocument()
	doc.SetRoot(resp)
	doc.WriteSettings.CanonicalText = true
	out, err := doc.WriteToBytes()
	if err != nil {
		return "", fmt.Errorf("serialize Response: %w", err)
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// sign returns el with an enveloped RSA-SHA256 signature (exclusive
// canonicalization) placed right after its Issuer, as the schema orders
// it.
func (i *IdP) sign(el *etree.Element) (*etree.Element, error) {
	ctx, err := dsig.NewSigningContext(i.key, [][]byte{i.cert.Raw})
	if err != nil {
		return nil, fmt.Errorf("signing context: %w", err)
	}
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, fmt.Errorf("signing context: %w", err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, fmt.Errorf("sign Assertion: %w", err)
	}
	// SignEnveloped appends the signature last; the schema wants it after
	// the Issuer.
	last := len(signed.Child) - 1
	sig, ok := signed.Child[last].(*etree.Element)
	if !ok {
		return nil, errors.New("sign Assertion: no signature element")
	}
	signed.Child = signed.Child[:last]
	signed.InsertChildAt(1, sig)
	return signed, nil
}

// randomID is an XML ID: a letter, then 20 random bytes in hex.
func randomID() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random ID: %w", err)
	}
	return "_" + hex.EncodeToString(b), nil
}

func samlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
