package saml

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

const (
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsXMLEnc    = "http://www.w3.org/2001/04/xmlenc#"
	nsXMLEnc11  = "http://www.w3.org/2009/xmlenc11#"

	statusPrefix  = "urn:oasis:names:tc:SAML:2.0:status:"
	statusSuccess = statusPrefix + "Success"
	bearerMethod  = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	digestSHA1    = "http://www.w3.org/2000/09/xmldsig#sha1"
)

// goxmldsigOnly sends every signature to goxmldsig; tests set it to
// compare the direct verifier's verdicts with goxmldsig's.
var goxmldsigOnly = false

// Signature and digest algorithms accepted without AllowSHA1.
var (
	strongSignatureMethods = map[string]bool{
		dsig.RSASHA256SignatureMethod: true, dsig.RSASHA384SignatureMethod: true, dsig.RSASHA512SignatureMethod: true,
		dsig.ECDSASHA256SignatureMethod: true, dsig.ECDSASHA384SignatureMethod: true, dsig.ECDSASHA512SignatureMethod: true,
	}
	sha1SignatureMethods = map[string]bool{dsig.RSASHA1SignatureMethod: true, dsig.ECDSASHA1SignatureMethod: true}
	strongDigests        = map[string]bool{
		"http://www.w3.org/2001/04/xmlenc#sha256":       true,
		"http://www.w3.org/2001/04/xmldsig-more#sha384": true,
		"http://www.w3.org/2001/04/xmlenc#sha512":       true,
	}
)

// docScan is what one walk over the unverified tree finds.
type docScan struct {
	encrypted bool
}

// scanDocument walks the whole unverified tree once. It refuses any
// number of assertions other than one, an assertion anywhere but directly
// under the Response (the shapes of signature wrapping attacks), and any
// signature with an algorithm the connection does not allow, wherever it
// sits.
func scanDocument(root *etree.Element, allowSHA1 bool) (docScan, *Error) {
	var scan docScan
	var found []*etree.Element
	var rerr *Error
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for _, t := range el.Child {
			c, ok := t.(*etree.Element)
			if !ok {
				continue
			}
			if rerr != nil {
				return
			}
			switch c.Tag {
			case "Assertion", "EncryptedAssertion":
				if c.NamespaceURI() == nsAssertion {
					found = append(found, c)
				}
			case "Signature":
				if c.NamespaceURI() == dsig.Namespace {
					rerr = checkSignatureAlgorithms(c, allowSHA1)
				}
			}
			walk(c)
		}
	}
	walk(root)
	if rerr != nil {
		return scan, rerr
	}
	if len(found) != 1 {
		return scan, Rejectf(ReasonAssertionCount, "the Response holds %d Assertion or EncryptedAssertion elements, expected exactly 1", len(found))
	}
	if found[0].Parent() != root {
		return scan, Rejectf(ReasonAssertionCount, "the %s is inside <%s>, expected it directly under the Response",
			found[0].Tag, truncate(found[0].Parent().Tag, 64))
	}
	scan.encrypted = found[0].Tag == "EncryptedAssertion"
	return scan, nil
}

func checkSignatureAlgorithms(sig *etree.Element, allowSHA1 bool) *Error {
	method, digests := signatureAlgorithms(sig)
	switch {
	case strongSignatureMethods[method]:
	case sha1SignatureMethods[method]:
		if !allowSHA1 {
			return Rejectf(ReasonAlgorithmNotAllowed,
				"signature algorithm is %s; SHA-1 is refused unless the connection allows SHA-1 (better: configure the IdP to sign with RSA-SHA256)", method)
		}
	default:
		return Rejectf(ReasonAlgorithmNotAllowed, "signature algorithm %q is not supported; expected RSA or ECDSA with SHA-256, SHA-384 or SHA-512", truncate(method, 128))
	}
	if len(digests) == 0 {
		return Rejectf(ReasonSignatureInvalid, "signature has no Reference")
	}
	for _, d := range digests {
		switch {
		case strongDigests[d]:
		case d == digestSHA1:
			if !allowSHA1 {
				return Rejectf(ReasonAlgorithmNotAllowed,
					"digest algorithm is SHA-1; it is refused unless the connection allows SHA-1 (better: configure the IdP to use SHA-256)")
			}
		default:
			return Rejectf(ReasonAlgorithmNotAllowed, "digest algorithm %q is not supported; expected SHA-256, SHA-384 or SHA-512", truncate(d, 128))
		}
	}
	return nil
}

