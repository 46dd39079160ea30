package saml

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Logout status codes (saml-core §3.2.2.2).
const (
	StatusSuccess          = "urn:oasis:names:tc:SAML:2.0:status:Success"
	StatusRequester        = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	StatusResponder        = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	StatusPartialLogout    = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout" // second-level only
	logoutReasonUser       = "urn:oasis:names:tc:SAML:2.0:logout:user"
	defaultLogoutValidity  = 5 * time.Minute
	maxLogoutSessionIndex  = 64
	maxLogoutStatusMessage = 512
)

// Inbound is one SAML message as the browser delivered it to the SLO
// endpoint. Build it with RedirectMessage or PostMessage.
type Inbound struct {
	Binding string
	// RawQuery is r.URL.RawQuery exactly as received (HTTP-Redirect): the
	// query signature covers these octets, so they must not be re-encoded.
	RawQuery string
	// Form is the parsed POST body (HTTP-POST).
	Form url.Values
}

// RedirectMessage is a message received with the HTTP-Redirect binding;
// pass r.URL.RawQuery.
func RedirectMessage(rawQuery string) Inbound {
	return Inbound{Binding: BindingHTTPRedirect, RawQuery: rawQuery}
}

// PostMessage is a message received with the HTTP-POST binding; pass
// r.PostForm.
func PostMessage(form url.Values) Inbound {
	return Inbound{Binding: BindingHTTPPost, Form: form}
}

// LogoutRequest is an SP-initiated logout request, ready for the browser in
// both bindings. The caller keeps ID to match the IdP's LogoutResponse.
type LogoutRequest struct {
	ID           string
	IssueInstant time.Time
	// RedirectURL sends the request with the HTTP-Redirect binding; empty
	// when the IdP has no HTTP-Redirect SingleLogoutService.
	RedirectURL string

	post outbound
}

// PostForm returns the HTML page of the HTTP-POST binding (see
// AuthnRequest.PostForm).
func (r *LogoutRequest) PostForm() ([]byte, error) { return r.post.form() }

// LogoutResponse is the SP's answer to an IdP-initiated LogoutRequest.
type LogoutResponse struct {
	ID           string
	IssueInstant time.Time
	// RedirectURL sends the response with the HTTP-Redirect binding; empty
	// when the IdP has no HTTP-Redirect SingleLogoutService.
	RedirectURL string

	post outbound
}

// PostForm returns the HTML page of the HTTP-POST binding (see
// AuthnRequest.PostForm).
func (r *LogoutResponse) PostForm() ([]byte, error) { return r.post.form() }

// LogoutRequestInfo is a verified IdP-initiated LogoutRequest. Every value
// came from the signed message.
type LogoutRequestInfo struct {
	ID             string
	Issuer         string
	NameID         string
	NameIDFormat   string
	SessionIndexes []string
	IssueInstant   time.Time
	NotOnOrAfter   time.Time // zero when absent
	// SessionsBefore is the latest creation time of a session this request
	// may end: IssueInstant plus the clock skew. A session created later
	// began after the IdP sent the request (a delayed or replayed one must
	// not end a new login).
	SessionsBefore time.Time
	Reason         string
	RelayState     string
	Binding        string
}

// LogoutResponseInfo is a verified LogoutResponse from the IdP. The caller
// matches InResponseTo against the LogoutRequest it sent.
type LogoutResponseInfo struct {
	ID           string
	Issuer       string
	InResponseTo string
	IssueInstant time.Time
	// Status is the top-level status code; Success says the IdP ended the
	// session. SubStatus (e.g. PartialLogout) and StatusMessage are as sent.
	Status        string
	SubStatus     string
	StatusMessage string
	RelayState    string
	Binding       string
}

// Success reports whether the IdP logged the session out.
func (i *LogoutResponseInfo) Success() bool { return i.Status == StatusSuccess }

// NewLogoutRequest builds an SP-initiated LogoutRequest for the session the
// IdP named nameID (with its Format) and sessionIndex (may be empty).
func (sp *ServiceProvider) NewLogoutRequest(nameID, nameIDFormat, sessionIndex, relayState string) (*LogoutRequest, error) {
	idp := sp.cfg.IdP
	if idp.SLORedirectURL == "" && idp.SLOPostURL == "" {
		return nil, errors.New("logout request: the IdP has no SingleLogoutService URL")
	}
	if nameID == "" {
		return nil, errors.New("logout request: NameID is required")
	}
	if err := checkRelayState(relayState); err != nil {
		return nil, fmt.Errorf("logout request: %w", err)
	}
	id, err := newMessageID(sp.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("logout request: %w", err)
	}
	now := sp.cfg.Now().UTC().Truncate(time.Millisecond)
	build := func(dest string) *etree.Element {
		el := sp.newProtocolElement("LogoutRequest", id, now, dest)
		el.CreateAttr("NotOnOrAfter", samlTime(now.Add(defaultLogoutValidity)))
		el.CreateAttr("Reason", logoutReasonUser)
		n := el.CreateElement("saml:NameID")
		if nameIDFormat != "" {
			n.CreateAttr("Format", nameIDFormat)
		}
		n.SetText(nameID)
		if sessionIndex != "" {
			el.CreateElement("samlp:SessionIndex").SetText(sessionIndex)
		}
		return el
	}
	req := &LogoutRequest{ID: id, IssueInstant: now}
	req.RedirectURL, req.post, err = sp.encodeOutbound("SAMLRequest", build, idp.SLORedirectURL, idp.SLOPostURL, relayState, true)
	if err != nil {
		return nil, fmt.Errorf("logout request: %w", err)
	}
	return req, nil
}

