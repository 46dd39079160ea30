package saml

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

// BenchmarkValidationFloor sets ValidateResponse beside the floor of any
// verifier of the same bytes (base64, one etree parse, exclusive
// canonicalization of the Assertion, SHA-256, one RSA-2048 verify of its
// SignedInfo) and beside gosaml2 and crewjam/saml, on genuine responses
// (Response and Assertion signed) with 0, 50, 500 and 2,000 Okta-style
// groups. The four run interleaved in one loop and each sample is the
// process CPU time of one validation (the garbage collector's included),
// so neither other load on the machine nor waiting for a core counts; it
// reports each one's median and the ratios
// ours/floor, gosaml2/ours and crewjam/ours (0 where that library refused
// the response).
//
//	go test ./saml -run '^$' -bench ValidationFloor -count 5
func BenchmarkValidationFloor(b *testing.B) {
	for _, groups := range []int{0, 50, 500, 2000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			f := newFixture(b, nil)
			form := f.oktaStyle(b, groups)
			if groups == 0 {
				form = f.issue(b, issue{requestID: f.pend("id-r"), session: smallSession()})
			}
			impls := []struct {
				name     string
				validate func() error
				samples  []time.Duration
				failed   error
			}{
				{name: "floor", validate: func() error { return floor(form, f.idpCert) }},
				{name: "ours", validate: func() error {
					_, err := f.sp.ValidateResponse(context.Background(), ResponseInput{SAMLResponse: form, Requests: nopStore{}, Replay: nopStore{}})
					return err
				}},
				{name: "gosaml2", validate: gosaml2Validator(f, form)},
				{name: "crewjam", validate: crewjamValidator(f, form)},
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(form)))
			for i := 0; b.Loop(); i++ {
				for k := range impls {
					im := &impls[(i+k)%len(impls)]
					if im.failed != nil {
						continue
					}
					start := processCPU(b)
					err := im.validate()
					d := processCPU(b) - start
					if err != nil {
						if im.name == "floor" || im.name == "ours" {
							b.Fatalf("%s: %v", im.name, err)
						}
						im.failed = err
						b.Logf("%s refuses the %d-group response: %.200v", im.name, groups, err)
						continue
					}
					im.samples = append(im.samples, d)
				}
			}
			med := map[string]float64{}
			for _, im := range impls {
				if len(im.samples) == 0 {
					continue
				}
				slices.Sort(im.samples)
				med[im.name] = float64(im.samples[len(im.samples)/2].Nanoseconds())
				b.ReportMetric(med[im.name]/1e3, im.name+"-µs")
			}
			b.ReportMetric(med["ours"]/med["floor"], "ours/floor")
			b.ReportMetric(med["gosaml2"]/med["ours"], "gosaml2/ours")
			b.ReportMetric(med["crewjam"]/med["ours"], "crewjam/ours")
		})
	}
}

// floor is the least work that verifies the Assertion's signature: what
// no validator of these bytes can skip.
func floor(form string, cert *x509.Certificate) error {
	raw, err := base64.StdEncoding.DecodeString(form)
	if err != nil {
		return err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return err
	}
	a := doc.Root().SelectElement("Assertion")
	if a == nil {
		return errors.New("no Assertion")
	}
	sig := a.SelectElement("Signature")
	if sig == nil {
		return errors.New("no Signature")
	}
	si := sig.SelectElement("SignedInfo")
	// Enveloped-signature transform, then exclusive c14n and the digest.
	a.RemoveChild(sig)
	c14n := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := c14n.Canonicalize(a)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(signed)
	if base64.StdEncoding.EncodeToString(digest[:]) != strings.TrimSpace(si.FindElement("./Reference/DigestValue").Text()) {
		return errors.New("digest differs")
	}
	// SignedInfo inherits ds from Signature.
	si.CreateAttr("xmlns:ds", dsig.Namespace)
	siC14N, err := c14n.Canonicalize(si)
	if err != nil {
		return err
	}
	sigValue, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sig.SelectElement("SignatureValue").Text()), ""))
	if err != nil {
		return err
	}
	h := sha256.Sum256(siC14N)
	return rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], sigValue)
}

func gosaml2Validator(f *fixture, form string) func() error {
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderIssuer:      testIdPEntityID,
		AssertionConsumerServiceURL: f.sp.ACSURL(),
		AudienceURI:                 f.sp.EntityID(),
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{f.idpCert}},
		Clock:                       dsig.NewFakeClockAt(testNow),
	}
	return func() error {
		info, err := sp.RetrieveAssertionInfo(form)
		if err == nil && (info.WarningInfo.InvalidTime || info.WarningInfo.NotInAudience) {
			err = fmt.Errorf("gosaml2 warnings: %+v", info.WarningInfo)
		}
		return err
	}
}

func crewjamValidator(f *fixture, form string) func() error {
	acs, _ := url.Parse(f.sp.ACSURL())
	sp := &crewsaml.ServiceProvider{
		EntityID: f.sp.EntityID(),
		AcsURL:   *acs,
		IDPMetadata: &crewsaml.EntityDescriptor{EntityID: testIdPEntityID, IDPSSODescriptors: []crewsaml.IDPSSODescriptor{{
			SSODescriptor: crewsaml.SSODescriptor{RoleDescriptor: crewsaml.RoleDescriptor{KeyDescriptors: []crewsaml.KeyDescriptor{{
				Use: "signing",
				KeyInfo: crewsaml.KeyInfo{X509Data: crewsaml.X509Data{X509Certificates: []crewsaml.X509Certificate{{
					Data: base64.StdEncoding.EncodeToString(f.idpCert.Raw)}}}},
			}}}}}}},
		Clock: dsig.NewFakeClockAt(testNow),
	}
	return func() error {
		raw, err := base64.StdEncoding.DecodeString(form)
		if err != nil {
			return err
		}
		_, err = sp.ParseXMLResponse(raw, []string{"id-r"}, *acs)
		var ie *crewsaml.InvalidResponseError
		if errors.As(err, &ie) {
			err = fmt.Errorf("%w: %v", err, ie.PrivateErr)
		}
		return err
	}
}
