package saml

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// During an encryption key rotation the SP has two keys: the current one
// (DecryptionKey, key 1) and the next one (DecryptionKeys, key 2).
func rotatingFixture(t testing.TB, edit func(*Config)) (f *fixture, next *x509.Certificate) {
	t.Helper()
	next = selfSignedCert(t, respKey(t, 2))
	f = newFixture(t, func(c *Config) {
		c.DecryptionKeys = []DecryptionKey{{Key: respKey(nil, 2), Cert: next}}
		c.NextEncryptionCert = next
		if edit != nil {
			edit(c)
		}
	})
	return f, next
}

var encryptToCalls atomic.Int64

// encryptTo has the crewjam IdP encrypt to cert, as an IdP that read
// metadata naming only that certificate would.
func (f *fixture) encryptTo(t testing.TB, cert *x509.Certificate, enc xmlenc.Encrypter, unsignedResponse bool) string {
	t.Helper()
	f.spMD = f.spMetadata(true)
	f.spMD.SPSSODescriptors[0].KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data = base64.StdEncoding.EncodeToString(cert.Raw)
	defer func() { f.spMD = nil }()
	return f.issue(t, issue{requestID: f.pend(fmt.Sprintf("id-r-%d", encryptToCalls.Add(1))), encrypt: enc, unsignedResponse: unsignedResponse})
}

func TestDecryptsWithEitherKeyDuringRotation(t *testing.T) {
	f, next := rotatingFixture(t, nil)
	for name, cert := range map[string]*x509.Certificate{"current": f.encCert, "next": next} {
		id, err := f.validate(t, f.encryptTo(t, cert, gcmEncrypter(), false))
		if err != nil {
			t.Fatalf("encrypted to the %s key: %v", name, err)
		}
		if !id.Diagnostics.Encrypted || id.NameID != "alice@acme.example" {
			t.Errorf("encrypted to the %s key: %+v", name, id)
		}
	}
	_, err := f.validate(t, f.encryptTo(t, f.idpCert, gcmEncrypter(), false))
	wantReason(t, err, ReasonDecryptionFailed)
}

// stripKeyInfo removes the certificate hint from the EncryptedKey (outside
// the Assertion's signature: the Response is unsigned).
func stripKeyInfo(t testing.TB, samlResponse string) string {
	t.Helper()
	doc := parseB64(t, samlResponse)
	ek := doc.FindElement("//EncryptedKey")
	if ek == nil {
		t.Fatal("no EncryptedKey")
	}
	ki := firstChild(ek, dsig.Namespace, "KeyInfo")
	if ki == nil {
		t.Fatal("crewjam's EncryptedKey has no KeyInfo")
	}
	ek.RemoveChild(ki)
	return reencode(t, doc)
}

func reencode(t testing.TB, doc *etree.Document) string {
	t.Helper()
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func TestDecryptsWithoutKeyInfoByTryingEachKey(t *testing.T) {
	rsa15 := xmlenc.PKCS1v15()
	rsa15.BlockCipher = xmlenc.AES256GCM
	for name, enc := range map[string]xmlenc.Encrypter{"RSA-OAEP": gcmEncrypter(), "RSA 1.5": rsa15} {
		t.Run(name, func(t *testing.T) {
			f, next := rotatingFixture(t, func(c *Config) { c.AllowLegacyEncryption = true })
			for keyName, cert := range map[string]*x509.Certificate{"current": f.encCert, "next": next} {
				resp := stripKeyInfo(t, f.encryptTo(t, cert, enc, true))
				if strings.Contains(string(mustDecode(t, resp)), "X509Certificate") {
					t.Fatal("the hint is still there")
				}
				if _, err := f.validate(t, resp); err != nil {
					t.Errorf("encrypted to the %s key, no KeyInfo: %v", keyName, err)
				}
			}
		})
	}
}

// The KeyInfo certificate picks the one key tried: naming the next key on
// a key wrapped for the current one fails, since the current key is not
// tried at all.
func TestKeyInfoCertificateChoosesTheKey(t *testing.T) {
	f, next := rotatingFixture(t, nil)
	doc := parseB64(t, f.encryptTo(t, f.encCert, gcmEncrypter(), true))
	c := doc.FindElement("//EncryptedKey/KeyInfo/X509Data/X509Certificate")
	if c == nil {
		t.Fatal("crewjam's EncryptedKey names no certificate")
	}
	c.SetText(base64.StdEncoding.EncodeToString(next.Raw))
	_, err := f.validate(t, reencode(t, doc))
	wantReason(t, err, ReasonDecryptionFailed)

	// A certificate we do not have is no hint: every key is tried.
	c.SetText(base64.StdEncoding.EncodeToString(f.idpCert.Raw))
	if _, err := f.validate(t, reencode(t, doc)); err != nil {
		t.Errorf("KeyInfo naming a stranger's certificate: %v", err)
	}
}

func TestNextEncryptionCertMustHaveAKey(t *testing.T) {
	_, err := New(Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com",
		DecryptionKey: respKey(t, 1), NextEncryptionCert: selfSignedCert(t, respKey(t, 2))})
	if err == nil || !strings.Contains(err.Error(), "NextEncryptionCert") {
		t.Errorf("New = %v, want NextEncryptionCert refused", err)
	}
	// The current certificate too, whether the keys come as DecryptionKey
	// or only as DecryptionKeys.
	for _, cfg := range []Config{
		{DecryptionKey: respKey(t, 1), EncryptionCert: selfSignedCert(t, respKey(t, 2))},
		{DecryptionKeys: []DecryptionKey{{Key: respKey(t, 1)}}, EncryptionCert: selfSignedCert(t, respKey(t, 2))},
	} {
		cfg.ConnectionID, cfg.ExternalURL = "acme", "https://sso.example.com"
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "EncryptionCert") {
			t.Errorf("New = %v, want an EncryptionCert no key decrypts refused", err)
		}
	}
	k := respKey(t, 1)
	if _, err := New(Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com",
		DecryptionKeys: []DecryptionKey{{Key: k}}, EncryptionCert: selfSignedCert(t, k)}); err != nil {
		t.Errorf("EncryptionCert of one of DecryptionKeys refused: %v", err)
	}
}