// NewLogoutResponse answers the IdP's LogoutRequest inResponseTo with a
// status code (StatusSuccess, or e.g. StatusResponder when the session
// could not be ended). It goes to the IdP's SLO ResponseLocation when the
// metadata names one.
func (sp *ServiceProvider) NewLogoutResponse(inResponseTo, status, relayState string) (*LogoutResponse, error) {
	idp := sp.cfg.IdP
	redirectDest, postDest := idp.SLORedirectURL, idp.SLOPostURL
	if idp.SLOResponseURL != "" {
		if redirectDest != "" {
			redirectDest = idp.SLOResponseURL
		}
		if postDest != "" {
			postDest = idp.SLOResponseURL
		}
	}
	if redirectDest == "" && postDest == "" {
		return nil, errors.New("logout response: the IdP has no SingleLogoutService URL")
	}
	if inResponseTo == "" {
		return nil, errors.New("logout response: InResponseTo is required")
	}
	if status != StatusSuccess && status != StatusRequester && status != StatusResponder {
		return nil, fmt.Errorf("logout response: status %q must be StatusSuccess, StatusRequester or StatusResponder", status)
	}
	if err := checkRelayState(relayState); err != nil {
		return nil, fmt.Errorf("logout response: %w", err)
	}
	id, err := newMessageID(sp.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("logout response: %w", err)
	}
	now := sp.cfg.Now().UTC().Truncate(time.Millisecond)
	build := func(dest string) *etree.Element {
		el := sp.newProtocolElement("LogoutResponse", id, now, dest)
		el.CreateAttr("InResponseTo", inResponseTo)
		el.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", status)
		return el
	}
	resp := &LogoutResponse{ID: id, IssueInstant: now}
	resp.RedirectURL, resp.post, err = sp.encodeOutbound("SAMLResponse", build, redirectDest, postDest, relayState, true)
	if err != nil {
		return nil, fmt.Errorf("logout response: %w", err)
	}
	return resp, nil
}

