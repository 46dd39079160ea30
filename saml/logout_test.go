package saml

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	_ "crypto/sha1" // SHA-1 query signatures in tests of their refusal
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// idpMessage is a LogoutRequest (or, with tag "LogoutResponse", a
// LogoutResponse) as the test IdP sends it to sp; edit may change it
// before it is signed.
func idpMessage(sp *ServiceProvider, tag string, edit func(*etree.Element)) *etree.Element {
	el := etree.NewElement("samlp:" + tag)
	el.CreateAttr("xmlns:samlp", nsSAMLP)
	el.CreateAttr("xmlns:saml", nsSAML)
	el.CreateAttr("ID", "_idp-msg-1")
	el.CreateAttr("Version", "2.0")
	el.CreateAttr("IssueInstant", samlTime(protoNow.Add(-2*time.Second)))
	el.CreateAttr("Destination", sp.SLOURL())
	el.CreateElement("saml:Issuer").SetText(testIdPEntity)
	if tag == "LogoutRequest" {
		el.CreateAttr("NotOnOrAfter", samlTime(protoNow.Add(time.Minute)))
		n := el.CreateElement("saml:NameID")
		n.CreateAttr("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
		n.SetText("alice@example.com")
		el.CreateElement("samlp:SessionIndex").SetText("_session-1")
	} else {
		el.CreateAttr("InResponseTo", "id-ours")
		el.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", StatusSuccess)
	}
	if edit != nil {
		edit(el)
	}
	return el
}

// idpRedirect encodes el for the HTTP-Redirect binding, signed with signer
// when it is not nil, and returns the raw query.
func idpRedirect(t *testing.T, param string, el *etree.Element, signer crypto.Signer) string {
	t.Helper()
	b, err := serialize(el)
	if err != nil {
		t.Fatal(err)
	}
	u, err := redirectURL("https://sso.example.com/saml/acme/slo", param, b, "rs-1", signer, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return rawQueryOf(t, u)
}

// idpPost encodes el for the HTTP-POST binding, enveloped-signed with k
// when it is not nil; cert goes into KeyInfo.
func idpPost(t *testing.T, param string, el *etree.Element, k *testKey, cert *x509.Certificate) url.Values {
	t.Helper()
	if k != nil {
		var err error
		if el, err = signEnveloped(el, k.signer, cert); err != nil {
			t.Fatal(err)
		}
	}
	b, err := serialize(el)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{param: {base64.StdEncoding.EncodeToString(b)}, "RelayState": {"rs-1"}}
}

// sha1Query is a redirect query signed with RSA-SHA1.
func sha1Query(t *testing.T, el *etree.Element, signer crypto.Signer) string {
	t.Helper()
	b, err := serialize(el)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := deflateBase64(b)
	if err != nil {
		t.Fatal(err)
	}
	q := "SAMLRequest=" + url.QueryEscape(msg) + "&RelayState=rs-1&SigAlg=" + url.QueryEscape(algRSASHA1)
	h := crypto.SHA1.New()
	h.Write([]byte(q))
	sig, err := signer.Sign(rand.Reader, h.Sum(nil), crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

func TestParseLogoutRequestAccepts(t *testing.T) {
	idp := key(t, "idp")
	ecIdP := key(t, "ec-idp")
	tests := []struct {
		name string
		cfg  func(*Config)
		in   func(t *testing.T, sp *ServiceProvider) Inbound
	}{
		{"redirect rsa", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), idp.signer))
		}},
		{"redirect ecdsa", func(c *Config) { c.IdP.Certificates = append(c.IdP.Certificates, ecIdP.cert) }, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), ecIdP.signer))
		}},
		{"redirect sha1 where allowed", func(c *Config) { c.AllowSHA1 = true }, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(sha1Query(t, idpMessage(sp, "LogoutRequest", nil), idp.signer))
		}},
		{"redirect lowercase percent-encoding (ADFS)", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			// Signed as sent: re-encoding the values would change %2f to
			// %2F and break the signature.
			raw := idpRedirect(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), nil)
			raw = strings.NewReplacer("%2F", "%2f", "%2B", "%2b", "%3D", "%3d").Replace(raw)
			signed := raw + "&SigAlg=" + strings.ToLower(url.QueryEscape(algRSASHA256))
			sig, err := signQuery(idp.signer, rand.Reader, signed)
			if err != nil {
				t.Fatal(err)
			}
			return RedirectMessage(signed + "&Signature=" + url.QueryEscape(sig))
		}},
		{"post rsa with keyinfo", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), &idp, idp.cert))
		}},
		{"post rsa without keyinfo, two pinned", func(c *Config) {
			c.IdP.Certificates = []*x509.Certificate{key(t, "idp-old").cert, idp.cert}
		}, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), &idp, nil))
		}},
		{"post ecdsa r||s", func(c *Config) { c.IdP.Certificates = []*x509.Certificate{ecIdP.cert} }, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), &ecIdP, ecIdP.cert))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestSP(t, tc.cfg)
			info, err := sp.ParseLogoutRequest(context.Background(), tc.in(t, sp), newMemReplay())
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != "_idp-msg-1" || info.Issuer != testIdPEntity || info.NameID != "alice@example.com" ||
				info.NameIDFormat != "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" ||
				len(info.SessionIndexes) != 1 || info.SessionIndexes[0] != "_session-1" || info.RelayState != "rs-1" ||
				!info.NotOnOrAfter.Equal(protoNow.Add(time.Minute)) {
				t.Errorf("info %+v", info)
			}
		})
	}
}

