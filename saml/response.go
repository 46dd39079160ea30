package saml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"
)

// Sentinel errors a RequestConsumer or ReplayCache wraps so that
// ValidateResponse can name the rejection.
var (
	// ErrRequestUnknown: no pending request of this connection has the ID.
	ErrRequestUnknown = errors.New("pending request unknown")
	// ErrRequestUsed: the pending request was already consumed.
	ErrRequestUsed = errors.New("pending request already used")
	// ErrRequestExpired: the pending request outlived its lifetime.
	ErrRequestExpired = errors.New("pending request expired")
	// ErrAssertionSeen: the assertion ID was recorded before, by this or
	// another replica.
	ErrAssertionSeen = errors.New("assertion already seen")
)

// RequestConsumer marks a pending AuthnRequest of a connection as used,
// atomically and once across replicas. It returns an error wrapping
// ErrRequestUnknown, ErrRequestUsed or ErrRequestExpired when it cannot.
type RequestConsumer interface {
	ConsumeRequest(ctx context.Context, connectionID, requestID string) error
}

// ReplayCache records an accepted assertion ID until expiresAt. It returns
// an error wrapping ErrAssertionSeen when the ID was already recorded,
// including by a concurrent writer.
type ReplayCache interface {
	RecordAssertion(ctx context.Context, connectionID, assertionID string, expiresAt time.Time) error
}

// ResponseInput is one POST to the Assertion Consumer Service.
type ResponseInput struct {
	// SAMLResponse is the form value as posted: base64, not deflated.
	SAMLResponse string
	// Requests consumes the pending request the Response answers.
	Requests RequestConsumer
	// Replay records the assertion ID.
	Replay ReplayCache
}

// ValidateResponse verifies a SAMLResponse posted to this connection's ACS
// and returns the identity it asserts. Every rejection is an *Error whose
// Reason names the failed check. The pending request is consumed and the
// assertion ID recorded only after every other check has passed, so a
// forged or broken message never burns a real user's login.
func (sp *ServiceProvider) ValidateResponse(ctx context.Context, in ResponseInput) (*Identity, error) {
	if in.Requests == nil || in.Replay == nil {
		return nil, &Error{Reason: ReasonInternal, Message: "ResponseInput needs Requests and Replay"}
	}
	now := sp.cfg.Now()
	id, expires, rerr := sp.verifyResponse(in.SAMLResponse, now)
	if rerr != nil {
		return nil, rerr
	}
	if id.InResponseTo == "" && !sp.cfg.AllowIdPInitiated {
		return nil, Rejectf(ReasonIdPInitiatedForbidden,
			"the Response answers no AuthnRequest (no InResponseTo) and connection %q does not allow IdP-initiated login", sp.cfg.ConnectionID)
	}
	if err := in.Replay.RecordAssertion(ctx, sp.cfg.ConnectionID, id.AssertionID, expires); err != nil {
		if errors.Is(err, ErrAssertionSeen) {
			return nil, &Error{Reason: ReasonAssertionReplayed,
				Message: fmt.Sprintf("assertion %q was already used", truncate(id.AssertionID, 128)), Err: err}
		}
		return nil, &Error{Reason: ReasonInternal, Message: "recording the assertion ID failed", Err: fmt.Errorf("record assertion: %w", err)}
	}
	if id.InResponseTo != "" {
		if err := in.Requests.ConsumeRequest(ctx, sp.cfg.ConnectionID, id.InResponseTo); err != nil {
			return nil, consumeError(id.InResponseTo, sp.cfg.ConnectionID, err)
		}
	}
	return id, nil
}

func consumeError(requestID, connectionID string, err error) *Error {
	irt := truncate(requestID, 128)
	switch {
	case errors.Is(err, ErrRequestUnknown):
		return &Error{Reason: ReasonInResponseToUnknown, Err: err,
			Message: fmt.Sprintf("InResponseTo %q is not a login started for connection %q", irt, connectionID)}
	case errors.Is(err, ErrRequestUsed):
		return &Error{Reason: ReasonInResponseToUsed, Err: err,
			Message: fmt.Sprintf("the login %q was already completed; a Response is accepted once", irt)}
	case errors.Is(err, ErrRequestExpired):
		return &Error{Reason: ReasonInResponseToExpired, Err: err,
			Message: fmt.Sprintf("the login %q expired before the IdP answered", irt)}
	}
	return &Error{Reason: ReasonInternal, Message: "checking the pending request failed", Err: fmt.Errorf("consume request: %w", err)}
}