// signatureAlgorithms reads SignatureMethod and every DigestMethod of a
// ds:Signature element.
func signatureAlgorithms(sig *etree.Element) (method string, digests []string) {
	si := firstChild(sig, dsig.Namespace, "SignedInfo")
	if si == nil {
		return "", nil
	}
	if m := firstChild(si, dsig.Namespace, "SignatureMethod"); m != nil {
		method = m.SelectAttrValue("Algorithm", "")
	}
	for _, ref := range children(si, dsig.Namespace, "Reference") {
		d := firstChild(ref, dsig.Namespace, "DigestMethod")
		if d == nil {
			digests = append(digests, "")
			continue
		}
		digests = append(digests, d.SelectAttrValue("Algorithm", ""))
	}
	return method, digests
}

// sigInfo describes a verified signature, for Diagnostics.
type sigInfo struct {
	method, digest string
	cert           *x509.Certificate
}

// verifyEnveloped checks the enveloped signature that is a direct child of
// el and returns the element as the signature covers it (canonical, with
// comments dropped), which is all later checks may read. It returns
// (nil, nil, nil) when el carries no signature. el must carry its own
// namespace declarations (a document root or a detached copy).
//
// plain says el's tree holds no comments and no CDATA sections; the
// common signature shapes on such a tree are verified directly (see
// verifyDirect), the rest by goxmldsig.
func (sp *ServiceProvider) verifyEnveloped(el *etree.Element, what string, plain bool, now time.Time) (*etree.Element, *sigInfo, *Error) {
	sig, rerr := envelopedSignature(el, what)
	if sig == nil || rerr != nil {
		return nil, nil, rerr
	}
	method, digests := signatureAlgorithms(sig)
	info := &sigInfo{method: method, digest: digests[0]}

	candidates, rerr := sp.candidateCerts(sig, what, now)
	if rerr != nil {
		return nil, nil, rerr
	}
	if d, ok := directShape(sig); ok && plain && !goxmldsigOnly {
		cert, err := verifyDirect(el, sig, d, candidates)
		if err != nil {
			return nil, nil, &Error{Reason: ReasonSignatureInvalid, Err: err,
				Message: fmt.Sprintf("the %s signature does not verify with the pinned certificate%s: %s",
					what, plural(len(candidates)), truncate(err.Error(), 200))}
		}
		info.cert = cert
		return el, info, nil
	}
	// goxmldsig looks for the signature depth-first and gives up after
	// 1,000 elements, so a signature placed after a long AttributeStatement
	// would be "missing". The enveloped-signature transform removes it
	// wherever it sits, so moving it first changes nothing that is signed.
	if sig.Index() != 0 {
		el.RemoveChild(sig)
		el.InsertChildAt(0, sig)
	}
	// A KeyInfo without a certificate (an RSAKeyValue, a KeyName, an
	// X509IssuerSerial: PingFederate and older Shibboleth send these) names
	// nothing this package would use, since only pinned certificates
	// verify; goxmldsig, though, refuses any KeyInfo without an
	// X509Certificate. KeyInfo lies outside SignedInfo and inside the
	// Signature that the enveloped-signature transform removes, so taking
	// it out for the check changes nothing that is signed.
	if ki := firstChild(sig, dsig.Namespace, "KeyInfo"); ki != nil && keyInfoCert(sig) == "" {
		at := ki.Index()
		sig.RemoveChild(ki)
		defer sig.InsertChildAt(at, ki)
	}
	var lastErr error
	for _, cert := range candidates {
		vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
		vctx.Clock = dsig.NewFakeClockAt(now)
		restore := ecdsaValueToDER(sig, cert)
		verified, err := vctx.Validate(el)
		restore()
		if err == nil {
			info.cert = cert
			return verified, info, nil
		}
		lastErr = err
	}
	return nil, nil, &Error{Reason: ReasonSignatureInvalid, Err: lastErr,
		Message: fmt.Sprintf("the %s signature does not verify with the pinned certificate%s: %s",
			what, plural(len(candidates)), truncate(lastErr.Error(), 200))}
}

