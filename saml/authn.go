package saml

import (
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"
)

// AuthnRequestOptions are the per-login choices of an AuthnRequest.
type AuthnRequestOptions struct {
	// RelayState travels to the IdP and back unchanged; at most 80 bytes.
	// It is not protected: use an opaque handle, never a return URL.
	RelayState string
	// ForceAuthn asks the IdP to authenticate the user again.
	ForceAuthn bool
	// IsPassive asks the IdP not to interact with the user.
	IsPassive bool
	// RequestedAuthnContext lists AuthnContextClassRef URIs to request.
	RequestedAuthnContext []string
	// Comparison is exact (the default), minimum, maximum or better.
	Comparison string
}

// AuthnRequest is one SP-initiated login request, ready for the browser in
// both bindings. The caller stores ID as the pending request and later
// matches it against the Response's InResponseTo.
type AuthnRequest struct {
	ID           string
	IssueInstant time.Time
	// RedirectURL sends the request with the HTTP-Redirect binding, its
	// query signed when the connection signs requests. Empty when the IdP
	// has no HTTP-Redirect SingleSignOnService; use PostForm then.
	RedirectURL string

	post outbound
}

// PostForm returns an HTML page that posts the request to the IdP with the
// HTTP-POST binding, enveloped-signed when the connection signs requests.
// Its inline script auto-submits (allow it with PostFormScriptHash); a
// visible button covers browsers without script.
func (r *AuthnRequest) PostForm() ([]byte, error) { return r.post.form() }

var comparisons = map[string]bool{"": true, "exact": true, "minimum": true, "maximum": true, "better": true}

// NewAuthnRequest builds an AuthnRequest to the connection's IdP: a fresh
// ID from cfg.Rand, IssueInstant from cfg.Now, the ACS URL with the
// HTTP-POST ProtocolBinding, and NameIDPolicy with cfg.NameIDFormat.
func (sp *ServiceProvider) NewAuthnRequest(opts AuthnRequestOptions) (*AuthnRequest, error) {
	idp := sp.cfg.IdP
	if idp.SSORedirectURL == "" && idp.SSOPostURL == "" {
		return nil, errors.New("authn request: the IdP has no SingleSignOnService URL; load its metadata first")
	}
	if err := checkRelayState(opts.RelayState); err != nil {
		return nil, fmt.Errorf("authn request: %w", err)
	}
	if !comparisons[opts.Comparison] {
		return nil, fmt.Errorf("authn request: Comparison %q must be exact, minimum, maximum or better", opts.Comparison)
	}
	if opts.Comparison != "" && len(opts.RequestedAuthnContext) == 0 {
		return nil, errors.New("authn request: Comparison needs RequestedAuthnContext")
	}
	id, err := newMessageID(sp.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("authn request: %w", err)
	}
	now := sp.cfg.Now().UTC().Truncate(time.Millisecond)
	build := func(dest string) *etree.Element {
		el := sp.newProtocolElement("AuthnRequest", id, now, dest)
		el.CreateAttr("AssertionConsumerServiceURL", sp.acsURL)
		el.CreateAttr("ProtocolBinding", BindingHTTPPost)
		if opts.ForceAuthn {
			el.CreateAttr("ForceAuthn", "true")
		}
		if opts.IsPassive {
			el.CreateAttr("IsPassive", "true")
		}
		policy := el.CreateElement("samlp:NameIDPolicy")
		policy.CreateAttr("Format", sp.nameIDFormat())
		policy.CreateAttr("AllowCreate", "true")
		if len(opts.RequestedAuthnContext) > 0 {
			rac := el.CreateElement("samlp:RequestedAuthnContext")
			cmp := opts.Comparison
			if cmp == "" {
				cmp = "exact"
			}
			rac.CreateAttr("Comparison", cmp)
			for _, c := range opts.RequestedAuthnContext {
				rac.CreateElement("saml:AuthnContextClassRef").SetText(c)
			}
		}
		return el
	}
	req := &AuthnRequest{ID: id, IssueInstant: now}
	req.RedirectURL, req.post, err = sp.encodeOutbound("SAMLRequest", build, idp.SSORedirectURL, idp.SSOPostURL, opts.RelayState, sp.cfg.SignRequests)
	if err != nil {
		return nil, fmt.Errorf("authn request: %w", err)
	}
	return req, nil
}

// newProtocolElement starts a samlp message: ID, Version, IssueInstant,
// Destination and the SP's Issuer as its first child.
func (sp *ServiceProvider) newProtocolElement(tag, id string, now time.Time, dest string) *etree.Element {
	el := etree.NewElement("samlp:" + tag)
	el.CreateAttr("xmlns:samlp", nsSAMLP)
	el.CreateAttr("xmlns:saml", nsSAML)
	el.CreateAttr("ID", id)
	el.CreateAttr("Version", "2.0")
	el.CreateAttr("IssueInstant", samlTime(now))
	el.CreateAttr("Destination", dest)
	el.CreateElement("saml:Issuer").SetText(sp.entityID)
	return el
}

// encodeOutbound renders a message for each binding whose destination is
// known: build is called once per binding, since Destination differs.
// When sign is set and a SigningKey is configured, the message is signed: a
// query signature for HTTP-Redirect, an enveloped XML signature for
// HTTP-POST. AuthnRequests sign as cfg.SignRequests says; logout messages
// sign whenever there is a key, since SAML (profiles §4.4.3.1) requires
// them authenticated and IdPs such as Okta and crewjam's refuse unsigned
// ones.
func (sp *ServiceProvider) encodeOutbound(param string, build func(dest string) *etree.Element, redirectDest, postDest, relayState string, sign bool) (string, outbound, error) {
	post := outbound{param: param, relayState: relayState, postURL: postDest}
	var redirect string
	key := sp.cfg.SigningKey
	if !sign {
		key = nil
	}
	if redirectDest != "" {
		b, err := serialize(build(redirectDest))
		if err != nil {
			return "", post, err
		}
		if redirect, err = redirectURL(redirectDest, param, b, relayState, key, sp.cfg.Rand); err != nil {
			return "", post, err
		}
	}
	if postDest != "" {
		el := build(postDest)
		if key != nil {
			var err error
			if el, err = signEnveloped(el, key, sp.cfg.SigningCert); err != nil {
				return "", post, err
			}
		}
		b, err := serialize(el)
		if err != nil {
			return "", post, err
		}
		post.postXML = b
	}
	return redirect, post, nil
}