func TestParseLogoutRequestRejects(t *testing.T) {
	idp := key(t, "idp")
	other := key(t, "other")
	msg := func(sp *ServiceProvider, edit func(*etree.Element)) *etree.Element {
		return idpMessage(sp, "LogoutRequest", edit)
	}
	setAttr := func(k, v string) func(*etree.Element) { return func(el *etree.Element) { el.CreateAttr(k, v) } }
	tests := []struct {
		name   string
		cfg    func(*Config)
		in     func(t *testing.T, sp *ServiceProvider) Inbound
		reason Reason
	}{
		{"redirect unsigned", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, nil), nil))
		}, ReasonSignatureMissing},
		{"post unsigned", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", msg(sp, nil), nil, nil))
		}, ReasonSignatureMissing},
		{"redirect tampered relay state", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(strings.Replace(idpRedirect(t, "SAMLRequest", msg(sp, nil), idp.signer), "RelayState=rs-1", "RelayState=rs-2", 1))
		}, ReasonSignatureInvalid},
		{"redirect tampered message", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			good := idpRedirect(t, "SAMLRequest", msg(sp, nil), idp.signer)
			evil := idpRedirect(t, "SAMLRequest", msg(sp, func(el *etree.Element) {
				el.FindElement("./NameID").SetText("bob@example.com")
			}), nil)
			q, _ := url.ParseQuery(evil)
			gq, _ := url.ParseQuery(good)
			return RedirectMessage("SAMLRequest=" + url.QueryEscape(q.Get("SAMLRequest")) + "&RelayState=rs-1&SigAlg=" +
				url.QueryEscape(gq.Get("SigAlg")) + "&Signature=" + url.QueryEscape(gq.Get("Signature")))
		}, ReasonSignatureInvalid},
		{"redirect unpinned key", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, nil), other.signer))
		}, ReasonSignatureInvalid},
		{"redirect sha1 refused", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(sha1Query(t, msg(sp, nil), idp.signer))
		}, ReasonAlgorithmNotAllowed},
		{"redirect unknown sigalg", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(strings.Replace(idpRedirect(t, "SAMLRequest", msg(sp, nil), idp.signer), "rsa-sha256", "hmac-sha256", 1))
		}, ReasonAlgorithmNotAllowed},
		{"post tampered name id", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			signed, err := signEnveloped(msg(sp, nil), idp.signer, idp.cert)
			if err != nil {
				t.Fatal(err)
			}
			signed.FindElement("./NameID").SetText("bob@example.com")
			return PostMessage(idpPost(t, "SAMLRequest", signed, nil, nil))
		}, ReasonSignatureInvalid},
		{"post unpinned certificate in keyinfo", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", msg(sp, nil), &other, other.cert))
		}, ReasonCertificateNotTrusted},
		{"post unpinned key without keyinfo", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", msg(sp, nil), &other, nil))
		}, ReasonSignatureInvalid},
		{"post pinned certificate, other key", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", msg(sp, nil), &other, idp.cert))
		}, ReasonSignatureInvalid},
		{"pinned certificate expired", func(c *Config) { c.Now = func() time.Time { return time.Date(2041, 1, 1, 0, 0, 0, 0, time.UTC) } }, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, nil), idp.signer))
		}, ReasonCertificateNotTrusted},
		{"post signature references another element", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			signed, err := signEnveloped(msg(sp, nil), idp.signer, idp.cert)
			if err != nil {
				t.Fatal(err)
			}
			signed.CreateAttr("ID", "_other")
			return PostMessage(idpPost(t, "SAMLRequest", signed, nil, nil))
		}, ReasonSignatureInvalid},
		{"post signature over the whole document, no ID", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			// Reference URI="": a signature must name the message's own ID.
			signed, err := signEnveloped(msg(sp, func(el *etree.Element) { el.RemoveAttr("ID") }), idp.signer, idp.cert)
			if err != nil {
				t.Fatal(err)
			}
			return PostMessage(idpPost(t, "SAMLRequest", signed, nil, nil))
		}, ReasonSignatureInvalid},
		{"post sha1 digest refused", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			signed, err := signEnveloped(msg(sp, nil), idp.signer, idp.cert)
			if err != nil {
				t.Fatal(err)
			}
			signed.FindElement("./Signature/SignedInfo/Reference/DigestMethod").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")
			return PostMessage(idpPost(t, "SAMLRequest", signed, nil, nil))
		}, ReasonAlgorithmNotAllowed},
		{"no pinned certificates", func(c *Config) { c.IdP.Certificates = nil }, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, nil), idp.signer))
		}, ReasonCertificateNotTrusted},
		{"wrong issuer", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, func(el *etree.Element) {
				el.FindElement("./Issuer").SetText("https://evil.example")
			}), idp.signer))
		}, ReasonIssuerMismatch},
		{"wrong destination", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, setAttr("Destination", "https://sso.example.com/saml/other/slo")), idp.signer))
		}, ReasonDestinationMismatch},
		{"expired", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, setAttr("NotOnOrAfter", samlTime(protoNow.Add(-2*time.Minute)))), idp.signer))
		}, ReasonExpired},
		{"issued long ago", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, setAttr("IssueInstant", samlTime(protoNow.Add(-time.Hour)))), idp.signer))
		}, ReasonIssueInstantInvalid},
		{"issued in the future", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, setAttr("IssueInstant", samlTime(protoNow.Add(10*time.Minute)))), idp.signer))
		}, ReasonIssueInstantInvalid},
		{"version 1.1", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, setAttr("Version", "1.1")), idp.signer))
		}, ReasonUnsupportedVersion},
		{"no name id", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", msg(sp, func(el *etree.Element) {
				el.RemoveChild(el.FindElement("./NameID"))
			}), idp.signer))
		}, ReasonSubjectInvalid},
		{"response where a request is expected", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", idpMessage(sp, "LogoutResponse", nil), idp.signer))
		}, ReasonMalformedXML},
		{"dtd", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			b, _ := serialize(msg(sp, nil))
			b = append([]byte(`<!DOCTYPE x [<!ENTITY e "e">]>`), b...)
			return PostMessage(url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(b)}})
		}, ReasonForbiddenXML},
		{"duplicate SAMLRequest", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			q := idpRedirect(t, "SAMLRequest", msg(sp, nil), idp.signer)
			return RedirectMessage(q + "&SAMLRequest=x")
		}, ReasonMalformedEncoding},
		{"post two SAMLRequest values", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(url.Values{"SAMLRequest": {"a", "b"}})
		}, ReasonMalformedEncoding},
		{"bad base64", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return PostMessage(url.Values{"SAMLRequest": {"not base64!"}})
		}, ReasonMalformedEncoding},
		{"deflate bomb", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			bomb, err := deflateBase64(append([]byte("<a>"), bytes.Repeat([]byte(" "), 2<<20)...))
			if err != nil {
				t.Fatal(err)
			}
			return RedirectMessage("SAMLRequest=" + url.QueryEscape(bomb))
		}, ReasonBodyTooLarge},
		{"unknown binding", nil, func(t *testing.T, sp *ServiceProvider) Inbound {
			return Inbound{Binding: "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"}
		}, ReasonMalformedEncoding},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestSP(t, tc.cfg)
			info, err := sp.ParseLogoutRequest(context.Background(), tc.in(t, sp), newMemReplay())
			if info != nil {
				t.Errorf("info returned with error: %+v", info)
			}
			wantRejection(t, err, tc.reason)
		})
	}
}

func TestParseLogoutRequestContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sp := newTestSP(t, nil)
	if _, err := sp.ParseLogoutRequest(ctx, RedirectMessage(""), newMemReplay()); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v", err)
	}
}

// peers returns two SPs wired as each other's IdP: a signs with the named
// key (when not empty) and b trusts a.
func peers(t *testing.T, keyName string) (a, b *ServiceProvider) {
	t.Helper()
	const aEntity = "https://sso.example.com/saml/acme"
	const bSLO = "https://sso.example.com/saml/peer/slo"
	a = newTestSP(t, func(c *Config) {
		c.IdP.SLORedirectURL, c.IdP.SLOPostURL = bSLO, bSLO
		if keyName != "" {
			signing(t, keyName)(c)
		}
	})
	trusted := key(t, "sp-rsa").cert
	if keyName != "" {
		trusted = key(t, keyName).cert
	}
	b = newTestSP(t, func(c *Config) {
		c.ConnectionID = "peer"
		c.IdP.EntityID = aEntity
		c.IdP.Certificates = []*x509.Certificate{trusted}
	})
	if a.EntityID() != aEntity || b.SLOURL() != bSLO {
		t.Fatal("test URLs out of date")
	}
	return a, b
}

func TestLogoutRoundTrip(t *testing.T) {
	for _, keyName := range []string{"sp-rsa", "ec-sp"} {
		for _, binding := range []string{BindingHTTPRedirect, BindingHTTPPost} {
			t.Run(keyName+" "+bindingName(binding), func(t *testing.T) {
				a, b := peers(t, keyName)
				req, err := a.NewLogoutRequest("alice@example.com", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "_s1", "rs")
				if err != nil {
					t.Fatal(err)
				}
				in := inboundOf(t, binding, req.RedirectURL, req.PostForm)
				info, err := b.ParseLogoutRequest(context.Background(), in, newMemReplay())
				if err != nil {
					t.Fatal(err)
				}
				if info.ID != req.ID || info.NameID != "alice@example.com" || info.SessionIndexes[0] != "_s1" ||
					info.RelayState != "rs" || info.Reason != logoutReasonUser || !info.IssueInstant.Equal(protoNow) {
					t.Errorf("info %+v", info)
				}

				resp, err := b.NewLogoutResponse(info.ID, StatusSuccess, info.RelayState)
				if err != nil {
					t.Fatal(err)
				}
				// b answers to a's SLO URL: wire a's IdP to b.
				a2 := newTestSP(t, func(c *Config) {
					c.IdP.EntityID = b.EntityID()
					c.IdP.Certificates = []*x509.Certificate{key(t, keyName).cert}
				})
				b2 := newTestSP(t, func(c *Config) {
					c.ConnectionID = "peer"
					c.IdP.SLORedirectURL, c.IdP.SLOPostURL = a2.SLOURL(), a2.SLOURL()
					signing(t, keyName)(c)
				})
				resp, err = b2.NewLogoutResponse(info.ID, StatusSuccess, info.RelayState)
				if err != nil {
					t.Fatal(err)
				}
				rinfo, err := a2.ParseLogoutResponse(context.Background(), inboundOf(t, binding, resp.RedirectURL, resp.PostForm))
				if err != nil {
					t.Fatal(err)
				}
				if !rinfo.Success() || rinfo.InResponseTo != req.ID || rinfo.ID != resp.ID || rinfo.RelayState != "rs" {
					t.Errorf("response info %+v", rinfo)
				}
			})
		}
	}
	t.Run("unsigned is refused", func(t *testing.T) {
		a, b := peers(t, "")
		req, err := a.NewLogoutRequest("alice", "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, binding := range []string{BindingHTTPRedirect, BindingHTTPPost} {
			_, err := b.ParseLogoutRequest(context.Background(), inboundOf(t, binding, req.RedirectURL, req.PostForm), newMemReplay())
			wantRejection(t, err, ReasonSignatureMissing)
		}
	})
}