// verifyResponse runs every check that needs no store, in an order that
// keeps the expensive and risky work behind the cheap bounds: size, shape,
// parse, status, signature, then the values the signature covers. It
// returns the identity and when the replay-cache entry may expire.
func (sp *ServiceProvider) verifyResponse(form string, now time.Time) (*Identity, time.Time, *Error) {
	raw, rerr := decodePOSTValue(form, sp.cfg.MaxBodyBytes, sp.cfg.MaxXMLBytes)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	root, plain, rerr := parseGuardedPlain(raw, sp.xmlLimits())
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	if root.Tag != "Response" || root.NamespaceURI() != nsProtocol {
		return nil, time.Time{}, Rejectf(ReasonMalformedXML, "root element is {%s}%s, expected samlp:Response",
			truncate(root.NamespaceURI(), 128), truncate(root.Tag, 64))
	}
	if v := root.SelectAttrValue("Version", ""); v != "2.0" {
		return nil, time.Time{}, Rejectf(ReasonUnsupportedVersion, "Response Version was %q, expected \"2.0\"", truncate(v, 32))
	}
	// A failed login usually comes unsigned and without an assertion; its
	// status is the useful message, and trusting it can only reject.
	if rerr := checkStatus(root); rerr != nil {
		return nil, time.Time{}, rerr
	}
	scan, rerr := scanDocument(root, sp.cfg.AllowSHA1)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	if rerr := sp.checkTrustConfigured(); rerr != nil {
		return nil, time.Time{}, rerr
	}
	if !scan.encrypted && sp.cfg.WantEncryptedAssertions {
		return nil, time.Time{}, Rejectf(ReasonEncryptionRequired,
			"the Assertion is not encrypted and connection %q requires EncryptedAssertion", sp.cfg.ConnectionID)
	}
	v, rerr := sp.verifySignatures(root, plain, now)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	return sp.checkValues(v, now)
}

// parseGuarded turns decoded bytes into a tree only after guardXML and
// refuses deflated input outright: the POST binding never deflates, and
// gosaml2's habit of inflating whatever fails to parse is how a deflate
// bomb or an unguarded document would get in.
func parseGuarded(raw []byte, lim xmlLimits) (*etree.Element, *Error) {
	root, _, rerr := parseGuardedPlain(raw, lim)
	return root, rerr
}

// parseGuardedPlain is parseGuarded that also reports whether the document
// is plain: without comments and CDATA sections (see verifyDirect).
func parseGuardedPlain(raw []byte, lim xmlLimits) (*etree.Element, bool, *Error) {
	if first := bytes.TrimLeft(raw, " \t\r\n\xef\xbb\xbf"); len(first) == 0 || first[0] != '<' {
		if looksDeflated(raw) {
			return nil, false, Rejectf(ReasonMalformedEncoding, "SAMLResponse is deflate-compressed; the HTTP-POST binding carries base64 of plain XML")
		}
		return nil, false, Rejectf(ReasonMalformedXML, "decoded SAMLResponse is not XML")
	}
	shape, rerr := guardXML(raw, lim)
	if rerr != nil {
		return nil, false, rerr
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, false, &Error{Reason: ReasonMalformedXML, Message: "XML is not well-formed: " + truncate(err.Error(), 200), Err: err}
	}
	root := doc.Root()
	if root == nil {
		return nil, false, Rejectf(ReasonMalformedXML, "no root element")
	}
	return root, !shape.commentsOrCDATA, nil
}

func (sp *ServiceProvider) checkTrustConfigured() *Error {
	if len(sp.cfg.IdP.Certificates) == 0 {
		return Rejectf(ReasonCertificateNotTrusted,
			"connection %q has no pinned IdP signing certificate; import the IdP metadata", sp.cfg.ConnectionID)
	}
	if sp.cfg.IdP.EntityID == "" {
		return Rejectf(ReasonIssuerMismatch,
			"connection %q has no IdP entity ID; import the IdP metadata", sp.cfg.ConnectionID)
	}
	return nil
}