// ParseLogoutRequest reads an IdP-initiated LogoutRequest and verifies it:
// the signature (query signature for HTTP-Redirect, enveloped XML
// signature for HTTP-POST) with a pinned IdP certificate, which is always
// required (saml-profiles §4.4.4.1), then Issuer, Destination,
// IssueInstant and NotOnOrAfter. Last, its ID is recorded in replay (the
// cache assertion IDs go to) until the request could no longer be
// accepted, so each LogoutRequest is acted on once across replicas; one
// seen before is refused with ReasonAssertionReplayed. Rejections are
// *Error.
func (sp *ServiceProvider) ParseLogoutRequest(ctx context.Context, in Inbound, replay ReplayCache) (*LogoutRequestInfo, error) {
	if replay == nil {
		return nil, &Error{Reason: ReasonInternal, Message: "ParseLogoutRequest needs a ReplayCache"}
	}
	el, relayState, err := sp.readSignedMessage(ctx, in, "SAMLRequest", "LogoutRequest")
	if err != nil {
		return nil, err
	}
	h, err := sp.checkHeader(el)
	if err != nil {
		return nil, err
	}
	info := &LogoutRequestInfo{ID: h.id, Issuer: h.issuer, IssueInstant: h.issueInstant,
		Reason: el.SelectAttrValue("Reason", ""), RelayState: relayState, Binding: in.Binding}
	if v := el.SelectAttrValue("NotOnOrAfter", ""); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, Rejectf(ReasonMalformedXML, "the LogoutRequest NotOnOrAfter %q is not an xs:dateTime", v)
		}
		if now := sp.cfg.Now(); !now.Before(t.Add(sp.cfg.ClockSkew)) {
			return nil, Rejectf(ReasonExpired, "the LogoutRequest expired at %s (NotOnOrAfter); it is now %s, clock skew allowed %s",
				t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), sp.cfg.ClockSkew)
		}
		info.NotOnOrAfter = t
	}
	if len(directChildren(el, nsSAML, "EncryptedID")) > 0 {
		return nil, Rejectf(ReasonSubjectInvalid, "the LogoutRequest carries an EncryptedID, which ssogate does not support; configure the IdP to send a plain NameID")
	}
	ids := directChildren(el, nsSAML, "NameID")
	if len(ids) != 1 || strings.TrimSpace(ids[0].Text()) == "" {
		return nil, Rejectf(ReasonSubjectInvalid, "the LogoutRequest must carry exactly one non-empty NameID; found %d", len(ids))
	}
	info.NameID = strings.TrimSpace(ids[0].Text())
	info.NameIDFormat = ids[0].SelectAttrValue("Format", "")
	sis := directChildren(el, nsSAMLP, "SessionIndex")
	if len(sis) > maxLogoutSessionIndex {
		return nil, Rejectf(ReasonXMLTooComplex, "the LogoutRequest has %d SessionIndex elements; at most %d are accepted", len(sis), maxLogoutSessionIndex)
	}
	for _, si := range sis {
		if v := strings.TrimSpace(si.Text()); v != "" {
			info.SessionIndexes = append(info.SessionIndexes, v)
		}
	}
	info.SessionsBefore = info.IssueInstant.Add(sp.cfg.ClockSkew)
	// checkHeader refuses the request once it is MaxIssueAge old, and
	// NotOnOrAfter may end it sooner; past either, the time checks refuse
	// a replay without the cache.
	expires := info.IssueInstant.Add(sp.cfg.MaxIssueAge)
	if !info.NotOnOrAfter.IsZero() && info.NotOnOrAfter.Before(expires) {
		expires = info.NotOnOrAfter
	}
	if err := replay.RecordAssertion(ctx, sp.cfg.ConnectionID, info.ID, expires.Add(sp.cfg.ClockSkew)); err != nil {
		if errors.Is(err, ErrAssertionSeen) {
			return nil, &Error{Reason: ReasonAssertionReplayed, Err: err,
				Message: fmt.Sprintf("the LogoutRequest %q was already processed; each is accepted once", truncate(info.ID, 128))}
		}
		return nil, &Error{Reason: ReasonInternal, Message: "recording the LogoutRequest ID failed", Err: fmt.Errorf("record logout request: %w", err)}
	}
	return info, nil
}

// ParseLogoutResponse reads the IdP's LogoutResponse and verifies its
// signature, Issuer, Destination and IssueInstant as ParseLogoutRequest
// does. A non-Success status is not an error: the caller decides, from
// Status, whether the IdP session ended. InResponseTo must be non-empty;
// matching it to a sent LogoutRequest is the caller's job.
func (sp *ServiceProvider) ParseLogoutResponse(ctx context.Context, in Inbound) (*LogoutResponseInfo, error) {
	el, relayState, err := sp.readSignedMessage(ctx, in, "SAMLResponse", "LogoutResponse")
	if err != nil {
		return nil, err
	}
	h, err := sp.checkHeader(el)
	if err != nil {
		return nil, err
	}
	info := &LogoutResponseInfo{ID: h.id, Issuer: h.issuer, IssueInstant: h.issueInstant,
		InResponseTo: el.SelectAttrValue("InResponseTo", ""), RelayState: relayState, Binding: in.Binding}
	if info.InResponseTo == "" {
		return nil, Rejectf(ReasonInResponseToUnknown, "the LogoutResponse has no InResponseTo; ssogate only accepts answers to its own LogoutRequests")
	}
	st := directChildren(el, nsSAMLP, "Status")
	if len(st) != 1 {
		return nil, Rejectf(ReasonMalformedXML, "the LogoutResponse must have one Status; found %d", len(st))
	}
	codes := directChildren(st[0], nsSAMLP, "StatusCode")
	if len(codes) != 1 || codes[0].SelectAttrValue("Value", "") == "" {
		return nil, Rejectf(ReasonMalformedXML, "the LogoutResponse Status must have one StatusCode with a Value")
	}
	info.Status = codes[0].SelectAttrValue("Value", "")
	if sub := directChildren(codes[0], nsSAMLP, "StatusCode"); len(sub) > 0 {
		info.SubStatus = sub[0].SelectAttrValue("Value", "")
	}
	if msg := directChildren(st[0], nsSAMLP, "StatusMessage"); len(msg) > 0 {
		info.StatusMessage = truncate(strings.TrimSpace(msg[0].Text()), maxLogoutStatusMessage)
	}
	return info, nil
}

