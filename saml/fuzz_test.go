package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"reflect"
	"testing"
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
// identity that differs is a signature bypass.
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
