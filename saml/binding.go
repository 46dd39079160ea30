package saml

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// The two front-channel bindings ssogate speaks.
const (
	BindingHTTPRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	BindingHTTPPost     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
)

// XML namespaces of the messages built and read here.
const (
	nsSAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsSAML  = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsMD    = "urn:oasis:names:tc:SAML:2.0:metadata"
	nsDS    = "http://www.w3.org/2000/09/xmldsig#"
)

// Query-string and XML signature algorithms (XML Signature and RFC 4051).
const (
	algRSASHA1     = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	algRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algRSASHA384   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	algRSASHA512   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	algECDSASHA1   = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
	algECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	algECDSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	algECDSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
)

// maxRelayStateBytes is the bound saml-bindings §3.4.3 and §3.5.3 put on
// RelayState.
const maxRelayStateBytes = 80

type sigAlg struct {
	hash crypto.Hash
	key  x509.PublicKeyAlgorithm
	sha1 bool
}

var querySigAlgs = map[string]sigAlg{
	algRSASHA1:     {crypto.SHA1, x509.RSA, true},
	algRSASHA256:   {crypto.SHA256, x509.RSA, false},
	algRSASHA384:   {crypto.SHA384, x509.RSA, false},
	algRSASHA512:   {crypto.SHA512, x509.RSA, false},
	algECDSASHA1:   {crypto.SHA1, x509.ECDSA, true},
	algECDSASHA256: {crypto.SHA256, x509.ECDSA, false},
	algECDSASHA384: {crypto.SHA384, x509.ECDSA, false},
	algECDSASHA512: {crypto.SHA512, x509.ECDSA, false},
}

// parseXML reads untrusted XML into an etree element after checking its
// size (at most limit bytes) and shape with guardXML (no DTD, entity
// declaration or processing instruction, one root, UTF-8, bounded depth,
// element, attribute and namespace declaration counts, unique attribute
// names), and that encoding/xml reads it faithfully.
func parseXML(data []byte, limit int, lim xmlLimits) (*etree.Element, error) {
	if len(data) > limit {
		return nil, Rejectf(ReasonBodyTooLarge, "the XML is %d bytes, more than the %d allowed", len(data), limit)
	}
	if _, rerr := guardXML(data, lim); rerr != nil {
		return nil, rerr
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, &Error{Reason: ReasonMalformedXML, Message: "the XML is not well-formed: " + truncate(err.Error(), 200), Err: err}
	}
	root := doc.Root()
	if root == nil {
		return nil, Rejectf(ReasonMalformedXML, "the XML has no root element")
	}
	return root, nil
}

// newMessageID returns "id-" and 160 random bits in hex: an xs:ID (it starts
// with a letter) that cannot be guessed.
func newMessageID(r io.Reader) (string, error) {
	var b [20]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("read random message id: %w", err)
	}
	return "id-" + hex.EncodeToString(b[:]), nil
}

// samlTime formats t as SAML's xs:dateTime, in UTC.
func samlTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// deflaters keeps idle DEFLATE writers for reuse: allocating one costs
// more than compressing an AuthnRequest (a flate.Writer is several hundred
// KB of tables). A sync.Pool would do, but it is emptied by every GC cycle,
// and under load a server collects every few milliseconds, so most calls
// would allocate anyway; this list survives GC and keeps at most
// maxIdleDeflaters writers.
var deflaters = make(chan *flate.Writer, maxIdleDeflaters)

const maxIdleDeflaters = 8

func getDeflater(dst io.Writer) *flate.Writer {
	select {
	case w := <-deflaters:
		w.Reset(dst)
		return w
	default:
		w, _ := flate.NewWriter(dst, flate.BestSpeed) // error only for a bad level
		return w
	}
}

func putDeflater(w *flate.Writer) {
	select {
	case deflaters <- w:
	default:
	}
}

// deflateBase64 is the HTTP-Redirect message encoding (saml-bindings
// §3.4.4.1): raw DEFLATE, then base64. The fastest level: on an
// AuthnRequest it costs half the CPU of the default level (its writer's
// Reset clears smaller tables) for about 4% more bytes (377 against 363),
// and the best level costs several times more again.
func deflateBase64(data []byte) (string, error) {
	var buf bytes.Buffer
	w := getDeflater(&buf)
	defer putDeflater(w)
	if _, err := w.Write(data); err != nil {
		return "", fmt.Errorf("deflate: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("deflate: %w", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// inflateBounded undoes deflateBase64's DEFLATE, refusing output beyond
// limit bytes (a deflate bomb costs nothing to send).
func inflateBounded(data []byte, limit int) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(data))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, &Error{Reason: ReasonMalformedEncoding, Message: "the message is not valid DEFLATE data: " + err.Error(), Err: err}
	}
	if len(out) > limit {
		return nil, Rejectf(ReasonBodyTooLarge, "the inflated message is more than the %d bytes allowed", limit)
	}
	return out, nil
}