// readSignedMessage decodes a message of either binding, checks its XML
// shape and root element, verifies its signature with the pinned IdP
// certificates, and returns the root element as the signature covers it.
func (sp *ServiceProvider) readSignedMessage(ctx context.Context, in Inbound, param, tag string) (*etree.Element, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	var (
		xmlBytes   []byte
		relayState string
		query      *redirectQuery
	)
	switch in.Binding {
	case BindingHTTPRedirect:
		if len(in.RawQuery) > sp.cfg.MaxBodyBytes {
			return nil, "", Rejectf(ReasonBodyTooLarge, "the query string is %d bytes, more than the %d allowed", len(in.RawQuery), sp.cfg.MaxBodyBytes)
		}
		q, err := parseRedirectQuery(in.RawQuery, param)
		if err != nil {
			return nil, "", err
		}
		deflated, err := decodeBase64Strict(q.message)
		if err != nil {
			return nil, "", err
		}
		if xmlBytes, err = inflateBounded(deflated, sp.cfg.MaxXMLBytes); err != nil {
			return nil, "", err
		}
		query, relayState = q, q.relayState
	case BindingHTTPPost:
		vals := in.Form[param]
		if len(vals) != 1 || len(in.Form["RelayState"]) > 1 {
			return nil, "", Rejectf(ReasonMalformedEncoding, "the form must carry exactly one %s and at most one RelayState", param)
		}
		if len(vals[0]) > sp.cfg.MaxBodyBytes {
			return nil, "", Rejectf(ReasonBodyTooLarge, "%s is %d bytes, more than the %d allowed", param, len(vals[0]), sp.cfg.MaxBodyBytes)
		}
		var err error
		if xmlBytes, err = decodeBase64Strict(vals[0]); err != nil {
			return nil, "", err
		}
		relayState = in.Form.Get("RelayState")
	default:
		return nil, "", Rejectf(ReasonMalformedEncoding, "binding %q is not supported; use HTTP-Redirect or HTTP-POST", in.Binding)
	}
	root, err := parseXML(xmlBytes, sp.cfg.MaxXMLBytes, sp.xmlLimits())
	if err != nil {
		return nil, "", err
	}
	if root.Tag != tag || root.NamespaceURI() != nsSAMLP {
		return nil, "", Rejectf(ReasonMalformedXML, "expected a samlp:%s, got <%s> in namespace %q", tag, root.Tag, root.NamespaceURI())
	}
	now := sp.cfg.Now()
	if query != nil {
		if err := sp.verifyQuery(query, tag, now); err != nil {
			return nil, "", err
		}
		// An enveloped signature is not part of this binding; the query
		// signature covers the whole message, so the root is used as is.
		return root, relayState, nil
	}
	verified, err := sp.verifySignedXML(root, now)
	if err != nil {
		return nil, "", err
	}
	return verified, relayState, nil
}

type messageHeader struct {
	id, issuer   string
	issueInstant time.Time
}

// checkHeader verifies the attributes every IdP message shares: Version,
// ID, IssueInstant (within MaxIssueAge and the skew), Issuer and
// Destination.
func (sp *ServiceProvider) checkHeader(el *etree.Element) (messageHeader, error) {
	var h messageHeader
	if v := el.SelectAttrValue("Version", ""); v != "2.0" {
		return h, Rejectf(ReasonUnsupportedVersion, "the %s has Version %q; expected 2.0", el.Tag, v)
	}
	if h.id = el.SelectAttrValue("ID", ""); h.id == "" {
		return h, Rejectf(ReasonMalformedXML, "the %s has no ID", el.Tag)
	}
	issuers := directChildren(el, nsSAML, "Issuer")
	if len(issuers) == 1 {
		h.issuer = strings.TrimSpace(issuers[0].Text())
	}
	if want := sp.cfg.IdP.EntityID; want == "" || h.issuer != want {
		return h, Rejectf(ReasonIssuerMismatch, "the %s Issuer was %q, expected the connection's IdP entity ID %q", el.Tag, h.issuer, want)
	}
	if dest := el.SelectAttrValue("Destination", ""); dest != sp.sloURL {
		return h, Rejectf(ReasonDestinationMismatch, "the %s Destination was %q, expected this connection's SLO URL %q", el.Tag, dest, sp.sloURL)
	}
	raw := el.SelectAttrValue("IssueInstant", "")
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return h, Rejectf(ReasonIssueInstantInvalid, "the %s IssueInstant %q is not an xs:dateTime", el.Tag, raw)
	}
	now, skew := sp.cfg.Now(), sp.cfg.ClockSkew
	if t.After(now.Add(skew)) {
		return h, Rejectf(ReasonIssueInstantInvalid, "the %s IssueInstant %s is in the future (now %s, skew %s); check the IdP's clock",
			el.Tag, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if now.Sub(t) > sp.cfg.MaxIssueAge+skew {
		return h, Rejectf(ReasonIssueInstantInvalid, "the %s IssueInstant %s is older than %s (now %s)",
			el.Tag, t.UTC().Format(time.RFC3339), sp.cfg.MaxIssueAge, now.UTC().Format(time.RFC3339))
	}
	h.issueInstant = t
	return h, nil
}