// envelopedSignature is el's enveloped signature, nil when el has none,
// after the checks of its shape that need no key: one Signature, a
// SignedInfo, and exactly one Reference, to el's own ID.
func envelopedSignature(el *etree.Element, what string) (*etree.Element, *Error) {
	sigs := children(el, dsig.Namespace, "Signature")
	if len(sigs) == 0 {
		return nil, nil
	}
	if len(sigs) > 1 {
		return nil, Rejectf(ReasonSignatureInvalid, "the %s carries %d signatures, expected 1", what, len(sigs))
	}
	sig := sigs[0]
	id := el.SelectAttrValue("ID", "")
	if id == "" {
		return nil, Rejectf(ReasonSignatureInvalid, "the signed %s has no ID", what)
	}
	si := firstChild(sig, dsig.Namespace, "SignedInfo")
	if si == nil {
		return nil, Rejectf(ReasonSignatureInvalid, "the %s signature has no SignedInfo", what)
	}
	refs := children(si, dsig.Namespace, "Reference")
	if len(refs) != 1 || refs[0].SelectAttrValue("URI", "") != "#"+id {
		uri := ""
		if len(refs) > 0 {
			uri = refs[0].SelectAttrValue("URI", "")
		}
		return nil, Rejectf(ReasonSignatureInvalid, "the %s signature must have one Reference to #%s; it has %d, the first to %q",
			what, truncate(id, 128), len(refs), truncate(uri, 128))
	}
	return sig, nil
}

// ecdsaValueToDER rewrites an ECDSA SignatureValue from the r||s form XML
// Signature specifies (RFC 4051) to the ASN.1 DER goxmldsig verifies, when
// it has the length r||s has for cert's curve; values already in DER are
// left alone. SignatureValue is outside SignedInfo, so nothing signed
// changes. The returned func puts the original text back.
func ecdsaValueToDER(sig *etree.Element, cert *x509.Certificate) (restore func()) {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	sv := firstChild(sig, dsig.Namespace, "SignatureValue")
	if !ok || sv == nil {
		return func() {}
	}
	orig, _ := textOf(sv)
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(orig), ""))
	if size := (pub.Curve.Params().BitSize + 7) / 8; err != nil || len(raw) != 2*size {
		return func() {}
	}
	sv.SetText(base64.StdEncoding.EncodeToString(rawToDER(raw)))
	return func() { sv.SetText(orig) }
}

