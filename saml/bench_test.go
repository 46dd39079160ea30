package saml

import (
	"context"
	"crypto/x509"
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
