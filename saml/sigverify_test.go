package saml

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// withGoxmldsigOnly runs fn with every signature sent to goxmldsig.
func withGoxmldsigOnly(t *testing.T, fn func()) {
	t.Helper()
	goxmldsigOnly = true
	defer func() { goxmldsigOnly = false }()
	fn()
}

// TestDirectVerifierAgreesWithGoxmldsig runs every rejection case and a
// set of genuine shapes through the direct verifier and through goxmldsig
// alone: each verdict (reason, or the identity) must be the same.
func TestDirectVerifierAgreesWithGoxmldsig(t *testing.T) {
	for _, tc := range rejections() {
		t.Run(tc.name, func(t *testing.T) {
			verdict := func() Reason {
				f := newFixture(t, tc.edit)
				_, err := f.validate(t, tc.build(t, f))
				var se *Error
				if !errors.As(err, &se) {
					t.Fatalf("error = %v, want a *saml.Error", err)
				}
				return se.Reason
			}
			direct := verdict()
			var alone Reason
			withGoxmldsigOnly(t, func() { alone = verdict() })
			if direct != alone {
				t.Errorf("direct verifier: %s, goxmldsig: %s", direct, alone)
			}
		})
	}
	for _, tc := range []struct {
		name string
		o    issue
	}{
		{"both signed", issue{}},
		{"assertion signed", issue{unsignedResponse: true}},
		{"response signed", issue{unsignedAssertion: true}},
		{"encrypted", issue{encrypt: gcmEncrypter()}},
		{"encrypted, response unsigned", issue{encrypt: gcmEncrypter(), unsignedResponse: true}},
	} {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			accept := func() *Identity {
				f := newFixture(t, nil)
				o := tc.o
				o.requestID = f.pend("id-r")
				id, err := f.validate(t, f.issue(t, o))
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			direct := accept()
			var alone *Identity
			withGoxmldsigOnly(t, func() { alone = accept() })
			direct.AssertionID, alone.AssertionID = "", ""
			if !reflect.DeepEqual(direct, alone) {
				t.Errorf("identities differ:\ndirect    %+v\ngoxmldsig %+v", direct, alone)
			}
		})
	}
}

// TestDirectVerifierIsUsed: on a plain document the direct verifier
// verifies in place (the verified envelope is the parsed tree itself);
// goxmldsig would return a new tree parsed from its canonical bytes.
func TestDirectVerifierIsUsed(t *testing.T) {
	f := newFixture(t, nil)
	raw := mustDecode(t, f.issue(t, issue{requestID: "id-r"}))
	root, plain, rerr := parseGuardedPlain(raw, f.sp.xmlLimits())
	if rerr != nil || !plain {
		t.Fatalf("parse: %v, plain %v", rerr, plain)
	}
	v, rerr := f.sp.verifySignatures(root, plain, testNow)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if v.envelope != root {
		t.Error("the Response was not verified directly")
	}
}

// TestVerifiedTreeIsCanonical: the tree later checks read is the signed
// element's canonical form, in which a NameID split by a comment or a
// CDATA section is one text node again. (textOf joins text nodes as a
// second guard; this test holds the first one, that such documents never
// take the in-place path.)
//
// The IdP signs "admin@acme.example.evil.com"; a comment or a CDATA section
// inserted after "admin@acme.example" leaves the canonical form, and so the
// signature, intact (the truncation attack on readers of the first text
// node), whichever of Response and Assertion is signed.
func TestVerifiedTreeIsCanonical(t *testing.T) {
	const signed = "admin@acme.example.evil.com"
	for _, tc := range []struct {
		to string
		o  issue
	}{
		{">admin@acme.example<!---->.evil.com<", issue{}},
		{">admin@acme.example<![CDATA[.evil.com]]><", issue{}},
		{">admin@acme.example<!---->.evil.com<", issue{unsignedResponse: true}},
		{">admin@acme.example<![CDATA[.evil.com]]><", issue{unsignedAssertion: true}},
	} {
		to := tc.to
		f := newFixture(t, nil)
		s := defaultSession()
		s.NameID = signed
		o := tc.o
		o.requestID, o.session = "id-r", s
		raw := strings.Replace(string(mustDecode(t, f.issue(t, o))), ">"+signed+"<", to, 1)
		root, plain, rerr := parseGuardedPlain([]byte(raw), f.sp.xmlLimits())
		if rerr != nil {
			t.Fatal(rerr)
		}
		v, rerr := f.sp.verifySignatures(root, plain, testNow)
		if rerr != nil {
			t.Fatal(rerr)
		}
		nameID := firstChild(firstChild(v.assertion, nsAssertion, "Subject"), nsAssertion, "NameID")
		if len(nameID.Child) != 1 || nameID.Text() != signed {
			t.Errorf("%s: NameID has %d nodes, first %q; want one, %q", to, len(nameID.Child), nameID.Text(), signed)
		}
	}
}