// candidateCerts picks the pinned certificates a signature may be checked
// with. A certificate in KeyInfo only selects among the pinned ones; one
// that is not pinned is refused, whatever it claims.
func (sp *ServiceProvider) candidateCerts(sig *etree.Element, what string, now time.Time) ([]*x509.Certificate, *Error) {
	pinned := sp.cfg.IdP.Certificates
	var candidates []*x509.Certificate
	if b64 := keyInfoCert(sig); b64 != "" {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
		if err != nil {
			return nil, Rejectf(ReasonSignatureInvalid, "the %s signature's KeyInfo certificate is not base64", what)
		}
		// Pinned certificates are matched by their DER bytes (what
		// x509.Certificate.Equal compares); the presented one is parsed
		// only to describe it when it is not pinned.
		for _, c := range pinned {
			if bytes.Equal(c.Raw, der) {
				candidates = append(candidates, c)
			}
		}
		if len(candidates) == 0 {
			presented, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, Rejectf(ReasonSignatureInvalid, "the %s signature's KeyInfo certificate does not parse: %v", what, err)
			}
			return nil, Rejectf(ReasonCertificateNotTrusted,
				"the %s is signed with certificate %s, which is not pinned for this connection (pinned: %s); update the IdP metadata",
				what, describeCert(presented), describeCerts(pinned))
		}
	} else {
		candidates = pinned
	}
	var valid []*x509.Certificate
	for _, c := range candidates {
		if !now.Before(c.NotBefore) && !now.After(c.NotAfter) {
			valid = append(valid, c)
		}
	}
	if len(valid) == 0 {
		return nil, Rejectf(ReasonCertificateNotTrusted,
			"no pinned certificate that could verify the %s is valid now (%s): %s",
			what, now.UTC().Format(time.RFC3339), describeCertsValidity(candidates))
	}
	return valid, nil
}

func keyInfoCert(sig *etree.Element) string {
	ki := firstChild(sig, dsig.Namespace, "KeyInfo")
	if ki == nil {
		return ""
	}
	xd := firstChild(ki, dsig.Namespace, "X509Data")
	if xd == nil {
		return ""
	}
	c := firstChild(xd, dsig.Namespace, "X509Certificate")
	if c == nil {
		return ""
	}
	t, _ := textOf(c)
	return t
}

func describeCert(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return fmt.Sprintf("%q (SHA-256 %s)", truncate(c.Subject.String(), 128), hex.EncodeToString(sum[:8]))
}

func describeCerts(cs []*x509.Certificate) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = describeCert(c)
	}
	return strings.Join(parts, ", ")
}

func describeCertsValidity(cs []*x509.Certificate) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s valid %s to %s", describeCert(c),
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// verifiedResponse holds the elements later checks may read.
type verifiedResponse struct {
	// envelope is the Response as its signature covers it, or the
	// unverified Response when it is unsigned: then it is read only to
	// reject, never for a value the Identity carries.
	envelope       *etree.Element
	responseSigned bool
	// assertion is covered by a verified signature (its own or the
	// Response's).
	assertion       *etree.Element
	assertionSigned bool
	encrypted       bool
	sig             *sigInfo
}

// verifySignatures establishes which elements a pinned key vouches for.
// The Response signature, when present, is checked first and covers its
// Assertion (saml-profiles 4.1.3.5: each assertion is signed directly or
// by the enclosing Response); an Assertion signature, when present, must
// verify as well; with neither, the Response is refused. An
// EncryptedAssertion is decrypted after the Response signature that covers
// it is checked, and its own signature is checked after decryption.
func (sp *ServiceProvider) verifySignatures(root *etree.Element, plain bool, now time.Time) (*verifiedResponse, *Error) {
	v := &verifiedResponse{envelope: root}
	signedResp, info, rerr := sp.verifyEnveloped(root, "Response", plain, now)
	if rerr != nil {
		return nil, rerr
	}
	if signedResp != nil {
		v.envelope, v.responseSigned, v.sig = signedResp, true, info
	}
	a := firstChild(v.envelope, nsAssertion, "Assertion")
	enc := firstChild(v.envelope, nsAssertion, "EncryptedAssertion")
	switch {
	case enc != nil:
		v.encrypted = true
		a, rerr = sp.decryptAssertion(enc, v.responseSigned)
		if rerr != nil {
			return nil, rerr
		}
	case a == nil:
		// scanDocument saw one directly under the Response; the signed
		// form of the Response must still hold it.
		return nil, Rejectf(ReasonAssertionCount, "the Response holds no Assertion directly under it")
	}
	detached, err := detach(a)
	if err != nil {
		return nil, &Error{Reason: ReasonMalformedXML, Message: "the Assertion's namespace declarations are invalid", Err: err}
	}
	if v.encrypted {
		plain = plainTree(detached)
	}
	signedA, ainfo, rerr := sp.verifyEnveloped(detached, "Assertion", plain, now)
	if rerr != nil {
		return nil, rerr
	}
	switch {
	case signedA != nil:
		v.assertion, v.assertionSigned, v.sig = signedA, true, ainfo
	case v.responseSigned:
		v.assertion = a
	default:
		return nil, Rejectf(ReasonSignatureMissing, "neither the Response nor the Assertion is signed; the IdP must sign one of them")
	}
	return v, nil
}