func TestMetadataPublishesBothKeysDuringRotation(t *testing.T) {
	f, nextEnc := rotatingFixture(t, nil)
	cfg := f.sp.Config()
	cfg.SigningKey, cfg.SigningCert = respKey(t, 1), f.encCert
	nextSign := selfSignedCert(t, respKey(t, 0))
	cfg.NextSigningCert = nextSign
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	md, err := sp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(md); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kd := range doc.FindElements("//KeyDescriptor") {
		der, _ := base64.StdEncoding.DecodeString(kd.FindElement("KeyInfo/X509Data/X509Certificate").Text())
		name := map[string]string{string(f.encCert.Raw): "current", string(nextSign.Raw): "next-signing", string(nextEnc.Raw): "next-encryption"}[string(der)]
		got = append(got, kd.SelectAttrValue("use", "")+":"+name)
	}
	want := "signing:current signing:next-signing encryption:next-encryption encryption:current"
	if strings.Join(got, " ") != want {
		t.Errorf("KeyDescriptors = %v, want %s", got, want)
	}
}

// BenchmarkDecryptKeys: one key; two keys with the KeyInfo hint (one
// unwrap); two keys without it (both tried, always).
//
//	go test ./saml -run '^$' -bench DecryptKeys
func BenchmarkDecryptKeys(b *testing.B) {
	for _, bc := range []struct {
		name  string
		two   bool
		strip bool
	}{{"one key", false, false}, {"two keys, KeyInfo", true, false}, {"two keys, no KeyInfo", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var f *fixture
			if bc.two {
				f, _ = rotatingFixture(b, nil)
			} else {
				f = newFixture(b, nil)
			}
			resp := f.encryptTo(b, f.encCert, gcmEncrypter(), true)
			if bc.strip {
				resp = stripKeyInfo(b, resp)
			}
			doc := parseB64(b, resp)
			enc := doc.FindElement("//EncryptedAssertion")
			b.ResetTimer()
			for range b.N {
				if _, err := f.sp.decryptAssertion(enc, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingRand counts the random content keys drawn: one per key tried.
type countingRand struct{ draws atomic.Int64 }

func (c *countingRand) Read(p []byte) (int, error) {
	c.draws.Add(1)
	return rand.Read(p)
}

// Without a KeyInfo hint every key is tried, also after one fitted, and
// every failure, however it arose, reads the same: with RSA 1.5 a wrong
// key, a garbled EncryptedKey (bad padding under every key) and altered
// content cannot be told apart.
func TestEveryKeyTriedAndFailuresLookAlike(t *testing.T) {
	rsa15 := xmlenc.PKCS1v15()
	rsa15.BlockCipher = xmlenc.AES256GCM
	r := &countingRand{}
	f, _ := rotatingFixture(t, func(c *Config) { c.AllowLegacyEncryption, c.Rand = true, r })
	for _, enc := range []xmlenc.Encrypter{gcmEncrypter(), rsa15} {
		resp := stripKeyInfo(t, f.encryptTo(t, f.encCert, enc, true))
		doc := parseB64(t, resp)
		before := r.draws.Load()
		if _, err := f.sp.decryptAssertion(doc.FindElement("//EncryptedAssertion"), false); err != nil {
			t.Fatal(err)
		}
		if n := r.draws.Load() - before; n != 2 {
			t.Errorf("the first key fitted and %d keys were tried, want both", n)
		}
	}
	stranger := stripKeyInfo(t, f.encryptTo(t, f.idpCert, rsa15, true))
	garbledKey := parseB64(t, stripKeyInfo(t, f.encryptTo(t, f.encCert, rsa15, true)))
	cv := garbledKey.FindElement("//EncryptedKey/CipherData/CipherValue")
	cv.SetText(base64.StdEncoding.EncodeToString(make([]byte, 256)))
	alteredContent := stripKeyInfo(t, f.encryptTo(t, f.encCert, rsa15, true))
	altered := parseB64(t, alteredContent)
	dv := altered.FindElement("//EncryptedData/CipherData/CipherValue")
	raw, _ := base64.StdEncoding.DecodeString(dv.Text())
	raw[len(raw)-1] ^= 1
	dv.SetText(base64.StdEncoding.EncodeToString(raw))
	var msgs []string
	for name, resp := range map[string]string{"stranger's key": stranger, "garbled EncryptedKey": reencode(t, garbledKey), "altered content": reencode(t, altered)} {
		_, err := f.validate(t, resp)
		msgs = append(msgs, name+": "+wantReason(t, err, ReasonDecryptionFailed).Message)
	}
	for _, m := range msgs[1:] {
		if _, a, _ := strings.Cut(m, ": "); !strings.HasSuffix(msgs[0], a) {
			t.Errorf("decryption failures differ:\n%s\n%s", m, msgs[0])
		}
	}
}
