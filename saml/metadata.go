package saml

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// MaxMetadataBytes bounds IdP metadata documents. Single-IdP metadata is a
// few KiB; federation aggregates (InCommon, eduGAIN) are not supported.
const MaxMetadataBytes = 4 << 20

// minRSABits is the smallest RSA signing key accepted from metadata.
const minRSABits = 2048

// ParseIdPMetadata is ParseIdPMetadataAt at the current time.
func ParseIdPMetadata(data []byte, entityID string) (IdentityProvider, error) {
	return ParseIdPMetadataAt(data, entityID, time.Now())
}

// ParseIdPMetadataAt reads an IdP's SAML metadata: an EntityDescriptor, or
// an EntitiesDescriptor from which the entity named entityID is taken
// (entityID may be empty when the document holds exactly one IdP). It
// returns the SSO and SLO endpoints for the HTTP-Redirect and HTTP-POST
// bindings and every signing certificate (KeyDescriptor use="signing" or
// without use). Metadata whose validUntil is before now is refused.
//
// Errors are worded for the IdP admin who supplied the document. Role
// descriptors other than IDPSSODescriptor (Entra ID's fed:* RoleDescriptors,
// SPSSODescriptor, AttributeAuthorityDescriptor) are ignored. Metadata
// signatures are not checked: the document is trusted as the admin's input.
func ParseIdPMetadataAt(data []byte, entityID string, now time.Time) (IdentityProvider, error) {
	root, err := parseXML(data, MaxMetadataBytes, defaultXMLLimits)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return IdentityProvider{}, fmt.Errorf("idp metadata: %s", se.Message)
		}
		return IdentityProvider{}, fmt.Errorf("idp metadata: %w", err)
	}
	var entities []entityCandidate
	switch {
	case root.Tag == "EntityDescriptor" && root.NamespaceURI() == nsMD:
		entities = []entityCandidate{{el: root}}
	case root.Tag == "EntitiesDescriptor" && root.NamespaceURI() == nsMD:
		collectEntities(root, time.Time{}, &entities)
	default:
		return IdentityProvider{}, fmt.Errorf("idp metadata: the document is a <%s>, expected a SAML 2.0 metadata EntityDescriptor or EntitiesDescriptor (namespace %s)", root.Tag, nsMD)
	}
	ent, err := pickEntity(entities, entityID)
	if err != nil {
		return IdentityProvider{}, fmt.Errorf("idp metadata: %w", err)
	}
	idp, err := readIdP(ent, now)
	if err != nil {
		return IdentityProvider{}, fmt.Errorf("idp metadata for %q: %w", entityIDOf(ent.el), err)
	}
	return idp, nil
}

type entityCandidate struct {
	el         *etree.Element
	validUntil time.Time // earliest validUntil of the enclosing EntitiesDescriptors
}

func collectEntities(el *etree.Element, validUntil time.Time, out *[]entityCandidate) {
	if vu, err := parseValidUntil(el); err == nil {
		validUntil = earliest(validUntil, vu)
	}
	for _, c := range el.ChildElements() {
		if c.NamespaceURI() != nsMD {
			continue
		}
		switch c.Tag {
		case "EntityDescriptor":
			*out = append(*out, entityCandidate{el: c, validUntil: validUntil})
		case "EntitiesDescriptor":
			collectEntities(c, validUntil, out)
		}
	}
}

func pickEntity(entities []entityCandidate, entityID string) (entityCandidate, error) {
	var idps []entityCandidate
	var ids []string
	for _, e := range entities {
		if len(directChildren(e.el, nsMD, "IDPSSODescriptor")) == 0 {
			continue
		}
		idps = append(idps, e)
		ids = append(ids, entityIDOf(e.el))
	}
	if entityID == "" {
		switch {
		case len(entities) == 1:
			return entities[0], nil
		case len(idps) == 1:
			return idps[0], nil
		case len(idps) == 0:
			return entityCandidate{}, errors.New("the document has no EntityDescriptor with an IDPSSODescriptor")
		default:
			return entityCandidate{}, fmt.Errorf("the document describes %d identity providers; name the entity ID to use, one of: %s", len(idps), strings.Join(ids, ", "))
		}
	}
	var found []entityCandidate
	for _, e := range entities {
		if entityIDOf(e.el) == strings.TrimSpace(entityID) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		if len(ids) == 0 {
			return entityCandidate{}, fmt.Errorf("the document has no entity %q, and no identity provider at all", entityID)
		}
		return entityCandidate{}, fmt.Errorf("the document has no entity %q; its identity providers are: %s", entityID, strings.Join(ids, ", "))
	default:
		return entityCandidate{}, fmt.Errorf("the document describes entity %q %d times; it is ambiguous", entityID, len(found))
	}
}

// entityIDOf is an EntityDescriptor's entityID, an xs:anyURI whose
// surrounding white space does not count.
func entityIDOf(el *etree.Element) string {
	return strings.TrimSpace(el.SelectAttrValue("entityID", ""))
}

