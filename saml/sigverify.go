package saml

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"sync"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// The direct verifier checks the shape every genuine IdP signs with (one
// Reference to the signed element; the enveloped-signature transform, then
// exclusive canonicalization; exclusive canonicalization of SignedInfo;
// RSA with SHA-256, -384 or -512) with goxmldsig's canonicalizer, without
// the copies, namespace-context walks and re-parse of the canonical bytes
// that goxmldsig's Validate spends on every signature. Anything else
// (another transform, ECDSA, SHA-1, a SignedInfo InclusiveNamespaces list)
// goes to goxmldsig, which decides as before.
//
// goxmldsig returns the element parsed again from its canonical bytes so
// that nothing the canonicalization dropped can be read afterwards. The
// direct verifier canonicalizes the element in place instead, and is used
// only on a tree with no comments and no CDATA sections (the two things
// exclusive canonicalization drops or merges that etree keeps as separate
// tokens: a comment splitting a NameID is the classic truncation attack).
// On such a tree the element after in-place canonicalization reads exactly
// as a parse of the canonical bytes would.

const (
	algExcC14N         = string(dsig.CanonicalXML10ExclusiveAlgorithmId)
	algExcC14NComments = string(dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId)
	algEnveloped       = string(dsig.EnvelopedSignatureAltorithmId)
)

var (
	directSignatureMethods = map[string]x509.SignatureAlgorithm{
		dsig.RSASHA256SignatureMethod: x509.SHA256WithRSA,
		dsig.RSASHA384SignatureMethod: x509.SHA384WithRSA,
		dsig.RSASHA512SignatureMethod: x509.SHA512WithRSA,
	}
	directDigests = map[string]crypto.Hash{
		"http://www.w3.org/2001/04/xmlenc#sha256":       crypto.SHA256,
		"http://www.w3.org/2001/04/xmldsig-more#sha384": crypto.SHA384,
		"http://www.w3.org/2001/04/xmlenc#sha512":       crypto.SHA512,
	}
	errDigestMismatch = errors.New("the digest of the signed element does not match its Reference DigestValue")
)

// directSignature is what the direct verifier needs of one Signature, read
// from its tree before anything is changed.
type directSignature struct {
	signedInfo  *etree.Element
	method      x509.SignatureAlgorithm
	digest      crypto.Hash
	digestValue []byte
	value       []byte
	prefixList  string
	comments    bool
}

// directShape reports whether sig has the shape the direct verifier
// handles, and what it needs; ok is false for anything else, which then
// goes to goxmldsig. The Reference to el's own ID was checked by
// envelopedSignature.
func directShape(sig *etree.Element) (directSignature, bool) {
	var d directSignature
	counts := map[string]int{}
	for _, t := range sig.Child {
		if c, ok := t.(*etree.Element); ok {
			counts[c.Tag]++
		}
	}
	// goxmldsig's validateShape, by tag whatever the namespace.
	if counts["SignedInfo"] != 1 || counts["KeyInfo"] > 1 || counts["SignatureValue"] != 1 {
		return d, false
	}
	si := firstChild(sig, dsig.Namespace, "SignedInfo")
	sv := firstChild(sig, dsig.Namespace, "SignatureValue")
	if si == nil || sv == nil {
		return d, false
	}
	cm := onlyChild(si, "CanonicalizationMethod")
	sm := onlyChild(si, "SignatureMethod")
	ref := onlyChild(si, "Reference")
	if cm == nil || sm == nil || ref == nil || len(cm.ChildElements()) != 0 {
		return d, false
	}
	if a := cm.SelectAttrValue("Algorithm", ""); a != algExcC14N && a != algExcC14NComments {
		return d, false
	}
	var ok bool
	if d.method, ok = directSignatureMethods[sm.SelectAttrValue("Algorithm", "")]; !ok {
		return d, false
	}
	transforms := onlyChild(ref, "Transforms")
	dm := onlyChild(ref, "DigestMethod")
	dv := onlyChild(ref, "DigestValue")
	if transforms == nil || dm == nil || dv == nil {
		return d, false
	}
	if d.digest, ok = directDigests[dm.SelectAttrValue("Algorithm", "")]; !ok {
		return d, false
	}
	ts := transforms.ChildElements()
	if len(ts) != 2 || ts[0].Space != transforms.Space || ts[0].Tag != "Transform" || ts[1].Space != transforms.Space || ts[1].Tag != "Transform" ||
		ts[0].SelectAttrValue("Algorithm", "") != algEnveloped || len(ts[0].ChildElements()) != 0 {
		return d, false
	}
	switch ts[1].SelectAttrValue("Algorithm", "") {
	case algExcC14N:
	case algExcC14NComments:
		d.comments = true
	default:
		return d, false
	}
	switch inc := ts[1].ChildElements(); {
	case len(inc) == 0:
	case len(inc) == 1 && inc[0].Tag == "InclusiveNamespaces" && inc[0].NamespaceURI() == algExcC14N && len(inc[0].ChildElements()) == 0:
		d.prefixList = inc[0].SelectAttrValue("PrefixList", "")
	default:
		return d, false
	}
	// Decoded as goxmldsig decodes them (all the text, base64 that
	// tolerates only line breaks), so that both verifiers read one value.
	dvText, ok1 := textOf(dv)
	svText, ok2 := textOf(sv)
	var err1, err2 error
	d.digestValue, err1 = base64.StdEncoding.DecodeString(dvText)
	d.value, err2 = base64.StdEncoding.DecodeString(svText)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return d, false
	}
	d.signedInfo = si
	return d, true
}