// decodeBase64Strict decodes standard base64, tolerating the line breaks
// some IdPs insert, and nothing else.
func decodeBase64Strict(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, &Error{Reason: ReasonMalformedEncoding, Message: "the message is not valid base64: " + err.Error(), Err: err}
	}
	return b, nil
}

// querySigAlg is the SigAlg for signing with key: RSA-SHA256 or
// ECDSA-SHA256.
func querySigAlg(key crypto.Signer) (string, error) {
	switch key.Public().(type) {
	case *rsa.PublicKey:
		return algRSASHA256, nil
	case *ecdsa.PublicKey:
		return algECDSASHA256, nil
	default:
		return "", fmt.Errorf("signing key type %T is not supported; use RSA or ECDSA", key.Public())
	}
}

// signQuery signs the exact octets of a redirect-binding query and returns
// the signature, base64 encoded. ECDSA signatures are ASN.1 DER, as Java
// (OpenSAML, Keycloak) and crewjam/saml produce and expect them.
func signQuery(key crypto.Signer, rnd io.Reader, signed string) (string, error) {
	h := sha256.Sum256([]byte(signed))
	sig, err := key.Sign(rnd, h[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign redirect query: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// redirectURL builds an HTTP-Redirect binding URL to dest carrying the
// message xmlBytes in param. When key is set, the query is signed per
// saml-bindings §3.4.4.1: the signature covers the octets
// "param=v&RelayState=v&SigAlg=v" exactly as they appear in the URL.
func redirectURL(dest, param string, xmlBytes []byte, relayState string, key crypto.Signer, rnd io.Reader) (string, error) {
	msg, err := deflateBase64(xmlBytes)
	if err != nil {
		return "", err
	}
	q := param + "=" + url.QueryEscape(msg)
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if key != nil {
		alg, err := querySigAlg(key)
		if err != nil {
			return "", err
		}
		q += "&SigAlg=" + url.QueryEscape(alg)
		sig, err := signQuery(key, rnd, q)
		if err != nil {
			return "", err
		}
		q += "&Signature=" + url.QueryEscape(sig)
	}
	sep := "?"
	if strings.Contains(dest, "?") {
		sep = "&"
	}
	return dest + sep + q, nil
}

// redirectQuery is a received HTTP-Redirect binding query: decoded values,
// and the raw octets the signature covers.
type redirectQuery struct {
	message    string // base64 DEFLATE message, decoded from the URL
	relayState string
	sigAlg     string
	signature  string
	signed     string // "param=raw&RelayState=raw&SigAlg=raw", as received
}

// parseRedirectQuery splits rawQuery (r.URL.RawQuery, untouched) into the
// binding's parameters. Each may appear at most once; other parameters are
// ignored, as the binding allows.
func parseRedirectQuery(rawQuery, param string) (*redirectQuery, error) {
	raw := map[string]string{}
	for _, pair := range strings.Split(rawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, &Error{Reason: ReasonMalformedEncoding, Message: "the query string is not valid URL encoding", Err: err}
		}
		switch key {
		case param, "RelayState", "SigAlg", "Signature":
		default:
			continue
		}
		if _, dup := raw[key]; dup {
			return nil, Rejectf(ReasonMalformedEncoding, "the query string has %s more than once", key)
		}
		raw[key] = v
	}
	if _, ok := raw[param]; !ok {
		return nil, Rejectf(ReasonMalformedEncoding, "the query string has no %s parameter", param)
	}
	q := &redirectQuery{}
	fields := []struct {
		name string
		dst  *string
	}{{param, &q.message}, {"RelayState", &q.relayState}, {"SigAlg", &q.sigAlg}, {"Signature", &q.signature}}
	for _, f := range fields {
		v, err := url.QueryUnescape(raw[f.name])
		if err != nil {
			return nil, &Error{Reason: ReasonMalformedEncoding, Message: f.name + " is not valid URL encoding", Err: err}
		}
		*f.dst = v
	}
	q.signed = param + "=" + raw[param]
	if rs, ok := raw["RelayState"]; ok {
		q.signed += "&RelayState=" + rs
	}
	if sa, ok := raw["SigAlg"]; ok {
		q.signed += "&SigAlg=" + sa
	}
	return q, nil
}

// checkSigAlg refuses unknown algorithms and, unless allowed, SHA-1.
func checkSigAlg(alg string, allowSHA1 bool) (sigAlg, error) {
	a, ok := querySigAlgs[alg]
	if !ok {
		return sigAlg{}, Rejectf(ReasonAlgorithmNotAllowed, "signature algorithm %q is not supported; use RSA or ECDSA with SHA-256", alg)
	}
	if a.sha1 && !allowSHA1 {
		return sigAlg{}, Rejectf(ReasonAlgorithmNotAllowed, "signature algorithm %s uses SHA-1, which this connection does not allow; configure the IdP to sign with SHA-256", alg)
	}
	return a, nil
}

// verifyQuery checks a redirect-binding query signature against the pinned
// IdP certificates valid at now, the same policy ValidateResponse applies.
func (sp *ServiceProvider) verifyQuery(q *redirectQuery, what string, now time.Time) error {
	if q.sigAlg == "" || q.signature == "" {
		return Rejectf(ReasonSignatureMissing, "the %s has no SigAlg and Signature query parameters; the IdP must sign it", what)
	}
	alg, err := checkSigAlg(q.sigAlg, sp.cfg.AllowSHA1)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(q.signature)
	if err != nil {
		return &Error{Reason: ReasonMalformedEncoding, Message: "the Signature query parameter is not valid base64", Err: err}
	}
	certs, rerr := sp.validPinnedCerts(what, now)
	if rerr != nil {
		return rerr
	}
	h := alg.hash.New()
	h.Write([]byte(q.signed))
	digest := h.Sum(nil)
	for _, c := range certs {
		if verifyDigest(c.PublicKey, alg.hash, digest, sig) {
			return nil
		}
	}
	return Rejectf(ReasonSignatureInvalid, "the %s query signature does not verify with the pinned certificate%s %s; if the IdP rotated its certificate, refresh the connection's metadata",
		what, plural(len(certs)), describeCerts(certs))
}

// validPinnedCerts returns the pinned IdP certificates valid at now.
func (sp *ServiceProvider) validPinnedCerts(what string, now time.Time) ([]*x509.Certificate, *Error) {
	pinned := sp.cfg.IdP.Certificates
	if len(pinned) == 0 {
		return nil, Rejectf(ReasonCertificateNotTrusted, "connection %q has no pinned IdP signing certificate; import the IdP metadata", sp.cfg.ConnectionID)
	}
	var valid []*x509.Certificate
	for _, c := range pinned {
		if !now.Before(c.NotBefore) && !now.After(c.NotAfter) {
			valid = append(valid, c)
		}
	}
	if len(valid) == 0 {
		return nil, Rejectf(ReasonCertificateNotTrusted, "no pinned certificate that could verify the %s is valid now (%s): %s",
			what, now.UTC().Format(time.RFC3339), describeCertsValidity(pinned))
	}
	return valid, nil
}

// verifyDigest checks sig over digest with pub. ECDSA signatures are
// accepted as ASN.1 DER or as the r||s concatenation of RFC 4051.
func verifyDigest(pub any, hash crypto.Hash, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest, sig) {
			return true
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// rawECDSASigner makes a crypto.Signer produce the r||s ECDSA signature
// value XML Signature requires (RFC 4051 §3.3.1) instead of ASN.1 DER.
type rawECDSASigner struct{ crypto.Signer }

func (s rawECDSASigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	der, err := s.Signer.Sign(r, digest, opts)
	if err != nil {
		return nil, err
	}
	size := (s.Public().(*ecdsa.PublicKey).Curve.Params().BitSize + 7) / 8
	return derToRaw(der, size)
}

func derToRaw(der []byte, size int) ([]byte, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	r, s := new(big.Int), new(big.Int)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(s) {
		return nil, errors.New("malformed ECDSA signature")
	}
	rb, sb := r.Bytes(), s.Bytes()
	if len(rb) > size || len(sb) > size {
		return nil, errors.New("ECDSA signature larger than the curve")
	}
	out := make([]byte, 2*size)
	copy(out[size-len(rb):size], rb)
	copy(out[2*size-len(sb):], sb)
	return out, nil
}

func rawToDER(raw []byte) []byte {
	half := len(raw) / 2
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[:half]))
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[half:]))
	})
	return b.BytesOrPanic()
}