// detach copies el with every namespace declaration in scope made its own,
// so its signature can be checked apart from its parent. It starts from an
// unlimited context: etreeutils' default stops at 1,000 elements, which a
// genuine assertion with many attribute values exceeds, and guardXML has
// already bounded the document.
func detach(el *etree.Element) (*etree.Element, error) {
	var chain []*etree.Element
	for p := el.Parent(); p != nil; p = p.Parent() {
		chain = append(chain, p)
	}
	ctx := etreeutils.EmptyNSContext
	for i := len(chain) - 1; i >= 0; i-- {
		var err error
		if ctx, err = ctx.SubContext(chain[i]); err != nil {
			return nil, err
		}
	}
	return etreeutils.NSDetatch(ctx, el)
}

// checkStatus maps a non-Success status to an IdP* reason. The status
// message is the IdP's own text, shown truncated.
func checkStatus(root *etree.Element) *Error {
	status := firstChild(root, nsProtocol, "Status")
	var code *etree.Element
	if status != nil {
		code = firstChild(status, nsProtocol, "StatusCode")
	}
	if code == nil {
		return Rejectf(ReasonIdPStatus, "the Response has no StatusCode")
	}
	top := code.SelectAttrValue("Value", "")
	if top == statusSuccess {
		return nil
	}
	codes := []string{top}
	if sub := firstChild(code, nsProtocol, "StatusCode"); sub != nil {
		codes = append(codes, sub.SelectAttrValue("Value", ""))
	}
	reason := ReasonIdPStatus
	for _, c := range codes {
		switch c {
		case statusPrefix + "AuthnFailed":
			reason = ReasonIdPAuthnFailed
		case statusPrefix + "RequestDenied":
			reason = ReasonIdPRequestDenied
		case statusPrefix + "NoPassive":
			reason = ReasonIdPNoPassive
		}
	}
	msg := ""
	if m := firstChild(status, nsProtocol, "StatusMessage"); m != nil {
		t, _ := textOf(m)
		msg = fmt.Sprintf(" with message %q", truncate(strings.TrimSpace(t), 200))
	}
	for i, c := range codes {
		codes[i] = truncate(strings.TrimPrefix(c, statusPrefix), 128)
	}
	return Rejectf(reason, "the IdP answered status %s%s, expected Success", strings.Join(codes, "/"), msg)
}

// children returns the direct child elements of el in namespace ns named
// tag.
func children(el *etree.Element, ns, tag string) []*etree.Element {
	var out []*etree.Element
	for _, t := range el.Child { // not ChildElements: it allocates a slice per call
		if c, ok := t.(*etree.Element); ok && c.Tag == tag && c.NamespaceURI() == ns {
			out = append(out, c)
		}
	}
	return out
}

func firstChild(el *etree.Element, ns, tag string) *etree.Element {
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok && c.Tag == tag && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}

// textOf returns all character data of el, across comments, and false if
// el has child elements. Reading only the text before a comment is how
// "admin@corp.com<!---->.evil.com" became admin@corp.com in other SAML
// libraries.
func textOf(el *etree.Element) (string, bool) {
	var b strings.Builder
	ok := true
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.CharData:
			b.WriteString(t.Data)
		case *etree.Element:
			ok = false
		}
	}
	return b.String(), ok
}
