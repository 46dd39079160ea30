package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// rejection is one table case: a response with exactly one defect, and the
// reason that defect must produce. Each builds on a genuine crewjam
// response; where a value is changed after signing, the element is signed
// again with the IdP's own key, so the only thing wrong is the value.
type rejection struct {
	name  string
	edit  func(*Config)
	build func(t *testing.T, f *fixture) string
	want  Reason
	msg   string // a substring the message must hold, when the reason alone is ambiguous
}

func rejections() []rejection {
	respOnly := resign{response: true}
	return []rejection{
		// Size and shape.
		{name: "body over MaxBodyBytes", want: ReasonBodyTooLarge,
			build: func(t *testing.T, f *fixture) string { return strings.Repeat("A", DefaultMaxBodyBytes+4) }},
		{name: "decoded XML over MaxXMLBytes", want: ReasonBodyTooLarge,
			edit: func(c *Config) { c.MaxXMLBytes = 2000 },
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r")})
			}},
		{name: "base64 with invalid characters", want: ReasonMalformedEncoding,
			build: func(t *testing.T, f *fixture) string { return "PHNhbWxwOlJlc3BvbnNlLz4*" }},
		{name: "base64 with trailing garbage", want: ReasonMalformedEncoding,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r")}) + "AAAA=garbage"
			}},
		{name: "base64 with spaces", want: ReasonMalformedEncoding,
			build: func(t *testing.T, f *fixture) string {
				s := f.issue(t, issue{requestID: f.pend("id-r")})
				return s[:40] + " " + s[40:]
			}},
		{name: "base64 non-canonical trailing bits", want: ReasonMalformedEncoding,
			build: func(t *testing.T, f *fixture) string { return "PHgvPh==" }}, // "<x/>" is PHgvPg==
		{name: "deflated on the POST binding", want: ReasonMalformedEncoding,
			build: func(t *testing.T, f *fixture) string {
				return deflateB64(t, mustDecode(t, f.issue(t, issue{requestID: f.pend("id-r")})))
			}},
		{name: "deflate bomb", want: ReasonMalformedEncoding,
			build: func(t *testing.T, f *fixture) string {
				return deflateB64(t, append([]byte("<samlp:Response>"), make([]byte, 64<<20)...))
			}},
		{name: "not XML", want: ReasonMalformedXML,
			build: func(t *testing.T, f *fixture) string { return b64("hello, world") }},
		{name: "two root elements", want: ReasonMalformedXML,
			build: func(t *testing.T, f *fixture) string {
				raw := mustDecode(t, f.issue(t, issue{requestID: f.pend("id-r")}))
				return b64(string(raw) + string(raw))
			}},
		{name: "root is not a Response", want: ReasonMalformedXML,
			build: func(t *testing.T, f *fixture) string {
				return b64(`<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0"/>`)
			}},
		{name: "unclosed element", want: ReasonMalformedXML,
			build: func(t *testing.T, f *fixture) string {
				return b64(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><a></samlp:Response>`)
			}},
		{name: "DTD with entity declaration", want: ReasonForbiddenXML,
			build: func(t *testing.T, f *fixture) string {
				return b64(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "alice">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&e;</samlp:Response>`)
			}},
		{name: "processing instruction", want: ReasonForbiddenXML,
			build: func(t *testing.T, f *fixture) string {
				raw := mustDecode(t, f.issue(t, issue{requestID: f.pend("id-r")}))
				return b64(`<?xml-stylesheet href="x.xsl"?>` + string(raw))
			}},
		{name: "processing instruction inside the root", want: ReasonForbiddenXML,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.InsertChildAt(0, etree.NewProcInst("evil", "x"))
				}, resign{})
			}},
		{name: "deep nesting", want: ReasonXMLTooComplex,
			build: func(t *testing.T, f *fixture) string {
				return b64(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">` +
					strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</samlp:Response>`)
			}},
		{name: "namespace flood, nested", want: ReasonXMLTooComplex,
			build: func(t *testing.T, f *fixture) string { return b64(namespaceFlood(40, 10)) }},
		{name: "namespace flood, one element", want: ReasonXMLTooComplex,
			build: func(t *testing.T, f *fixture) string { return b64(namespaceFlood(1, 5000)) }},
		{name: "many small elements", want: ReasonXMLTooComplex,
			build: func(t *testing.T, f *fixture) string { return b64(smallElementFlood(40000)) }},
		{name: "attributes spread over elements", want: ReasonXMLTooComplex,
			build: func(t *testing.T, f *fixture) string {
				return b64(floodResponse(1000, func(b *strings.Builder, i int) {
					b.WriteString("<a")
					for j := range 11 {
						fmt.Fprintf(b, ` v%d="x"`, j)
					}
					b.WriteString("/>")
				}))
			}},
		{name: "namespace declarations spread over siblings", want: ReasonXMLTooComplex,
			build: func(t *testing.T, f *fixture) string {
				return b64(floodResponse(1000, func(b *strings.Builder, i int) {
					b.WriteString("<a")
					for j := range 11 {
						fmt.Fprintf(b, ` xmlns:n%d="urn:x:%d"`, j, j)
					}
					b.WriteString("/>")
				}))
			}},
		{name: "two ID attributes on the Response", want: ReasonMalformedXML, msg: `"ID" twice`,
			build: func(t *testing.T, f *fixture) string {
				return editRaw(t, f.issue(t, issue{requestID: f.pend("id-r")}), "<samlp:Response ", `<samlp:Response ID="id-evil" `)
			}},
		{name: "two attributes that differ only by prefixes of one namespace", want: ReasonMalformedXML, msg: "twice",
			build: func(t *testing.T, f *fixture) string {
				return editRaw(t, f.issue(t, issue{requestID: f.pend("id-r")}), "<samlp:Response ",
					`<samlp:Response xmlns:p="urn:x" xmlns:q="urn:x" p:n="1" q:n="2" `)
			}},
		{name: "attribute name that does not survive encoding/xml's round trip", want: ReasonMalformedXML, msg: "x::ID",
			build: func(t *testing.T, f *fixture) string {
				return editRaw(t, f.issue(t, issue{requestID: f.pend("id-r")}), "<samlp:Response ", `<samlp:Response x::ID="id-evil" `)
			}},
		{name: "end tag that closes another element", want: ReasonMalformedXML, msg: "closes",
			build: func(t *testing.T, f *fixture) string {
				return editRaw(t, f.issue(t, issue{requestID: f.pend("id-r")}), "</saml:Issuer>", "</saml:Audience>")
			}},
		{name: "UTF-16 declared on UTF-8 bytes", want: ReasonMalformedXML, msg: "UTF-16",
			build: func(t *testing.T, f *fixture) string {
				return editRaw(t, f.issue(t, issue{requestID: f.pend("id-r")}), "<samlp:Response ",
					`<?xml version="1.0" encoding="UTF-16"?><samlp:Response `)
			}},
		{name: "SAML version 1.1", want: ReasonUnsupportedVersion,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.CreateAttr("Version", "1.1")
				}, respOnly)
			}},

		// Signature and encryption.
		{name: "nothing signed", want: ReasonSignatureMissing,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedAssertion: true}), func(resp, a *etree.Element) {
					resp.RemoveChild(firstChild(resp, dsig.Namespace, "Signature"))
				}, resign{})
			}},
		{name: "NameID changed after signing", want: ReasonSignatureInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true}), func(resp, a *etree.Element) {
					setNameID(a, "admin@acme.example")
				}, resign{})
			}},
		{name: "signed Response with an Assertion whose own signature broke", want: ReasonSignatureInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					setNameID(a, "admin@acme.example")
				}, respOnly)
			}},
		{name: "signature moved to a forged assertion", want: ReasonSignatureInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true}), func(resp, a *etree.Element) {
					a.CreateAttr("ID", "id-forged")
					setNameID(a, "admin@acme.example")
				}, resign{})
			}},
		{name: "signed with a key that is not pinned", want: ReasonCertificateNotTrusted, msg: "not pinned",
			build: func(t *testing.T, f *fixture) string {
				k := respKey(t, 2)
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil,
					resign{assertion: true, response: true, key: k, cert: selfSignedCert(t, k)})
			}},
		{name: "pinned certificate expired", want: ReasonCertificateNotTrusted,
			edit: func(c *Config) {}, // certificates replaced in build
			build: func(t *testing.T, f *fixture) string {
				expired := certValid(t, f, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
				f.sp.cfg.IdP.Certificates = []*x509.Certificate{expired}
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil,
					resign{assertion: true, response: true, key: f.idpKey, cert: expired})
			}},
		{name: "encrypted assertion signed by an unpinned key, checked after decryption", want: ReasonCertificateNotTrusted,
			build: func(t *testing.T, f *fixture) string {
				k := respKey(t, 2)
				f.idp.Key, f.idp.Certificate = k, selfSignedCert(t, k)
				return f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true, encrypt: gcmEncrypter()})
			}},
		{name: "RSA-SHA1 signature", want: ReasonAlgorithmNotAllowed,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil,
					resign{assertion: true, response: true, method: dsig.RSASHA1SignatureMethod})
			}},
		{name: "RSA-SHA1 signature method over a SHA-256 digest", want: ReasonAlgorithmNotAllowed, msg: "signature algorithm",
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil, resign{assertion: true, response: true,
					mixed: &mixedAlgs{dsig.RSASHA1SignatureMethod, crypto.SHA1, "http://www.w3.org/2001/04/xmlenc#sha256", crypto.SHA256}})
			}},
		{name: "SHA-1 digest under an RSA-SHA256 signature", want: ReasonAlgorithmNotAllowed, msg: "digest",
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil, resign{assertion: true, response: true,
					mixed: &mixedAlgs{dsig.RSASHA256SignatureMethod, crypto.SHA256, digestSHA1, crypto.SHA1}})
			}},
		{name: "AES-CBC without legacy encryption", want: ReasonAlgorithmNotAllowed,
			build: func(t *testing.T, f *fixture) string {
				enc := xmlenc.OAEP()
				enc.BlockCipher = xmlenc.AES256CBC
				return f.issue(t, issue{requestID: f.pend("id-r"), encrypt: enc})
			}},
		{name: "RSA 1.5 key transport without legacy encryption", want: ReasonAlgorithmNotAllowed,
			build: func(t *testing.T, f *fixture) string {
				enc := xmlenc.PKCS1v15()
				enc.BlockCipher = xmlenc.AES128GCM
				return f.issue(t, issue{requestID: f.pend("id-r"), encrypt: enc})
			}},
		{name: "two assertions in a signed Response", want: ReasonAssertionCount,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.AddChild(a.Copy())
				}, respOnly)
			}},
		{name: "no assertion", want: ReasonAssertionCount,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.RemoveChild(a)
				}, respOnly)
			}},
		{name: "wrapping: forged assertion beside the signed one", want: ReasonAssertionCount,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true}), func(resp, a *etree.Element) {
					forged := a.Copy()
					forged.RemoveChild(firstChild(forged, dsig.Namespace, "Signature"))
					setNameID(forged, "admin@acme.example")
					resp.InsertChildAt(a.Index(), forged)
				}, resign{})
			}},
		{name: "wrapping: signed assertion inside a forged one", want: ReasonAssertionCount,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true}), func(resp, a *etree.Element) {
					forged := a.Copy()
					forged.RemoveChild(firstChild(forged, dsig.Namespace, "Signature"))
					forged.CreateAttr("ID", "id-forged")
					setNameID(forged, "admin@acme.example")
					resp.RemoveChild(a)
					forged.AddChild(a)
					resp.AddChild(forged)
				}, resign{})
			}},
		{name: "wrapping: signed Response moved into Extensions of a forged one", want: ReasonAssertionCount,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					genuine := resp.Copy()
					forged := a.Copy()
					forged.RemoveChild(firstChild(forged, dsig.Namespace, "Signature"))
					setNameID(forged, "admin@acme.example")
					replaceChild(resp, a, forged)
					ext := etree.NewElement("samlp:Extensions")
					ext.AddChild(genuine)
					resp.InsertChildAt(firstChild(resp, nsAssertion, "Issuer").Index()+1, ext)
				}, resign{})
			}},
		{name: "wrapping: the only assertion moved into Extensions", want: ReasonAssertionCount, msg: "is inside <Extensions>",
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.RemoveChild(a)
					ext := etree.NewElement("samlp:Extensions")
					ext.AddChild(a)
					resp.InsertChildAt(firstChild(resp, nsAssertion, "Issuer").Index()+1, ext)
				}, respOnly)
			}},
		{name: "plain assertion where encryption is required", want: ReasonEncryptionRequired,
			edit:  func(c *Config) { c.WantEncryptedAssertions = true },
			build: func(t *testing.T, f *fixture) string { return f.issue(t, issue{requestID: f.pend("id-r")}) }},
		{name: "encrypted to another key", want: ReasonDecryptionFailed,
			edit: func(c *Config) {
				k := respKey(nil, 2)
				c.DecryptionKey, c.EncryptionCert = k, nil
			},
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), encrypt: gcmEncrypter()})
			}},
		{name: "ciphertext modified", want: ReasonDecryptionFailed,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), encrypt: gcmEncrypter(), unsignedResponse: true}),
					func(resp, _ *etree.Element) { flipCipherValue(t, resp, "EncryptedData") }, resign{})
			}},
		{name: "encrypted key modified", want: ReasonDecryptionFailed,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), encrypt: gcmEncrypter(), unsignedResponse: true}),
					func(resp, _ *etree.Element) { flipCipherValue(t, resp, "EncryptedKey") }, resign{})
			}},
		{name: "AES-CBC under an unsigned Response, though the Assertion is signed", want: ReasonDecryptionFailed, msg: "unsigned Response",
			edit: func(c *Config) { c.AllowLegacyEncryption = true },
			build: func(t *testing.T, f *fixture) string {
				enc := xmlenc.OAEP()
				enc.BlockCipher = xmlenc.AES256CBC
				return f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true, encrypt: enc})
			}},
		{name: "AES-CBC ciphertext modified under a signed Response", want: ReasonSignatureInvalid,
			edit: func(c *Config) { c.AllowLegacyEncryption = true },
			build: func(t *testing.T, f *fixture) string {
				enc := xmlenc.OAEP()
				enc.BlockCipher = xmlenc.AES256CBC
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), encrypt: enc}),
					func(resp, _ *etree.Element) { flipCipherValue(t, resp, "EncryptedData") }, resign{})
			}},
		{name: "encrypted but no decryption key", want: ReasonDecryptionFailed,
			edit: func(c *Config) { c.DecryptionKey, c.EncryptionCert = nil, nil },
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), encrypt: gcmEncrypter()})
			}},

		// Status.
		{name: "status AuthnFailed", want: ReasonIdPAuthnFailed,
			build: func(t *testing.T, f *fixture) string { return f.failedStatus(t, "Responder", "AuthnFailed") }},
		{name: "status RequestDenied", want: ReasonIdPRequestDenied,
			build: func(t *testing.T, f *fixture) string { return f.failedStatus(t, "Responder", "RequestDenied") }},
		{name: "status NoPassive", want: ReasonIdPNoPassive,
			build: func(t *testing.T, f *fixture) string { return f.failedStatus(t, "Responder", "NoPassive") }},
		{name: "status Requester", want: ReasonIdPStatus,
			build: func(t *testing.T, f *fixture) string { return f.failedStatus(t, "Requester", "") }},

		// Binding to this connection.
		{name: "Response Issuer of another IdP", want: ReasonIssuerMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					firstChild(resp, nsAssertion, "Issuer").SetText("https://other-idp.example.com")
				}, respOnly)
			}},
		{name: "Assertion Issuer of another IdP", want: ReasonIssuerMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true, editAssertion: func(a *crewsaml.Assertion) {
					a.Issuer.Value = "https://other-idp.example.com"
				}})
			}},
		{name: "Destination of another connection", want: ReasonDestinationMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.CreateAttr("Destination", "https://sso.example.com/saml/other/acs")
				}, respOnly)
			}},
		{name: "Destination on an unsigned Response", want: ReasonDestinationMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true}), func(resp, a *etree.Element) {
					resp.CreateAttr("Destination", "https://sso.example.com/saml/other/acs")
				}, resign{})
			}},
		{name: "signed Response without Destination", want: ReasonDestinationMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.RemoveAttr("Destination")
				}, respOnly)
			}},
		{name: "Recipient of another connection", want: ReasonRecipientMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://sso.example.com/saml/other/acs"
				}})
			}},
		{name: "Audience of another SP", want: ReasonAudienceMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Conditions.AudienceRestrictions[0].Audience.Value = "https://sso.example.com/saml/other"
				}})
			}},
		{name: "no AudienceRestriction", want: ReasonAudienceMismatch,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Conditions.AudienceRestrictions = nil
				}})
			}},
		{name: "holder-of-key confirmation only", want: ReasonSubjectInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Subject.SubjectConfirmations[0].Method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
				}})
			}},
		{name: "no NameID", want: ReasonSubjectInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Subject.NameID = nil
				}})
			}},
		{name: "Conditions NotBefore in the future", want: ReasonNotYetValid,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Conditions.NotBefore = testNow.Add(DefaultClockSkew + time.Second)
				}})
			}},
		{name: "Conditions NotOnOrAfter passed", want: ReasonExpired,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Conditions.NotOnOrAfter = testNow.Add(-DefaultClockSkew)
				}})
			}},
		{name: "SubjectConfirmationData NotOnOrAfter passed", want: ReasonExpired,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = testNow.Add(-DefaultClockSkew)
				}})
			}},
		{name: "clock past every limit plus skew", want: ReasonExpired,
			edit: func(c *Config) {
				c.Now = func() time.Time { return testNow.Add(crewsaml.MaxIssueDelay + DefaultClockSkew) }
			},
			build: func(t *testing.T, f *fixture) string {
				f.requests.now = func() time.Time { return testNow }
				return f.issue(t, issue{requestID: f.pend("id-r")})
			}},
		{name: "Assertion IssueInstant too old", want: ReasonIssueInstantInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.IssueInstant = testNow.Add(-DefaultMaxIssueAge - DefaultClockSkew - time.Second)
				}})
			}},
		{name: "Response IssueInstant in the future", want: ReasonIssueInstantInvalid,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
					resp.CreateAttr("IssueInstant", testNow.Add(DefaultClockSkew+time.Second).Format(time.RFC3339))
				}, respOnly)
			}},

		// What a login assertion must say.
		{name: "bearer assertion without AuthnStatement", want: ReasonAuthnStatementMissing,
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.AuthnStatements = nil
				}})
			}},

		// Request binding and replay.
		{name: "InResponseTo unknown", want: ReasonInResponseToUnknown,
			build: func(t *testing.T, f *fixture) string { return f.issue(t, issue{requestID: "id-never-sent"}) }},
		{name: "InResponseTo already used", want: ReasonInResponseToUsed,
			build: func(t *testing.T, f *fixture) string {
				id := f.pend("id-r")
				if _, err := f.validate(t, f.issue(t, issue{requestID: id})); err != nil {
					t.Fatal(err)
				}
				return f.issue(t, issue{requestID: id})
			}},
		{name: "InResponseTo expired", want: ReasonInResponseToExpired,
			build: func(t *testing.T, f *fixture) string {
				f.requests.pending["id-old"] = testNow.Add(-time.Second)
				return f.issue(t, issue{requestID: "id-old"})
			}},
		{name: "unsigned Response claims another request", want: ReasonInResponseToUnknown,
			build: func(t *testing.T, f *fixture) string {
				f.pend("id-other")
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), unsignedResponse: true}), func(resp, a *etree.Element) {
					resp.CreateAttr("InResponseTo", "id-other")
				}, resign{})
			}},
		{name: "unsolicited assertion dressed as an answer by an unsigned Response", want: ReasonInResponseToUnknown,
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{unsignedResponse: true}), func(resp, a *etree.Element) {
					resp.CreateAttr("InResponseTo", f.pend("id-attacker"))
				}, resign{})
			}},
		{name: "IdP-initiated on a connection that refuses it", want: ReasonIdPInitiatedForbidden,
			build: func(t *testing.T, f *fixture) string { return f.issue(t, issue{}) }},
		{name: "assertion replayed", want: ReasonAssertionReplayed,
			edit: func(c *Config) { c.AllowIdPInitiated = true },
			build: func(t *testing.T, f *fixture) string {
				resp := f.issue(t, issue{})
				if _, err := f.validate(t, resp); err != nil {
					t.Fatal(err)
				}
				return resp
			}},
	}
}

// storeReasons are decided by the store; every other rejection must leave
// the store untouched.
var storeReasons = map[Reason]bool{
	ReasonInResponseToUnknown: true, ReasonInResponseToUsed: true, ReasonInResponseToExpired: true,
	ReasonAssertionReplayed: true,
}

func TestValidateResponseRejects(t *testing.T) {
	for _, tc := range rejections() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.edit)
			form := tc.build(t, f)
			callsBefore := f.requests.calls + f.replay.calls
			id, err := f.validate(t, form)
			if id != nil {
				t.Fatalf("accepted: %+v", id)
			}
			se := wantReason(t, err, tc.want)
			if se.Message == "" || !strings.Contains(se.Message, tc.msg) {
				t.Errorf("message %q does not say %q", se.Message, tc.msg)
			}
			if !storeReasons[tc.want] && f.requests.calls+f.replay.calls != callsBefore {
				t.Errorf("a %s rejection touched the store (%d calls)", tc.want, f.requests.calls+f.replay.calls-callsBefore)
			}
			t.Log(se.Message)
		})
	}
}

// TestRejectionsCoverReasons makes sure no Reason that saml decides lacks
// a table case.
func TestRejectionsCoverReasons(t *testing.T) {
	covered := map[Reason]bool{}
	for _, tc := range rejections() {
		covered[tc.want] = true
	}
	serverSide := map[Reason]bool{ReasonConnectionNotFound: true, ReasonConnectionInactive: true, ReasonPolicyDenied: true, ReasonInternal: true,
		ReasonEmailDomainMismatch: true, ReasonUserDeprovisioned: true, ReasonUserNotProvisioned: true,
		ReasonGroupOverage: true}
	for _, r := range Reasons {
		if !covered[r] && !serverSide[r] {
			t.Errorf("no rejection case for %s", r)
		}
	}
}

func TestAdminMessagesNameValues(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.validate(t, f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
		a.Conditions.AudienceRestrictions[0].Audience.Value = "https://a.example"
	}}))
	se := wantReason(t, err, ReasonAudienceMismatch)
	want := `Audience was "https://a.example", expected "https://sso.example.com/saml/acme"`
	if se.Message != want {
		t.Errorf("message = %q, want %q", se.Message, want)
	}
}

func TestDecryptionFailuresLookAlike(t *testing.T) {
	// Refused before any key is used, from what the sender already knows:
	// their messages may say what to change.
	beforeDecryption := map[string]bool{
		"encrypted but no decryption key":                                    true,
		"AES-CBC under an unsigned Response, though the Assertion is signed": true,
	}
	var msgs []string
	for _, tc := range rejections() {
		if tc.want != ReasonDecryptionFailed || beforeDecryption[tc.name] {
			continue
		}
		f := newFixture(t, tc.edit)
		_, err := f.validate(t, tc.build(t, f))
		msgs = append(msgs, wantReason(t, err, ReasonDecryptionFailed).Message)
	}
	if len(msgs) < 3 {
		t.Fatalf("only %d decryption cases", len(msgs))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("decryption failures differ: %q vs %q", m, msgs[0])
		}
	}
}

func TestAccepts(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		build func(t *testing.T, f *fixture) string
		check func(t *testing.T, id *Identity)
	}{
		{name: "SHA-1 when the connection allows it",
			edit: func(c *Config) { c.AllowSHA1 = true },
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil,
					resign{assertion: true, response: true, method: dsig.RSASHA1SignatureMethod})
			}},
		{name: "IdP-initiated when the connection allows it",
			edit:  func(c *Config) { c.AllowIdPInitiated = true },
			build: func(t *testing.T, f *fixture) string { return f.issue(t, issue{}) },
			check: func(t *testing.T, id *Identity) {
				if id.InResponseTo != "" {
					t.Errorf("InResponseTo = %q", id.InResponseTo)
				}
			}},
		{name: "clock one second inside every limit plus skew",
			edit: func(c *Config) {
				c.Now = func() time.Time { return testNow.Add(crewsaml.MaxIssueDelay + DefaultClockSkew - time.Second) }
			},
			build: func(t *testing.T, f *fixture) string {
				f.requests.now = func() time.Time { return testNow }
				return f.issue(t, issue{requestID: f.pend("id-r")})
			}},
		{name: "NotBefore inside the skew",
			build: func(t *testing.T, f *fixture) string {
				return f.issue(t, issue{requestID: f.pend("id-r"), editAssertion: func(a *crewsaml.Assertion) {
					a.Conditions.NotBefore = testNow.Add(DefaultClockSkew)
				}})
			}},
		{name: "comment inside NameID yields the full text",
			build: func(t *testing.T, f *fixture) string {
				s := defaultSession()
				s.NameID = "alice@acme.example.evil.com"
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), session: s}), func(resp, a *etree.Element) {
					n := firstChild(firstChild(a, nsAssertion, "Subject"), nsAssertion, "NameID")
					n.SetText("alice@acme.example")
					n.AddChild(etree.NewComment(""))
					n.AddChild(etree.NewText(".evil.com"))
				}, resign{})
			},
			check: func(t *testing.T, id *Identity) {
				if id.NameID != "alice@acme.example.evil.com" {
					t.Errorf("NameID = %q, want the whole signed text", id.NameID)
				}
			}},
		{name: "2,000 group GUIDs, plain values, default limits",
			build: func(t *testing.T, f *fixture) string {
				s := defaultSession()
				s.Groups = nil
				values := make([]crewsaml.AttributeValue, 2000)
				for i := range values {
					values[i].Value = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
				}
				s.CustomAttributes = []crewsaml.Attribute{{Name: entraGroups, Values: values}}
				form := f.issue(t, issue{requestID: f.pend("id-r"), session: s})
				t.Logf("SAMLResponse is %d bytes", len(form))
				return form
			},
			check: func(t *testing.T, id *Identity) {
				if n := len(id.Attributes[entraGroups]); n != 2000 {
					t.Errorf("%d groups", n)
				}
			}},
		{name: "2,000 group names with namespaces declared on every value, 1 MiB body limit",
			edit: func(c *Config) { c.MaxBodyBytes = 1 << 20 },
			build: func(t *testing.T, f *fixture) string {
				s := defaultSession()
				s.Groups = make([]string, 2000)
				for i := range s.Groups {
					s.Groups[i] = fmt.Sprintf("Engineering Team %04d", i)
				}
				form := f.issue(t, issue{requestID: f.pend("id-r"), session: s})
				t.Logf("SAMLResponse is %d bytes", len(form))
				return form
			},
			check: func(t *testing.T, id *Identity) {
				if n := len(id.Attributes["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"]); n != 2000 {
					t.Errorf("%d groups", n)
				}
			}},
		{name: "2,000 Okta-style groups (two namespace declarations per value), default limits",
			build: func(t *testing.T, f *fixture) string {
				form := f.oktaStyle(t, 2000)
				t.Logf("SAMLResponse is %d bytes", len(form))
				return form
			},
			check: func(t *testing.T, id *Identity) {
				if n := len(id.Attributes[oktaGroupsAttr]); n != 2000 {
					t.Errorf("%d groups", n)
				}
			}},
		{name: "ECDSA P-256 SHA-256, r||s signature values",
			edit: func(c *Config) { c.IdP.Certificates = []*x509.Certificate{selfSignedCert(nil, ecKey())} },
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil, resign{assertion: true, response: true,
					key: ecKey(), cert: f.sp.cfg.IdP.Certificates[0], method: dsig.ECDSASHA256SignatureMethod, rawECDSA: true})
			}},
		{name: "ECDSA P-256 SHA-512, DER signature values",
			edit: func(c *Config) { c.IdP.Certificates = []*x509.Certificate{selfSignedCert(nil, ecKey())} },
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil, resign{assertion: true, response: true,
					key: ecKey(), cert: f.sp.cfg.IdP.Certificates[0], method: dsig.ECDSASHA512SignatureMethod})
			}},
		{name: "RSA-SHA384",
			build: func(t *testing.T, f *fixture) string {
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), nil,
					resign{assertion: true, response: true, method: dsig.RSASHA384SignatureMethod})
			}},
		{name: "signatures placed last, after 2,000 attribute values",
			edit: func(c *Config) { c.MaxBodyBytes = 1 << 20 },
			build: func(t *testing.T, f *fixture) string {
				s := defaultSession()
				s.Groups = make([]string, 2000)
				for i := range s.Groups {
					s.Groups[i] = fmt.Sprintf("g%d", i)
				}
				return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r"), session: s}), nil,
					resign{assertion: true, response: true, sigLast: true})
			}},
		{name: "second pinned certificate during rotation",
			edit: func(c *Config) {
				k := respKey(nil, 2)
				c.IdP.Certificates = append([]*x509.Certificate{selfSignedCert(nil, k)}, c.IdP.Certificates...)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.edit)
			build := tc.build
			if build == nil {
				build = func(t *testing.T, f *fixture) string { return f.issue(t, issue{requestID: f.pend("id-r")}) }
			}
			id, err := f.validate(t, build(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, id)
			}
		})
	}
}

func TestIdentityComplete(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Attributes = AttributeMapping{ClaimEmail: {"urn:oid:0.9.2342.19200300.100.1.3"}, ClaimGroups: {"urn:oid:1.3.6.1.4.1.5923.1.1.1.1"}}
	})
	id, err := f.validate(t, f.issue(t, issue{requestID: f.pend("id-r")}))
	if err != nil {
		t.Fatal(err)
	}
	if id.NameIDFormat != "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" ||
		!id.AuthnInstant.Equal(testNow.Add(-time.Minute)) ||
		id.AuthnContextClassRef != "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport" ||
		id.AssertionID == "" {
		t.Errorf("identity = %+v", id)
	}
	if id.Mapped.Email != "alice@acme.example" || strings.Join(id.Mapped.Groups, ",") != "admins,staff" {
		t.Errorf("mapped = %+v", id.Mapped)
	}
	d := id.Diagnostics
	if d.DigestAlgorithm != "http://www.w3.org/2001/04/xmlenc#sha256" || d.ClockSkew != DefaultClockSkew ||
		!d.IssueInstant.Equal(testNow) || !d.NotOnOrAfter.Equal(testNow.Add(crewsaml.MaxIssueDelay)) ||
		d.CertificateNotAfter.IsZero() {
		t.Errorf("diagnostics = %+v", d)
	}
	// The replay entry lives until the assertion could no longer be
	// accepted: its earliest limit plus the skew.
	if got, want := f.replay.seen[id.AssertionID], testNow.Add(crewsaml.MaxIssueDelay+DefaultClockSkew); !got.Equal(want) {
		t.Errorf("replay expiry = %s, want %s", got, want)
	}
}

// The replay entry must not outlive the IssueInstant limit either.
func TestReplayExpiryHonoursMaxIssueAge(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxIssueAge = 30 * time.Second })
	id, err := f.validate(t, f.issue(t, issue{requestID: f.pend("id-r")}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.replay.seen[id.AssertionID], testNow.Add(30*time.Second+DefaultClockSkew); !got.Equal(want) {
		t.Errorf("replay expiry = %s, want %s", got, want)
	}
}

func TestStoreErrorsAreInternal(t *testing.T) {
	f := newFixture(t, nil)
	in := f.input(f.issue(t, issue{requestID: f.pend("id-r")}))
	in.Replay = failingReplay{}
	_, err := f.sp.ValidateResponse(context.Background(), in)
	wantReason(t, err, ReasonInternal)
	if f.requests.calls != 0 {
		t.Error("pending request consumed although the assertion could not be recorded")
	}
}

type failingReplay struct{}

func (failingReplay) RecordAssertion(context.Context, string, string, time.Time) error {
	return fmt.Errorf("database is down")
}

func (f *fixture) failedStatus(t *testing.T, top, second string) string {
	t.Helper()
	return f.tamper(t, f.issue(t, issue{requestID: f.pend("id-r")}), func(resp, a *etree.Element) {
		resp.RemoveChild(a)
		resp.RemoveChild(firstChild(resp, dsig.Namespace, "Signature"))
		code := firstChild(firstChild(resp, nsProtocol, "Status"), nsProtocol, "StatusCode")
		code.CreateAttr("Value", statusPrefix+top)
		if second != "" {
			code.CreateElement("samlp:StatusCode").CreateAttr("Value", statusPrefix+second)
		}
		firstChild(resp, nsProtocol, "Status").CreateElement("samlp:StatusMessage").SetText("user cancelled")
	}, resign{})
}

// ecKey is a fixed P-256 key for ECDSA cases.
var ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

const entraGroups = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"

func setNameID(a *etree.Element, v string) {
	firstChild(firstChild(a, nsAssertion, "Subject"), nsAssertion, "NameID").SetText(v)
}

func flipCipherValue(t testing.TB, resp *etree.Element, under string) {
	t.Helper()
	flipCipherByte(t, resp, under, func(n int) int { return n / 2 })
}

// flipCipherByte flips the lowest bit of byte at(len) of the first
// CipherValue under an element named under.
func flipCipherByte(t testing.TB, resp *etree.Element, under string, at func(n int) int) {
	t.Helper()
	var found *etree.Element
	for _, el := range resp.FindElements("//" + under) {
		found = el.FindElement("./CipherData/CipherValue")
		break
	}
	if found == nil {
		t.Fatalf("no %s CipherValue", under)
	}
	raw, err := base64.StdEncoding.DecodeString(found.Text())
	if err != nil {
		t.Fatal(err)
	}
	raw[at(len(raw))] ^= 1
	found.SetText(base64.StdEncoding.EncodeToString(raw))
}

func gcmEncrypter() xmlenc.Encrypter {
	e := xmlenc.OAEP_SHA256()
	e.BlockCipher = xmlenc.AES256GCM
	return e
}

// certValid is a certificate for the fixture IdP's key with the given
// validity.
func certValid(t *testing.T, f *fixture, from, to time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "expired idp"}, NotBefore: from, NotAfter: to}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, &f.idpKey.PublicKey, f.idpKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespaceFlood is a Response whose elements nest depth deep, each
// declaring perElement namespaces.
func namespaceFlood(depth, perElement int) string {
	var b strings.Builder
	b.WriteString(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`)
	for d := 0; d < depth; d++ {
		b.WriteString("<a")
		for i := 0; i < perElement; i++ {
			fmt.Fprintf(&b, ` xmlns:n%d_%d="urn:x:%d"`, d, i, i)
		}
		b.WriteString(">")
	}
	b.WriteString(strings.Repeat("</a>", depth))
	b.WriteString(`</samlp:Response>`)
	return b.String()
}

const oktaGroupsAttr = "groups"

// oktaStyle is a genuine response with groups named as Okta names them
// and shaped as Okta sends them: one Attribute, every AttributeValue
// declaring xs and xsi itself. It is signed (Response and Assertion) by
// the fixture's IdP.
func (f *fixture) oktaStyle(t testing.TB, groups int) string {
	t.Helper()
	s := defaultSession()
	s.Groups = nil
	values := make([]crewsaml.AttributeValue, groups)
	for i := range values {
		values[i] = crewsaml.AttributeValue{Type: "xs:string", Value: fmt.Sprintf("Engineering Team %04d", i)}
	}
	s.CustomAttributes = []crewsaml.Attribute{{Name: oktaGroupsAttr, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified", Values: values}}
	raw := string(mustDecode(t, f.issue(t, issue{requestID: f.pend("id-r"), session: s})))
	// Exclusive canonicalization drops a declaration whose prefix no
	// element or attribute name uses, so adding xs after signing changes
	// nothing signed, as with Okta's own responses.
	raw = strings.ReplaceAll(raw, "<saml:AttributeValue ", `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" `)
	return b64(raw)
}

// floodResponse is a Response whose root holds n children written by el.
func floodResponse(n int, el func(b *strings.Builder, i int)) string {
	var b strings.Builder
	b.WriteString(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="id-flood" Version="2.0">`)
	for i := range n {
		el(&b, i)
	}
	b.WriteString(`</samlp:Response>`)
	return b.String()
}

// smallElementFlood is n tiny elements: well inside the byte, depth and
// namespace bounds, yet each costs the parser and canonicalization as
// much as a real one.
func smallElementFlood(n int) string {
	return floodResponse(n, func(b *strings.Builder, _ int) { b.WriteString("<a>1</a>") })
}

// editRaw replaces the first old with new in the decoded XML of a
// SAMLResponse: for shapes etree cannot write, such as duplicate
// attributes.
func editRaw(t testing.TB, samlResponse, old, new string) string {
	t.Helper()
	raw := string(mustDecode(t, samlResponse))
	if !strings.Contains(raw, old) {
		t.Fatalf("response has no %q", old)
	}
	return b64(strings.Replace(raw, old, new, 1))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func mustDecode(t testing.TB, s string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func deflateB64(t *testing.T, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}