// signEnveloped signs el (which must have an ID and an Issuer first child)
// with an enveloped XML signature placed after the Issuer, as the SAML
// schema orders it. Exclusive C14N and SHA-256 throughout.
func signEnveloped(el *etree.Element, key crypto.Signer, cert *x509.Certificate) (*etree.Element, error) {
	signer := key
	if _, ok := key.Public().(*ecdsa.PublicKey); ok {
		signer = rawECDSASigner{key}
	}
	var chain [][]byte
	if cert != nil {
		chain = [][]byte{cert.Raw}
	}
	ctx, err := dsig.NewSigningContext(signer, chain)
	if err != nil {
		return nil, fmt.Errorf("xml signing context: %w", err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		return nil, fmt.Errorf("xml signature: %w", err)
	}
	if cert == nil {
		if ki := sig.FindElement("./KeyInfo"); ki != nil {
			sig.RemoveChild(ki)
		}
	}
	out := el.Copy()
	children := make([]etree.Token, 0, len(out.Child)+1)
	inserted := false
	for _, c := range out.Child {
		children = append(children, c)
		if e, ok := c.(*etree.Element); ok && !inserted && e.Tag == "Issuer" {
			children = append(children, sig)
			inserted = true
		}
	}
	if !inserted {
		return nil, errors.New("xml signature: the element has no Issuer to place the signature after")
	}
	out.Child = children
	return out, nil
}

// verifySignedXML checks the enveloped signature of root with the pinned
// IdP certificates and returns the element as the signature covers it;
// callers read values from that element only. Algorithm, reference and
// certificate policy are ValidateResponse's (checkSignatureAlgorithms,
// verifyEnveloped), but a signature is required.
func (sp *ServiceProvider) verifySignedXML(root *etree.Element, now time.Time) (*etree.Element, error) {
	what := root.Tag
	sigs := directChildren(root, nsDS, "Signature")
	if len(sigs) == 0 {
		return nil, Rejectf(ReasonSignatureMissing, "the %s is not signed; the IdP must sign it", what)
	}
	for _, sig := range sigs {
		if rerr := checkSignatureAlgorithms(sig, sp.cfg.AllowSHA1); rerr != nil {
			return nil, rerr
		}
	}
	if _, rerr := sp.validPinnedCerts(what, now); rerr != nil {
		return nil, rerr
	}
	verified, _, rerr := sp.verifyEnveloped(root, what, false, now)
	if rerr != nil {
		return nil, rerr
	}
	return verified, nil
}

// directChildren returns the child elements of el in namespace ns with the
// local name tag.
func directChildren(el *etree.Element, ns, tag string) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			out = append(out, c)
		}
	}
	return out
}

