package saml

import (
	"context"
	"crypto/x509"
	"github.com/beevik/etree"
	"testing"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

// Run both in one invocation and compare:
//
//	go test ./saml -run '^$' -bench 'ValidateResponse|Gosaml2Bare' -count 5
//
// BenchmarkGosaml2Bare is gosaml2's own RetrieveAssertionInfo on the same
// bytes: the baseline that ValidateResponse's extra checks are measured
// against.

type nopStore struct{}

func (nopStore) ConsumeRequest(context.Context, string, string) error { return nil }
func (nopStore) RecordAssertion(context.Context, string, string, time.Time) error {
	return nil
}

func benchResponse(b *testing.B) (*fixture, string) {
	b.Helper()
	f := newFixture(b, nil)
	return f, f.issue(b, issue{requestID: "id-bench"})
}

func BenchmarkValidateResponse(b *testing.B) {
	f, form := benchResponse(b)
	in := ResponseInput{SAMLResponse: form, Requests: nopStore{}, Replay: nopStore{}}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(form)))
	for b.Loop() {
		if _, err := f.sp.ValidateResponse(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGosaml2Bare(b *testing.B) {
	f, form := benchResponse(b)
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderIssuer:      testIdPEntityID,
		AssertionConsumerServiceURL: f.sp.ACSURL(),
		AudienceURI:                 f.sp.EntityID(),
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{f.idpCert}},
		Clock:                       dsig.NewFakeClockAt(testNow),
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(form)))
	for b.Loop() {
		info, err := sp.RetrieveAssertionInfo(form)
		if err != nil {
			b.Fatal(err)
		}
		if info.WarningInfo.InvalidTime || info.WarningInfo.NotInAudience {
			b.Fatalf("gosaml2 warnings: %+v", info.WarningInfo)
		}
	}
}

// BenchmarkRefusalCost times, interleaved in one run, the refusal of a
// flood of small elements (inside the byte, depth and namespace bounds)
// against the refusal of a 5 KB response whose signed NameID was changed,
// and reports their ratio (flood/bad-signature): the element bound is
// checked while the input is scanned, so the flood must cost no more than
// about what any forged response costs.
//
//	go test ./saml -run '^$' -bench RefusalCost -count 5
func BenchmarkRefusalCost(b *testing.B) {
	f := newFixture(b, nil)
	small := defaultSession()
	small.Groups, small.UserGivenName, small.UserSurname, small.UserCommonName = nil, "", "", ""
	badSig := f.tamper(b, f.issue(b, issue{requestID: f.pend("id-r"), session: small}), func(resp, a *etree.Element) {
		setNameID(a, "mallory@acme.example")
	}, resign{})
	flood := b64(smallElementFlood(40000))
	if len(flood) > DefaultMaxBodyBytes {
		b.Fatalf("flood is %d bytes, over the body limit", len(flood))
	}
	b.Logf("bad signature: %d bytes of XML; flood: %d bytes of base64", len(mustDecode(b, badSig)), len(flood))
	ctx := context.Background()
	refuse := func(form string, want Reason) time.Duration {
		start := time.Now()
		_, err := f.sp.ValidateResponse(ctx, ResponseInput{SAMLResponse: form, Requests: nopStore{}, Replay: nopStore{}})
		d := time.Since(start)
		if se, ok := err.(*Error); !ok || se.Reason != want {
			b.Fatalf("got %v, want %s", err, want)
		}
		return d
	}
	var tFlood, tSig time.Duration
	b.ReportAllocs()
	for b.Loop() {
		tFlood += refuse(flood, ReasonXMLTooComplex)
		tSig += refuse(badSig, ReasonSignatureInvalid)
	}
	b.ReportMetric(float64(tFlood.Nanoseconds())/float64(b.N), "flood-ns/op")
	b.ReportMetric(float64(tSig.Nanoseconds())/float64(b.N), "badsig-ns/op")
	b.ReportMetric(float64(tFlood)/float64(tSig), "flood/badsig")
}