// onlyChild is el's one child element in the XML Signature namespace named
// local, or nil when there is none or more than one.
func onlyChild(el *etree.Element, local string) *etree.Element {
	cs := children(el, dsig.Namespace, local)
	if len(cs) != 1 {
		return nil
	}
	return cs[0]
}

// verifyDirect verifies el's enveloped signature sig (of the shape
// directShape accepted) with each candidate certificate in turn. It
// changes el in place into its canonical form without sig, which is the
// signed element later checks read; on a failure el is spoiled and must
// not be used.
func verifyDirect(el, sig *etree.Element, d directSignature, candidates []*x509.Certificate) (*x509.Certificate, error) {
	// SignedInfo first, in its own namespace context, before el changes.
	detachedSI, err := detach(d.signedInfo)
	if err != nil {
		return nil, err
	}
	signedInfo, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(detachedSI)
	if err != nil {
		return nil, err
	}
	el.RemoveChild(sig)
	h := d.digest.New()
	if err := writeCanonical(h, el, d.prefixList, d.comments); err != nil {
		return nil, err
	}
	if !bytes.Equal(h.Sum(nil), d.digestValue) {
		return nil, errDigestMismatch
	}
	var lastErr error
	for _, cert := range candidates {
		if lastErr = cert.CheckSignature(d.method, signedInfo, d.value); lastErr == nil {
			return cert, nil
		}
	}
	return nil, lastErr
}

// canonicalSettings are the settings goxmldsig serialises a canonicalized
// element with.
var canonicalSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalEndTags: true, CanonicalText: true}

// canonicalWriters buffer writeCanonical's output on its way to the hash.
var canonicalWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// writeCanonical writes el's exclusive canonical form to w: goxmldsig's
// transform, in place, as its exclusive canonicalizer's Canonicalize
// does, and then the same serialisation with the same settings, but
// straight from el into w, without the copy of the tree and the byte
// slice that Canonicalize builds (a third of a validation's allocations
// on a large assertion). The output is Canonicalize's, byte for byte:
// TestWriteCanonicalIsGoxmldsigs and FuzzCanonical check it.
func writeCanonical(w io.Writer, el *etree.Element, prefixList string, comments bool) error {
	if err := etreeutils.TransformExcC14n(el, prefixList, comments); err != nil {
		return err
	}
	bw := canonicalWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	el.WriteTo(bw, &canonicalSettings)
	err := bw.Flush()
	bw.Reset(nil) // no reference to w kept in the pool
	canonicalWriters.Put(bw)
	return err
}

// plainTree reports whether the tree under el holds no comments and no
// CDATA sections, the condition under which verifyDirect's in-place
// canonical form reads as goxmldsig's re-parsed one.
func plainTree(el *etree.Element) bool {
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Comment: // (guardXML refuses processing instructions and DTDs)
			return false
		case *etree.CharData:
			if t.IsCData() {
				return false
			}
		case *etree.Element:
			if !plainTree(t) {
				return false
			}
		}
	}
	return true
}