// outbound is one message ready for the browser in both bindings.
type outbound struct {
	param      string // SAMLRequest or SAMLResponse
	relayState string
	postURL    string
	postXML    []byte // with its enveloped signature when signing
}

// PostFormScriptHash is the CSP source expression of the one inline script
// in PostForm pages, for a policy such as
// "script-src 'sha256-…'; form-action https:". Without script the page
// still works: its submit button stays visible.
var PostFormScriptHash = func() string {
	sum := sha256.Sum256([]byte(postFormScript))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

const postFormScript = `document.forms[0].submit();`

var postFormTemplate = template.Must(template.New("post").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Continue to sign in</title></head>
<body><form method="post" action="{{.URL}}">
<input type="hidden" name="{{.Param}}" value="{{.Message}}">
{{- if .RelayState}}
<input type="hidden" name="RelayState" value="{{.RelayState}}">
{{- end}}
<noscript><p>JavaScript is off: press Continue.</p></noscript>
<button type="submit">Continue</button>
</form>
<script>{{.Script}}</script>
</body></html>
`))

// form renders the HTTP-POST binding page.
func (o *outbound) form() ([]byte, error) {
	if o.postURL == "" {
		return nil, errors.New("the IdP has no endpoint for the HTTP-POST binding")
	}
	var buf bytes.Buffer
	err := postFormTemplate.Execute(&buf, map[string]any{
		"URL":        o.postURL,
		"Param":      o.param,
		"Message":    base64.StdEncoding.EncodeToString(o.postXML),
		"RelayState": o.relayState,
		"Script":     template.JS(postFormScript),
	})
	if err != nil {
		return nil, fmt.Errorf("render post form: %w", err)
	}
	return buf.Bytes(), nil
}

// checkRelayState enforces the bindings' 80-byte RelayState bound.
func checkRelayState(rs string) error {
	if len(rs) > maxRelayStateBytes {
		return fmt.Errorf("RelayState is %d bytes; the SAML bindings allow at most %d", len(rs), maxRelayStateBytes)
	}
	return nil
}

// serialize writes el as a standalone XML document.
func serialize(el *etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	doc.WriteSettings.CanonicalEndTags = true
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("serialize %s: %w", el.Tag, err)
	}
	return b, nil
}
