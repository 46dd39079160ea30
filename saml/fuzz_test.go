package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"reflect"
	"testing"

	"github.com/beevik/etree"
	rtvalidator "github.com/mattermost/xml-roundtrip-validator"
)

// FuzzValidateResponse feeds mutated Response XML (base64-encoded, as the
// form carries it) to ValidateResponse. Seeds are genuine crewjam responses
// signed with this run's IdP key, plus the committed corpus in
// testdata/fuzz/FuzzValidateResponse (real shapes whose signatures no
// longer verify, and hostile ones).
//
// Properties: no panic; every rejection is an *Error with a known Reason
// and a message; and anything accepted asserts exactly what the IdP signed
// for every seed (the same user and attributes, a request ID a seed
// named), since no mutation can produce a new valid signature. An accepted
// identity that differs is a signature bypass. Each input also goes
// through goxmldsig alone (goxmldsigOnly), which must reach the same
// verdict as the direct verifier.
//
//	go test ./saml -run '^$' -fuzz FuzzValidateResponse -fuzztime 60s -fuzzminimizetime 3s
//
// Keep -fuzzminimizetime short: minimizing a 10 KB response for the
// default 60 s stalls the run.
func FuzzValidateResponse(f *testing.F) {
	fx := newFixture(f, func(c *Config) { c.AllowIdPInitiated = true; c.AllowLegacyEncryption = true })
	var want *Identity
	for _, o := range []issue{
		{requestID: "id-r"},
		{requestID: "id-r", unsignedResponse: true},
		{requestID: "id-r", unsignedAssertion: true},
		{requestID: "id-r", encrypt: gcmEncrypter()},
		{},
	} {
		form := fx.issue(f, o)
		id, err := fx.sp.ValidateResponse(context.Background(), ResponseInput{SAMLResponse: form, Requests: nopStore{}, Replay: nopStore{}})
		if err != nil {
			f.Fatal(err)
		}
		want = id
		raw, _ := base64.StdEncoding.DecodeString(form)
		f.Add(raw)
	}
	known := map[Reason]bool{}
	for _, r := range Reasons {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, xml []byte) {
		in := ResponseInput{SAMLResponse: base64.StdEncoding.EncodeToString(xml), Requests: nopStore{}, Replay: nopStore{}}
		id, err := fx.sp.ValidateResponse(context.Background(), in)
		// The direct verifier and goxmldsig must reach the same verdict.
		goxmldsigOnly = true
		idAlone, errAlone := fx.sp.ValidateResponse(context.Background(), in)
		goxmldsigOnly = false
		if reason, alone := reasonOf(err), reasonOf(errAlone); reason != alone || (id == nil) != (idAlone == nil) {
			t.Fatalf("direct verifier: %v (%v); goxmldsig alone: %v (%v)", reason, err, alone, errAlone)
		}
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || !known[se.Reason] || se.Message == "" {
				t.Fatalf("rejection %v is not a *saml.Error with a known reason and a message", err)
			}
			return
		}
		if id.NameID != want.NameID || id.Issuer != want.Issuer || id.SessionIndex != want.SessionIndex ||
			(id.InResponseTo != "" && id.InResponseTo != "id-r") || !reflect.DeepEqual(id.Attributes, want.Attributes) {
			t.Fatalf("accepted identity differs from what was signed:\n got %+v\nwant %+v", id, want)
		}
	})
}

// FuzzGuardRoundTrip checks that guardXML keeps the round-trip property
// ValidateResponse relies on: whatever it and etree both accept,
// mattermost's xml-roundtrip-validator (a second, token-by-token
// encoding/xml round trip, which gosaml2 runs) accepts too. Seeds are the
// validator's own attack cases and genuine responses.
//
//	go test ./saml -run '^$' -fuzz FuzzGuardRoundTrip -fuzztime 60s
func FuzzGuardRoundTrip(f *testing.F) {
	fx := newFixture(f, nil)
	for _, o := range []issue{{requestID: "id-r"}, {requestID: "id-r", encrypt: gcmEncrypter()}} {
		raw, _ := base64.StdEncoding.DecodeString(fx.issue(f, o))
		f.Add(raw)
	}
	for _, doc := range []string{
		`<x::Root/>`, `<Root><x::Element></::Element></Root>`, `<Root><Element ::attr="foo"></Element></Root>`,
		`<Root></x::Element></Root>`, `<x:>`, `</x:>`, `<Root :="value"/>`, `<Root x:="value"/>`,
		`<Root xmlns="x" xmlns:="y"></Root>`, `<Root><! <<!-- -->!-- x --> y></Root>`,
		`<x:Root xmlns="http://example.com/1" x:attr="y" x:attr2="z"/>`,
		`<x:Root xmlns:x="http://example.com/"><Element xmlns:x="http://example.com/"/></x:Root>`,
		`<?xml version="1.0" encoding="UTF-8"?><Root>text &quot;hello&quot;<![CDATA[x]]><!-- c --></Root>`,
		"<a xml:lang='en' b='\t\r\n'>\r\n&#x10FFFF;</a>",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if _, rerr := guardXML(doc, defaultXMLLimits); rerr != nil {
			return
		}
		if err := etree.NewDocument().ReadFromBytes(doc); err != nil {
			return
		}
		if err := rtvalidator.Validate(bytes.NewReader(doc)); err != nil {
			t.Fatalf("guardXML and etree accept %q, which does not survive encoding/xml's round trip: %v", doc, err)
		}
	})
}

// reasonOf is err's reason, "" for nil or an error that is not a *saml.Error.
func reasonOf(err error) Reason {
	var se *Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}
