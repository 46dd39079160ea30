package saml

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
)

// metadataNow is inside every fixture's validity and every certificate's.
var metadataNow = time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metadata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIdPMetadataVendors(t *testing.T) {
	const entra = "https://login.microsoftonline.com/4f7c1a2b-9d3e-4c8f-a1b2-3c4d5e6f7a8b/saml2"
	const okta = "https://acme.okta.com/app/acme_ssogate_1/exk8x2c1vq3WbTr7Y5d7/"
	const google = "https://accounts.google.com/o/saml2/idp?idpid=C03x9k2mq"
	tests := []struct {
		file, entityID string
		want           IdentityProvider
		certCNs        []string
	}{
		{
			file: "entra-id.xml",
			want: IdentityProvider{EntityID: "https://sts.windows.net/4f7c1a2b-9d3e-4c8f-a1b2-3c4d5e6f7a8b/",
				SSORedirectURL: entra, SSOPostURL: entra, SLORedirectURL: entra},
			certCNs: []string{"entra1 test idp", "entra2 test idp"},
		},
		{
			file: "okta.xml",
			want: IdentityProvider{EntityID: "http://www.okta.com/exk8x2c1vq3WbTr7Y5d7",
				SSORedirectURL: okta + "sso/saml", SSOPostURL: okta + "sso/saml",
				SLORedirectURL: okta + "slo/saml", SLOPostURL: okta + "slo/saml"},
			certCNs: []string{"okta test idp"},
		},
		{
			file: "adfs.xml",
			want: IdentityProvider{EntityID: "http://adfs.contoso.com/adfs/services/trust",
				SSORedirectURL: "https://adfs.contoso.com/adfs/ls/", SSOPostURL: "https://adfs.contoso.com/adfs/ls/",
				SLORedirectURL: "https://adfs.contoso.com/adfs/ls/", SLOPostURL: "https://adfs.contoso.com/adfs/ls/"},
			certCNs: []string{"adfssign test idp"}, // not the encryption certificate
		},
		{
			file: "google-workspace.xml",
			want: IdentityProvider{EntityID: "https://accounts.google.com/o/saml2?idpid=C03x9k2mq",
				SSORedirectURL: google, SSOPostURL: google,
				ValidUntil: time.Date(2031, 11, 28, 9, 14, 2, 0, time.UTC)},
			certCNs: []string{"google test idp"},
		},
		{
			file: "federation.xml", entityID: "https://idp.uni.example/idp/shibboleth",
			want: IdentityProvider{EntityID: "https://idp.uni.example/idp/shibboleth",
				SSORedirectURL: "https://idp.uni.example/idp/profile/SAML2/Redirect/SSO",
				SSOPostURL:     "https://idp.uni.example/idp/profile/SAML2/POST/SSO",
				SLORedirectURL: "https://idp.uni.example/idp/profile/SAML2/Redirect/SLO",
				SLOPostURL:     "https://idp.uni.example/idp/profile/SAML2/POST/SLO",
				SLOResponseURL: "https://idp.uni.example/idp/profile/SAML2/Redirect/SLO/Response",
				ValidUntil:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
			certCNs: []string{"shibboleth test idp"},
		},
		{
			file: "federation.xml", entityID: "https://keycloak.partner.example/realms/main",
			want: IdentityProvider{EntityID: "https://keycloak.partner.example/realms/main",
				SSORedirectURL: "https://keycloak.partner.example/realms/main/protocol/saml",
				SSOPostURL:     "https://keycloak.partner.example/realms/main/protocol/saml",
				SLORedirectURL: "https://keycloak.partner.example/realms/main/protocol/saml",
				SLOPostURL:     "https://keycloak.partner.example/realms/main/protocol/saml",
				// the nested EntitiesDescriptor's validUntil is the earlier one
				ValidUntil: time.Date(2029, 6, 30, 0, 0, 0, 0, time.UTC)},
			certCNs: []string{"keycloak test idp"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file+" "+tc.entityID, func(t *testing.T) {
			got, err := ParseIdPMetadataAt(readFixture(t, tc.file), tc.entityID, metadataNow)
			if err != nil {
				t.Fatal(err)
			}
			var cns []string
			for _, c := range got.Certificates {
				cns = append(cns, c.Subject.CommonName)
			}
			if strings.Join(cns, ",") != strings.Join(tc.certCNs, ",") {
				t.Errorf("certificates %v, want %v", cns, tc.certCNs)
			}
			got.Certificates = nil
			if !got.ValidUntil.Equal(tc.want.ValidUntil) {
				t.Errorf("ValidUntil %v, want %v", got.ValidUntil, tc.want.ValidUntil)
			}
			got.ValidUntil, tc.want.ValidUntil = time.Time{}, time.Time{}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// mdDoc wraps an IDPSSODescriptor body in an EntityDescriptor.
func mdDoc(attrs, body string) string {
	return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/e" ` + attrs + `>` +
		`<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` + body +
		`</md:IDPSSODescriptor></md:EntityDescriptor>`
}

func mdKey(use, b64 string) string {
	if use != "" {
		use = ` use="` + use + `"`
	}
	return `<md:KeyDescriptor` + use + `><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + b64 +
		`</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`
}

func mdSSO(binding, loc string) string {
	return `<md:SingleSignOnService Binding="` + binding + `" Location="` + loc + `"/>`
}

func TestParseIdPMetadataErrors(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := base64.StdEncoding.EncodeToString(selfSignedCert(t, rsaKey).Raw)
	smallKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small := base64.StdEncoding.EncodeToString(selfSignedCert(t, smallKey).Raw)
	post := mdSSO(BindingHTTPPost, "https://idp.example/sso")
	sig := mdKey("signing", good)
	tests := []struct {
		name, doc, entityID, want string
	}{
		{"dtd", `<!DOCTYPE md [<!ENTITY x "y">]>` + mdDoc("", sig+post), "", "document type or entity declarations are not allowed"},
		{"processing instruction", `<?xml-stylesheet href="x"?>` + mdDoc("", sig+post), "", "processing instruction"},
		{"not xml", `hello`, "", "text outside the root element"},
		{"unclosed", `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">`, "", "document ends inside an element"},
		{"mismatched tags", `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"></md:Other>`, "", "not well-formed"},
		{"wrong root", `<foo xmlns="urn:x"/>`, "", "expected a SAML 2.0 metadata EntityDescriptor"},
		{"sp metadata", `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>`, "", "the metadata has no IDPSSODescriptor"},
		{"no entity id", strings.Replace(mdDoc("", sig+post), `entityID="https://idp.example/e"`, "", 1), "", "has no entityID"},
		{"saml1 only", strings.Replace(mdDoc("", sig+post), "urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:1.1:protocol", 1), "", "no IDPSSODescriptor supports SAML 2.0"},
		{"no signing cert", mdDoc("", mdKey("encryption", good)+post), "", "has no signing certificate"},
		{"bad base64 cert 2", mdDoc("", sig+mdKey("", "not*base64")+post), "", "signing certificate 2 is not valid base64 DER"},
		{"bad der cert", mdDoc("", mdKey("signing", "AAAA")+post), "", "signing certificate 1 is not valid base64 DER"},
		{"small rsa key", mdDoc("", mdKey("signing", small)+post), "", "has a 1024-bit RSA key"},
		{"no usable sso binding", mdDoc("", sig+mdSSO("urn:oasis:names:tc:SAML:2.0:bindings:SOAP", "https://idp.example/soap")), "",
			"no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding (found: SOAP)"},
		{"no sso at all", mdDoc("", sig), "", "(found: none)"},
		{"relative location", mdDoc("", sig+mdSSO(BindingHTTPPost, "/sso")), "", `HTTP-POST SingleSignOnService Location "/sso" is not an absolute http(s) URL`},
		{"javascript location", mdDoc("", sig+mdSSO(BindingHTTPPost, "javascript:alert(1)")), "", "is not an absolute http(s) URL"},
		{"expired", mdDoc(`validUntil="2027-05-01T00:00:00Z"`, sig+post), "", "the metadata expired at 2027-05-01T00:00:00Z"},
		{"bad validUntil", mdDoc(`validUntil="tomorrow"`, sig+post), "", `validUntil "tomorrow" is not an xs:dateTime`},
		{"entity not found", mdDoc("", sig+post), "https://other.example", `no entity "https://other.example"; its identity providers are: https://idp.example/e`},
		{"several idps", `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">` +
			strings.Replace(mdDoc("", sig+post), "/e", "/a", 1) + strings.Replace(mdDoc("", sig+post), "/e", "/b", 1) +
			`</md:EntitiesDescriptor>`, "", "describes 2 identity providers; name the entity ID to use, one of: https://idp.example/a, https://idp.example/b"},
		{"ambiguous", `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">` +
			mdDoc("", sig+post) + mdDoc("", sig+post) + `</md:EntitiesDescriptor>`, "https://idp.example/e", "describes entity \"https://idp.example/e\" 2 times"},
		{"expired aggregate", `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" validUntil="2020-01-01T00:00:00Z">` +
			mdDoc("", sig+post) + `</md:EntitiesDescriptor>`, "", "expired at 2020-01-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseIdPMetadataAt([]byte(tc.doc), tc.entityID, metadataNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseIdPMetadataEdges(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSignedCert(t, ecKey)
	b64 := base64.StdEncoding.EncodeToString(cert.Raw)
	pem := "-----BEGIN CERTIFICATE-----\n" + b64 + "\n-----END CERTIFICATE-----"
	post := mdSSO(BindingHTTPPost, "https://idp.example/sso")
	t.Run("duplicate certificates count once", func(t *testing.T) {
		idp, err := ParseIdPMetadataAt([]byte(mdDoc("", mdKey("signing", b64)+mdKey("", b64)+post)), "", metadataNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(idp.Certificates) != 1 || !idp.Certificates[0].Equal(cert) {
			t.Fatalf("certificates = %d, want the one", len(idp.Certificates))
		}
	})
	t.Run("pem armour tolerated", func(t *testing.T) {
		if _, err := ParseIdPMetadataAt([]byte(mdDoc("", mdKey("signing", pem)+post)), "", metadataNow); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("first endpoint of a binding wins", func(t *testing.T) {
		idp, err := ParseIdPMetadataAt([]byte(mdDoc("", mdKey("", b64)+post+mdSSO(BindingHTTPPost, "https://idp.example/other"))), "", metadataNow)
		if err != nil {
			t.Fatal(err)
		}
		if idp.SSOPostURL != "https://idp.example/sso" || idp.SSORedirectURL != "" {
			t.Fatalf("got %+v", idp)
		}
	})
	t.Run("entity id optional for a single entity", func(t *testing.T) {
		if _, err := ParseIdPMetadataAt([]byte(mdDoc("", mdKey("", b64)+post)), "https://idp.example/e", metadataNow); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		big := mdDoc("", mdKey("", b64)+post+"<!--"+strings.Repeat("x", MaxMetadataBytes)+"-->")
		if _, err := ParseIdPMetadataAt([]byte(big), "", metadataNow); err == nil || !strings.Contains(err.Error(), "more than") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("wall clock wrapper", func(t *testing.T) {
		if _, err := ParseIdPMetadata([]byte(mdDoc(`validUntil="2001-01-01T00:00:00Z"`, mdKey("", b64)+post)), ""); err == nil {
			t.Fatal("expired metadata accepted")
		}
	})
}

func TestSPMetadata(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signCert := selfSignedCert(t, rsaKey)
	encKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	encCert := selfSignedCert(t, encKey)
	tests := []struct {
		name                string
		cfg                 func(*Config)
		signed              bool
		signCerts, encCerts int
		nameID              string
	}{
		{"minimal", func(*Config) {}, false, 0, 0, nameIDFormatUnspecified},
		{"signing and encryption", func(c *Config) {
			c.SignRequests, c.SigningKey, c.SigningCert = true, rsaKey, signCert
			c.WantEncryptedAssertions, c.DecryptionKey, c.EncryptionCert = true, encKey, encCert
			c.NameIDFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
		}, true, 1, 1, "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com"}
			tc.cfg(&cfg)
			sp, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, err := sp.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			// Interop: crewjam/saml reads it as SP metadata.
			var ed crewjam.EntityDescriptor
			if err := xml.Unmarshal(b, &ed); err != nil {
				t.Fatalf("crewjam cannot parse our metadata: %v\n%s", err, b)
			}
			if ed.EntityID != sp.EntityID() || len(ed.SPSSODescriptors) != 1 {
				t.Fatalf("entity %q, %d SPSSODescriptors", ed.EntityID, len(ed.SPSSODescriptors))
			}
			d := ed.SPSSODescriptors[0]
			if d.AuthnRequestsSigned == nil || *d.AuthnRequestsSigned != tc.signed || d.WantAssertionsSigned == nil || !*d.WantAssertionsSigned {
				t.Errorf("AuthnRequestsSigned/WantAssertionsSigned wrong: %v %v", d.AuthnRequestsSigned, d.WantAssertionsSigned)
			}
			if d.ProtocolSupportEnumeration != nsSAMLP {
				t.Errorf("protocolSupportEnumeration %q", d.ProtocolSupportEnumeration)
			}
			if len(d.AssertionConsumerServices) != 1 {
				t.Fatalf("%d ACS", len(d.AssertionConsumerServices))
			}
			acs := d.AssertionConsumerServices[0]
			if acs.Location != sp.ACSURL() || acs.Binding != BindingHTTPPost || acs.Index != 0 || acs.IsDefault == nil || !*acs.IsDefault {
				t.Errorf("ACS %+v", acs)
			}
			var slo []string
			for _, s := range d.SingleLogoutServices {
				if s.Location != sp.SLOURL() {
					t.Errorf("SLO location %q", s.Location)
				}
				slo = append(slo, s.Binding)
			}
			if fmt.Sprint(slo) != fmt.Sprint([]string{BindingHTTPRedirect, BindingHTTPPost}) {
				t.Errorf("SLO bindings %v", slo)
			}
			if len(d.NameIDFormats) != 1 || string(d.NameIDFormats[0]) != tc.nameID {
				t.Errorf("NameIDFormats %v", d.NameIDFormats)
			}
			var signing, enc int
			for _, kd := range d.KeyDescriptors {
				der, err := base64.StdEncoding.DecodeString(kd.KeyInfo.X509Data.X509Certificates[0].Data)
				if err != nil {
					t.Fatal(err)
				}
				switch kd.Use {
				case "signing":
					signing++
					if string(der) != string(signCert.Raw) {
						t.Error("signing certificate differs")
					}
				case "encryption":
					enc++
					if string(der) != string(encCert.Raw) {
						t.Error("encryption certificate differs")
					}
					if len(kd.EncryptionMethods) == 0 || kd.EncryptionMethods[0].Algorithm != "http://www.w3.org/2009/xmlenc11#aes256-gcm" {
						t.Errorf("encryption methods %+v", kd.EncryptionMethods)
					}
				}
			}
			if signing != tc.signCerts || enc != tc.encCerts {
				t.Errorf("%d signing and %d encryption keys, want %d and %d", signing, enc, tc.signCerts, tc.encCerts)
			}
		})
	}
}
