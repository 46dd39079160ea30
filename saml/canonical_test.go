package saml

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// canonicalPrefixLists are the InclusiveNamespaces lists the differential
// checks try: none, the one Okta and Entra send, and one with #default.
var canonicalPrefixLists = []string{"", "xs", "#default xsi saml2"}

// sameCanonical parses doc and, for every element of it (up to limit),
// canonicalizes one copy with goxmldsig's exclusive canonicalizer and
// another with writeCanonical, with and without comments and with each of
// canonicalPrefixLists, and reports the first difference: in the bytes,
// or one refusing what the other takes. Each copy is detached from the
// document (its in-scope namespaces declared on it), as the verifier
// detaches the Assertion, so neither canonicalization changes the tree.
func sameCanonical(doc []byte, limit int) error {
	parsed := etree.NewDocument()
	if err := parsed.ReadFromBytes(doc); err != nil || parsed.Root() == nil {
		return nil
	}
	for i, el := range elements(parsed.Root(), limit) {
		if _, err := detach(el); err != nil {
			continue // an undeclared prefix: the verifier refuses before canonicalizing
		}
		for _, prefixList := range canonicalPrefixLists {
			for _, comments := range []bool{false, true} {
				ours, _ := detach(el)
				theirs, _ := detach(el)
				c14n := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixList)
				if comments {
					c14n = dsig.MakeC14N10ExclusiveWithCommentsCanonicalizerWithPrefixList(prefixList)
				}
				want, errWant := c14n.Canonicalize(theirs)
				var got bytes.Buffer
				errGot := writeCanonical(&got, ours, prefixList, comments)
				if (errGot == nil) != (errWant == nil) {
					return fmt.Errorf("element %d <%s> (prefix list %q, comments %v): writeCanonical %v, goxmldsig %v",
						i, el.FullTag(), prefixList, comments, errGot, errWant)
				}
				if errGot == nil && !bytes.Equal(got.Bytes(), want) {
					return fmt.Errorf("element %d <%s> (prefix list %q, comments %v):\nwriteCanonical %q\ngoxmldsig      %q",
						i, el.FullTag(), prefixList, comments, got.Bytes(), want)
				}
			}
		}
	}
	return nil
}

// elements is el and its descendants, breadth first, at most limit.
func elements(el *etree.Element, limit int) []*etree.Element {
	out := []*etree.Element{el}
	for i := 0; i < len(out) && len(out) < limit; i++ {
		for _, t := range out[i].Child {
			if c, ok := t.(*etree.Element); ok && len(out) < limit {
				out = append(out, c)
			}
		}
	}
	return out
}

// canonicalEdgeCases are documents whose canonical form exercises each
// rule: namespace declarations used, unused, redeclared, undeclared
// (xmlns=""), declared only for an attribute value's QName; attribute
// order by namespace then name; escaping in text and attribute values;
// comments, CDATA, and character references.
var canonicalEdgeCases = []string{
	`<a:Root xmlns:a="urn:a" xmlns:b="urn:b" xmlns:unused="urn:u" b:z="1" y="2" a:x="3"><a:Child/><Child xmlns="urn:d"><Inner xmlns=""/></Child></a:Root>`,
	`<Root xmlns="urn:d" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><V xsi:type="xs:string">v</V></Root>`,
	`<Root xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"><saml2:A xmlns:saml2="urn:other"><saml2:B/></saml2:A></Root>`,
	"<Root a=\"&lt;&amp;&quot;&#9;&#10;&#13;'>\">&lt;&amp;&gt;&#13;\r\n text <![CDATA[<x> & ]]> <!-- note --> after</Root>",
	`<Root xml:lang="en" xmlns:p="urn:p"><p:E p:a="1" a="2" xml:space="preserve">  </p:E></Root>`,
	"<Root>&#x10FFFF;\u00e9\u4e2d</Root>",
}

// TestWriteCanonicalIsGoxmldsigs checks that writeCanonical writes
// exactly what goxmldsig's exclusive canonicalizer returns, on every
// element of signed responses (small, 50 groups, encrypted), of the
// genuine IdP captures, and of the edge cases.
func TestWriteCanonicalIsGoxmldsigs(t *testing.T) {
	f := newFixture(t, nil)
	var docs [][]byte
	for _, form := range []string{
		f.issue(t, issue{requestID: f.pend("id-c1"), session: smallSession()}),
		f.oktaStyle(t, 50),
		f.issue(t, issue{requestID: f.pend("id-c2"), encrypt: gcmEncrypter()}),
	} {
		raw, err := base64.StdEncoding.DecodeString(form)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, raw)
	}
	for _, d := range canonicalEdgeCases {
		docs = append(docs, []byte(d))
	}
	dirs := map[string]string{"crewjam": moduleDir(t, crewjamModule), "gosaml2": moduleDir(t, gosaml2Module)}
	for _, c := range captures {
		docs = append(docs, captureXML(t, dirs, c))
	}
	for i, d := range docs {
		if err := sameCanonical(d, 10000); err != nil {
			t.Errorf("document %d: %v", i, err)
		}
	}
}

// FuzzCanonical checks writeCanonical against goxmldsig's canonicalizer
// on whatever the guard and etree accept.
func FuzzCanonical(f *testing.F) {
	fx := newFixture(f, nil)
	raw, _ := base64.StdEncoding.DecodeString(fx.issue(f, issue{requestID: "id-r"}))
	f.Add(raw)
	for _, d := range canonicalEdgeCases {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if _, rerr := guardXML(doc, defaultXMLLimits); rerr != nil {
			return
		}
		if err := sameCanonical(doc, 64); err != nil {
			t.Fatal(err)
		}
	})
}
