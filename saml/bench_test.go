package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
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
	validate := gosaml2Validator(f, form)
	b.ReportAllocs()
	b.SetBytes(int64(len(form)))
	for b.Loop() {
		if err := validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// smallSession makes a response of about 5 KB: no groups, no names.
func smallSession() *crewsaml.Session {
	s := defaultSession()
	s.Groups, s.UserGivenName, s.UserSurname, s.UserCommonName = nil, "", "", ""
	return s
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
	badSig := f.tamper(b, f.issue(b, issue{requestID: f.pend("id-r"), session: smallSession()}), func(resp, a *etree.Element) {
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

// BenchmarkLegacyDecryptionTiming measures, interleaved in one run, how
// long three refusals of an AES-CBC EncryptedAssertion under an unsigned
// Response take: one that decrypts but whose signature does not verify,
// one whose padding breaks, and one whose plaintext is garbled. All three
// answer DECRYPTION_FAILED with one message; if their times differed, the
// difference would be a padding oracle. It reports each path's median and
// the ratio of the slowest median to the fastest (1.0: no tell).
//
//	go test ./saml -run '^$' -bench LegacyDecryptionTiming -count 5
func BenchmarkLegacyDecryptionTiming(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.AllowLegacyEncryption = true })
	cbc := xmlenc.OAEP()
	cbc.BlockCipher = xmlenc.AES256CBC
	genuine := f.issue(b, issue{requestID: f.pend("id-r"), unsignedResponse: true, encrypt: cbc})
	// Signed with another key but naming the pinned certificate: it
	// decrypts, and the signature check runs in full and fails.
	pinnedKey, pinnedCert := f.idp.Key, f.idp.Certificate
	f.idp.Key = respKey(b, 2)
	badSig := f.issue(b, issue{requestID: f.pend("id-r"), unsignedResponse: true, encrypt: cbc})
	f.idp.Key, f.idp.Certificate = pinnedKey, pinnedCert
	// XML Encryption puts the IV first: flipping a byte of the block before
	// the last changes the padding byte; flipping the IV garbles the first
	// plaintext block and leaves the padding intact.
	badPad := f.tamper(b, genuine, func(resp, _ *etree.Element) {
		flipCipherByte(b, resp, "EncryptedData", func(n int) int { return n - 17 })
	}, resign{})
	garbled := f.tamper(b, genuine, func(resp, _ *etree.Element) {
		flipCipherByte(b, resp, "EncryptedData", func(int) int { return 3 })
	}, resign{})
	paths := []struct {
		name, form string
		samples    []time.Duration
	}{{name: "badsig", form: badSig}, {name: "badpad", form: badPad}, {name: "garbled", form: garbled}}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for k := range paths {
			p := &paths[(i+k)%len(paths)]
			start := time.Now()
			_, err := f.sp.ValidateResponse(ctx, ResponseInput{SAMLResponse: p.form, Requests: nopStore{}, Replay: nopStore{}})
			p.samples = append(p.samples, time.Since(start))
			if se, ok := err.(*Error); !ok || se.Reason != ReasonDecryptionFailed {
				b.Fatalf("%s: got %v, want %s", p.name, err, ReasonDecryptionFailed)
			}
		}
	}
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for _, p := range paths {
		slices.Sort(p.samples)
		m := p.samples[len(p.samples)/2]
		lo, hi = min(lo, m), max(hi, m)
		b.ReportMetric(float64(m.Microseconds()), p.name+"-median-µs")
	}
	b.ReportMetric(float64(hi)/float64(lo), "slowest/fastest")
}

// BenchmarkDeflateRedirect compares the HTTP-Redirect encoding of an
// AuthnRequest (a reused writer at the fastest level) with a new
// best-compression writer per message, as it was: run both in one go test
// -bench to read the ratio. pooled-after-gc collects garbage before every
// message, as a loaded server does every few milliseconds: the reused
// writer must survive it (a sync.Pool's did not: about 3.5x the CPU and
// 600 KB allocated per message).
func BenchmarkDeflateRedirect(b *testing.B) {
	msg := []byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-0123456789abcdef0123456789abcdef01234567" Version="2.0" IssueInstant="2026-12-01T00:00:00.000Z" Destination="https://idp.example.com/sso" AssertionConsumerServiceURL="https://sso.example.com/saml/acme/acs" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>https://sso.example.com/saml/acme</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>`)
	b.Run("pooled-default", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := deflateBase64(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pooled-after-gc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			if _, err := deflateBase64(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-best", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, flate.BestCompression)
			w.Write(msg)
			w.Close()
			_ = base64.StdEncoding.EncodeToString(buf.Bytes())
		}
	})
}