// inboundOf turns an outbound message into what the receiving server sees.
func inboundOf(t *testing.T, binding, redirect string, form func() ([]byte, error)) Inbound {
	t.Helper()
	if binding == BindingHTTPRedirect {
		return RedirectMessage(rawQueryOf(t, redirect))
	}
	page, err := form()
	if err != nil {
		t.Fatal(err)
	}
	return PostMessage(postFields(t, page))
}

func TestNewLogoutRequestContent(t *testing.T) {
	sp := newTestSP(t, nil)
	req, err := sp.NewLogoutRequest("alice", "urn:f", "_s1", "")
	if err != nil {
		t.Fatal(err)
	}
	el := decodeRedirect(t, req.RedirectURL, "SAMLRequest")
	if el.SelectAttrValue("Destination", "") != testIdPSLO || el.SelectAttrValue("NotOnOrAfter", "") != "2027-06-01T12:05:00.000Z" ||
		el.FindElement("./Issuer").Text() != sp.EntityID() || el.FindElement("./NameID").SelectAttrValue("Format", "") != "urn:f" ||
		el.FindElement("./SessionIndex").Text() != "_s1" {
		s, _ := serialize(el)
		t.Errorf("LogoutRequest:\n%s", s)
	}
	for name, f := range map[string]func() error{
		"no name id":      func() error { _, err := sp.NewLogoutRequest("", "", "", ""); return err },
		"long relay":      func() error { _, err := sp.NewLogoutRequest("a", "", "", strings.Repeat("x", 81)); return err },
		"no slo":          func() error { _, err := newTestSP(t, noSLO).NewLogoutRequest("a", "", "", ""); return err },
		"resp no slo":     func() error { _, err := newTestSP(t, noSLO).NewLogoutResponse("id", StatusSuccess, ""); return err },
		"resp bad status": func() error { _, err := sp.NewLogoutResponse("id", StatusPartialLogout, ""); return err },
		"resp no irt":     func() error { _, err := sp.NewLogoutResponse("", StatusSuccess, ""); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func noSLO(c *Config) { c.IdP.SLORedirectURL, c.IdP.SLOPostURL = "", "" }

func TestNewLogoutResponseUsesResponseLocation(t *testing.T) {
	sp := newTestSP(t, func(c *Config) { c.IdP.SLOResponseURL = "https://idp.example.com/slo/response" })
	resp, err := sp.NewLogoutResponse("_req", StatusResponder, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.RedirectURL, "https://idp.example.com/slo/response?") {
		t.Errorf("URL %s", resp.RedirectURL)
	}
	el := decodeRedirect(t, resp.RedirectURL, "SAMLResponse")
	if el.SelectAttrValue("InResponseTo", "") != "_req" || el.FindElement("./Status/StatusCode").SelectAttrValue("Value", "") != StatusResponder {
		t.Error("wrong InResponseTo or status")
	}
}

func TestParseLogoutResponse(t *testing.T) {
	idp := key(t, "idp")
	tests := []struct {
		name   string
		edit   func(*etree.Element)
		status string
		sub    string
		reason Reason
	}{
		{"success", nil, StatusSuccess, "", ""},
		{"partial", func(el *etree.Element) {
			sc := el.FindElement("./Status/StatusCode")
			sc.CreateAttr("Value", StatusResponder)
			sc.CreateElement("samlp:StatusCode").CreateAttr("Value", StatusPartialLogout)
			el.FindElement("./Status").CreateElement("samlp:StatusMessage").SetText(" other sessions remain ")
		}, StatusResponder, StatusPartialLogout, ""},
		{"no in response to", func(el *etree.Element) { el.RemoveAttr("InResponseTo") }, "", "", ReasonInResponseToUnknown},
		{"no status", func(el *etree.Element) { el.RemoveChild(el.FindElement("./Status")) }, "", "", ReasonMalformedXML},
		{"wrong issuer", func(el *etree.Element) { el.FindElement("./Issuer").SetText("x") }, "", "", ReasonIssuerMismatch},
	}
	for _, tc := range tests {
		for _, binding := range []string{BindingHTTPRedirect, BindingHTTPPost} {
			t.Run(tc.name+" "+bindingName(binding), func(t *testing.T) {
				sp := newTestSP(t, nil)
				el := idpMessage(sp, "LogoutResponse", tc.edit)
				var in Inbound
				if binding == BindingHTTPRedirect {
					in = RedirectMessage(idpRedirect(t, "SAMLResponse", el, idp.signer))
				} else {
					in = PostMessage(idpPost(t, "SAMLResponse", el, &idp, idp.cert))
				}
				info, err := sp.ParseLogoutResponse(context.Background(), in)
				if tc.reason != "" {
					wantRejection(t, err, tc.reason)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if info.Status != tc.status || info.SubStatus != tc.sub || info.InResponseTo != "id-ours" || info.Success() != (tc.status == StatusSuccess) {
					t.Errorf("info %+v", info)
				}
				if tc.sub != "" && info.StatusMessage != "other sessions remain" {
					t.Errorf("StatusMessage %q", info.StatusMessage)
				}
			})
		}
	}
}

// TestParseLogoutRequestFromCrewjam has crewjam/saml sign the LogoutRequest,
// as an independent implementation of both bindings.
func TestParseLogoutRequestFromCrewjam(t *testing.T) {
	idp := key(t, "idp")
	for _, binding := range []string{BindingHTTPRedirect, BindingHTTPPost} {
		t.Run(bindingName(binding), func(t *testing.T) {
			sp := newTestSP(t, nil)
			peer := &crewjam.ServiceProvider{
				EntityID:        testIdPEntity,
				Key:             idp.signer,
				Certificate:     idp.cert,
				SignatureMethod: dsig.RSASHA256SignatureMethod,
				Clock:           dsig.NewFakeClockAt(protoNow),
				IDPMetadata: &crewjam.EntityDescriptor{
					EntityID: sp.EntityID(),
					IDPSSODescriptors: []crewjam.IDPSSODescriptor{{SSODescriptor: crewjam.SSODescriptor{
						SingleLogoutServices: []crewjam.Endpoint{
							{Binding: BindingHTTPRedirect, Location: sp.SLOURL()},
							{Binding: BindingHTTPPost, Location: sp.SLOURL()},
						},
					}}},
				},
			}
			var in Inbound
			if binding == BindingHTTPRedirect {
				u, err := peer.MakeRedirectLogoutRequest("alice@example.com", "rs-9")
				if err != nil {
					t.Fatal(err)
				}
				in = RedirectMessage(u.RawQuery)
			} else {
				page, err := peer.MakePostLogoutRequest("alice@example.com", "rs-9")
				if err != nil {
					t.Fatal(err)
				}
				in = PostMessage(postFields(t, page))
			}
			info, err := sp.ParseLogoutRequest(context.Background(), in, newMemReplay())
			if err != nil {
				t.Fatalf("crewjam's signed LogoutRequest refused: %v", err)
			}
			if info.NameID != "alice@example.com" || info.RelayState != "rs-9" || info.Issuer != testIdPEntity {
				t.Errorf("info %+v", info)
			}
		})
	}
}

// TestLogoutRequestReplay: a signed LogoutRequest is acted on once, with
// or without SessionIndex, in either binding; its ID is kept in the replay
// cache until the request would be refused by its time checks anyway.
func TestLogoutRequestReplay(t *testing.T) {
	idp := key(t, "idp")
	for _, tc := range []struct {
		name string
		edit func(*etree.Element)
		in   func(t *testing.T, el *etree.Element) Inbound
		// expires is when the replay-cache entry may go.
		expires time.Time
	}{
		{name: "redirect with SessionIndex", in: func(t *testing.T, el *etree.Element) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", el, idp.signer))
		}, expires: protoNow.Add(time.Minute + DefaultClockSkew)},
		{name: "post without SessionIndex", edit: func(el *etree.Element) {
			el.RemoveChild(el.SelectElement("SessionIndex"))
		}, in: func(t *testing.T, el *etree.Element) Inbound {
			return PostMessage(idpPost(t, "SAMLRequest", el, &idp, idp.cert))
		}, expires: protoNow.Add(time.Minute + DefaultClockSkew)},
		{name: "no NotOnOrAfter: kept for the issue age", edit: func(el *etree.Element) {
			el.RemoveAttr("NotOnOrAfter")
		}, in: func(t *testing.T, el *etree.Element) Inbound {
			return RedirectMessage(idpRedirect(t, "SAMLRequest", el, idp.signer))
		}, expires: protoNow.Add(-2*time.Second + DefaultMaxIssueAge + DefaultClockSkew)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestSP(t, nil)
			replay := newMemReplay()
			in := tc.in(t, idpMessage(sp, "LogoutRequest", tc.edit))
			info, err := sp.ParseLogoutRequest(context.Background(), in, replay)
			if err != nil {
				t.Fatal(err)
			}
			if got := replay.seen[info.ID]; !got.Equal(tc.expires) {
				t.Errorf("replay entry expires %s, want %s", got, tc.expires)
			}
			if want := protoNow.Add(-2*time.Second + DefaultClockSkew); !info.SessionsBefore.Equal(want) {
				t.Errorf("SessionsBefore = %s, want IssueInstant plus skew %s", info.SessionsBefore, want)
			}
			_, err = sp.ParseLogoutRequest(context.Background(), in, replay)
			wantRejection(t, err, ReasonAssertionReplayed)
		})
	}
	t.Run("refused requests are not recorded", func(t *testing.T) {
		sp := newTestSP(t, nil)
		replay := newMemReplay()
		el := idpMessage(sp, "LogoutRequest", func(el *etree.Element) { el.CreateAttr("Destination", "https://elsewhere.example/slo") })
		_, err := sp.ParseLogoutRequest(context.Background(), RedirectMessage(idpRedirect(t, "SAMLRequest", el, idp.signer)), replay)
		wantRejection(t, err, ReasonDestinationMismatch)
		if replay.calls != 0 {
			t.Errorf("a refused LogoutRequest reached the replay cache")
		}
	})
	t.Run("store failure is internal", func(t *testing.T) {
		sp := newTestSP(t, nil)
		in := RedirectMessage(idpRedirect(t, "SAMLRequest", idpMessage(sp, "LogoutRequest", nil), idp.signer))
		_, err := sp.ParseLogoutRequest(context.Background(), in, failingReplay{})
		wantRejection(t, err, ReasonInternal)
	})
}

func newMemReplay() *memReplay { return &memReplay{seen: map[string]time.Time{}} }

func wantRejection(t *testing.T, err error, reason Reason) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error = %v, want a *saml.Error with reason %s", err, reason)
	}
	if se.Reason != reason {
		t.Fatalf("reason %s (%s), want %s", se.Reason, se.Message, reason)
	}
}