func readIdP(ent entityCandidate, now time.Time) (IdentityProvider, error) {
	el := ent.el
	idp := IdentityProvider{EntityID: entityIDOf(el)}
	if idp.EntityID == "" {
		return idp, errors.New("the EntityDescriptor has no entityID")
	}
	vu, err := parseValidUntil(el)
	if err != nil {
		return idp, err
	}
	idp.ValidUntil = earliest(ent.validUntil, vu)
	if !idp.ValidUntil.IsZero() && now.After(idp.ValidUntil) {
		return idp, fmt.Errorf("the metadata expired at %s (validUntil); download fresh metadata from the IdP", idp.ValidUntil.UTC().Format(time.RFC3339))
	}
	var sso *etree.Element
	descs := directChildren(el, nsMD, "IDPSSODescriptor")
	if len(descs) == 0 {
		return idp, errors.New("the metadata has no IDPSSODescriptor; is this the metadata of a service provider rather than the identity provider?")
	}
	for _, d := range descs {
		if slices.Contains(strings.Fields(d.SelectAttrValue("protocolSupportEnumeration", "")), nsSAMLP) {
			sso = d
			break
		}
	}
	if sso == nil {
		return idp, fmt.Errorf("no IDPSSODescriptor supports SAML 2.0 (protocolSupportEnumeration lacks %s)", nsSAMLP)
	}
	if idp.Certificates, err = signingCerts(sso); err != nil {
		return idp, err
	}
	if err := readSSOEndpoints(sso, &idp); err != nil {
		return idp, err
	}
	if err := readSLOEndpoints(sso, &idp); err != nil {
		return idp, err
	}
	return idp, nil
}

func parseValidUntil(el *etree.Element) (time.Time, error) {
	v := strings.TrimSpace(el.SelectAttrValue("validUntil", ""))
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("validUntil %q is not an xs:dateTime", v)
	}
	return t, nil
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// signingCerts returns the certificates of the descriptor's signing
// KeyDescriptors, in document order, without duplicates.
func signingCerts(sso *etree.Element) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	n := 0
	for _, kd := range directChildren(sso, nsMD, "KeyDescriptor") {
		if use := kd.SelectAttrValue("use", ""); use != "" && use != "signing" {
			continue
		}
		for _, ki := range directChildren(kd, nsDS, "KeyInfo") {
			for _, xd := range directChildren(ki, nsDS, "X509Data") {
				for _, xc := range directChildren(xd, nsDS, "X509Certificate") {
					n++
					c, err := parseMetadataCert(xc.Text())
					if err != nil {
						return nil, fmt.Errorf("signing certificate %d %w", n, err)
					}
					if !slices.ContainsFunc(certs, c.Equal) {
						certs = append(certs, c)
					}
				}
			}
		}
	}
	if len(certs) == 0 {
		return nil, errors.New(`the IDPSSODescriptor has no signing certificate (a KeyDescriptor with use="signing" or no use, holding a ds:X509Certificate)`)
	}
	return certs, nil
}

func parseMetadataCert(text string) (*x509.Certificate, error) {
	text = strings.Join(strings.Fields(text), "")
	text = strings.TrimPrefix(strings.TrimSuffix(text, "-----ENDCERTIFICATE-----"), "-----BEGINCERTIFICATE-----")
	der, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("is not valid base64 DER: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("is not valid base64 DER: %v", err)
	}
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("(%s) has a %d-bit RSA key; at least %d bits are required", c.Subject, k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("(%s) has a %s key; only RSA and ECDSA keys are supported", c.Subject, c.PublicKeyAlgorithm)
	}
	return c, nil
}

// readSSOEndpoints picks the first SingleSignOnService of each supported
// binding.
func readSSOEndpoints(sso *etree.Element, idp *IdentityProvider) error {
	var seen []string
	for _, s := range directChildren(sso, nsMD, "SingleSignOnService") {
		binding := s.SelectAttrValue("Binding", "")
		seen = append(seen, bindingName(binding))
		var dst *string
		switch binding {
		case BindingHTTPRedirect:
			dst = &idp.SSORedirectURL
		case BindingHTTPPost:
			dst = &idp.SSOPostURL
		default:
			continue
		}
		if *dst != "" {
			continue
		}
		loc, err := endpointURL("SingleSignOnService", bindingName(binding), s.SelectAttrValue("Location", ""))
		if err != nil {
			return err
		}
		*dst = loc
	}
	if idp.SSORedirectURL == "" && idp.SSOPostURL == "" {
		found := "none"
		if len(seen) > 0 {
			found = strings.Join(seen, ", ")
		}
		return fmt.Errorf("no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding (found: %s)", found)
	}
	return nil
}

func readSLOEndpoints(sso *etree.Element, idp *IdentityProvider) error {
	for _, s := range directChildren(sso, nsMD, "SingleLogoutService") {
		binding := s.SelectAttrValue("Binding", "")
		var dst *string
		switch binding {
		case BindingHTTPRedirect:
			dst = &idp.SLORedirectURL
		case BindingHTTPPost:
			dst = &idp.SLOPostURL
		default:
			continue
		}
		if *dst != "" {
			continue
		}
		loc, err := endpointURL("SingleLogoutService", bindingName(binding), s.SelectAttrValue("Location", ""))
		if err != nil {
			return err
		}
		*dst = loc
		if rl := s.SelectAttrValue("ResponseLocation", ""); rl != "" && idp.SLOResponseURL == "" {
			if idp.SLOResponseURL, err = endpointURL("SingleLogoutService ResponseLocation", bindingName(binding), rl); err != nil {
				return err
			}
		}
	}
	return nil
}

func endpointURL(what, binding, loc string) (string, error) {
	loc = strings.TrimSpace(loc)
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return "", fmt.Errorf("the %s %s Location %q is not an absolute http(s) URL", binding, what, loc)
	}
	return loc, nil
}

// bindingName shortens a binding URI for messages: "HTTP-POST".
func bindingName(uri string) string {
	if i := strings.LastIndex(uri, ":"); i >= 0 && strings.HasPrefix(uri, "urn:oasis:names:tc:SAML:") {
		return uri[i+1:]
	}
	if uri == "" {
		return "(no Binding)"
	}
	return uri
}

// Metadata returns the SP's SAML metadata for the IdP admin: entity ID,
// ACS (HTTP-POST, index 0, default), SLO (HTTP-Redirect and HTTP-POST),
// NameIDFormat, and the signing and encryption certificates when
// configured. It is unsigned.
func (sp *ServiceProvider) Metadata() ([]byte, error) {
	cfg := sp.cfg
	ed := etree.NewElement("md:EntityDescriptor")
	ed.CreateAttr("xmlns:md", nsMD)
	ed.CreateAttr("xmlns:ds", nsDS)
	ed.CreateAttr("entityID", sp.entityID)
	d := ed.CreateElement("md:SPSSODescriptor")
	d.CreateAttr("AuthnRequestsSigned", fmt.Sprint(cfg.SignRequests))
	d.CreateAttr("WantAssertionsSigned", "true")
	d.CreateAttr("protocolSupportEnumeration", nsSAMLP)
	// During a rotation both certificates of a use are published, the
	// next one beside the current one: verifiers try every signing key,
	// and an IdP that encrypts to the first encryption key moves to the
	// next one as soon as it reads this metadata.
	for _, c := range []*x509.Certificate{cfg.SigningCert, cfg.NextSigningCert} {
		if c != nil {
			addKeyDescriptor(d, "signing", c, nil)
		}
	}
	if cfg.EncryptionCert != nil || cfg.NextEncryptionCert != nil {
		methods := []string{
			"http://www.w3.org/2009/xmlenc11#aes256-gcm",
			"http://www.w3.org/2009/xmlenc11#aes128-gcm",
			"http://www.w3.org/2009/xmlenc11#rsa-oaep",
			"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
		}
		if cfg.AllowLegacyEncryption {
			methods = append(methods,
				"http://www.w3.org/2001/04/xmlenc#aes256-cbc",
				"http://www.w3.org/2001/04/xmlenc#aes128-cbc",
				"http://www.w3.org/2001/04/xmlenc#rsa-1_5")
		}
		for _, c := range []*x509.Certificate{cfg.NextEncryptionCert, cfg.EncryptionCert} {
			if c != nil {
				addKeyDescriptor(d, "encryption", c, methods)
			}
		}
	}
	for _, b := range []string{BindingHTTPRedirect, BindingHTTPPost} {
		slo := d.CreateElement("md:SingleLogoutService")
		slo.CreateAttr("Binding", b)
		slo.CreateAttr("Location", sp.sloURL)
	}
	d.CreateElement("md:NameIDFormat").SetText(sp.nameIDFormat())
	acs := d.CreateElement("md:AssertionConsumerService")
	acs.CreateAttr("Binding", BindingHTTPPost)
	acs.CreateAttr("Location", sp.acsURL)
	acs.CreateAttr("index", "0")
	acs.CreateAttr("isDefault", "true")
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	doc.SetRoot(ed)
	doc.Indent(2)
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("sp metadata: %w", err)
	}
	return b, nil
}

func addKeyDescriptor(parent *etree.Element, use string, cert *x509.Certificate, methods []string) {
	kd := parent.CreateElement("md:KeyDescriptor")
	kd.CreateAttr("use", use)
	kd.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
		SetText(base64.StdEncoding.EncodeToString(cert.Raw))
	for _, m := range methods {
		kd.CreateElement("md:EncryptionMethod").CreateAttr("Algorithm", m)
	}
}

const nameIDFormatUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"

func (sp *ServiceProvider) nameIDFormat() string {
	if sp.cfg.NameIDFormat != "" {
		return sp.cfg.NameIDFormat
	}
	return nameIDFormatUnspecified
}
