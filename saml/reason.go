package saml

import "fmt"

// Reason names why a SAML message was rejected. The values are stable: the
// API's RejectionReason enum carries the same names with a
// "REJECTION_REASON_" prefix, metrics label by them, and the audit log keeps
// them. Add new reasons at the end of a group; never rename one.
type Reason string

// Size and shape: checked before any signature work.
const (
	ReasonBodyTooLarge       Reason = "BODY_TOO_LARGE"      // form body or decoded XML over its bound
	ReasonMalformedEncoding  Reason = "MALFORMED_ENCODING"  // not strict base64, or deflated on the POST binding
	ReasonMalformedXML       Reason = "MALFORMED_XML"       // not well-formed, more than one root, wrong root element
	ReasonForbiddenXML       Reason = "FORBIDDEN_XML"       // DTD, entity declaration or processing instruction
	ReasonXMLTooComplex      Reason = "XML_TOO_COMPLEX"     // depth, namespaces in scope, or element, attribute or namespace declaration count over its bound
	ReasonUnsupportedVersion Reason = "UNSUPPORTED_VERSION" // SAML version other than 2.0
)

// Signature and encryption.
const (
	ReasonSignatureMissing      Reason = "SIGNATURE_MISSING"       // neither the Response nor every Assertion is signed
	ReasonSignatureInvalid      Reason = "SIGNATURE_INVALID"       // signature does not verify, or covers the wrong element
	ReasonCertificateNotTrusted Reason = "CERTIFICATE_NOT_TRUSTED" // signed by a key that is not pinned for the connection
	ReasonAlgorithmNotAllowed   Reason = "ALGORITHM_NOT_ALLOWED"   // e.g. SHA-1 on a connection that does not allow it
	ReasonAssertionCount        Reason = "ASSERTION_COUNT"         // not exactly one Assertion or EncryptedAssertion
	ReasonEncryptionRequired    Reason = "ENCRYPTION_REQUIRED"     // plain Assertion where the connection wants encryption
	ReasonDecryptionFailed      Reason = "DECRYPTION_FAILED"       // every decryption failure, indistinguishable on purpose
)

// Status returned by the IdP.
const (
	ReasonIdPAuthnFailed   Reason = "IDP_AUTHN_FAILED"   // urn:oasis:names:tc:SAML:2.0:status:AuthnFailed
	ReasonIdPRequestDenied Reason = "IDP_REQUEST_DENIED" // urn:oasis:names:tc:SAML:2.0:status:RequestDenied
	ReasonIdPNoPassive     Reason = "IDP_NO_PASSIVE"     // urn:oasis:names:tc:SAML:2.0:status:NoPassive
	ReasonIdPStatus        Reason = "IDP_STATUS"         // any other non-Success status
)

// Binding to this connection and this moment.
const (
	ReasonIssuerMismatch      Reason = "ISSUER_MISMATCH"       // Response or Assertion Issuer is not the connection's IdP
	ReasonDestinationMismatch Reason = "DESTINATION_MISMATCH"  // Response Destination is not this connection's ACS URL
	ReasonRecipientMismatch   Reason = "RECIPIENT_MISMATCH"    // SubjectConfirmationData Recipient is not the ACS URL
	ReasonAudienceMismatch    Reason = "AUDIENCE_MISMATCH"     // no Audience equals the SP entity ID
	ReasonSubjectInvalid      Reason = "SUBJECT_INVALID"       // no NameID, or no bearer SubjectConfirmation
	ReasonNotYetValid         Reason = "NOT_YET_VALID"         // a NotBefore lies in the future beyond the skew
	ReasonExpired             Reason = "EXPIRED"               // a NotOnOrAfter has passed beyond the skew
	ReasonIssueInstantInvalid Reason = "ISSUE_INSTANT_INVALID" // IssueInstant too old or in the future
)

// What a login assertion must say.
const (
	ReasonAuthnStatementMissing Reason = "AUTHN_STATEMENT_MISSING" // no AuthnStatement (SAML Profiles 4.1.4.2)
)

// Request binding and replay.
const (
	ReasonInResponseToUnknown   Reason = "IN_RESPONSE_TO_UNKNOWN"  // no pending request of this connection has that ID
	ReasonInResponseToUsed      Reason = "IN_RESPONSE_TO_USED"     // the pending request was already consumed
	ReasonInResponseToExpired   Reason = "IN_RESPONSE_TO_EXPIRED"  // the pending request expired
	ReasonIdPInitiatedForbidden Reason = "IDP_INITIATED_FORBIDDEN" // unsolicited response on a connection that refuses them
	ReasonAssertionReplayed     Reason = "ASSERTION_REPLAYED"      // assertion ID seen before
)

// Reasons decided outside package saml (by the server), listed here so that
// one type names every rejection.
const (
	ReasonConnectionNotFound Reason = "CONNECTION_NOT_FOUND" // no connection with that ID
	ReasonConnectionInactive Reason = "CONNECTION_INACTIVE"  // DRAFT or DISABLED, or a non-test login on TESTING
	ReasonPolicyDenied       Reason = "POLICY_DENIED"        // the access policy refused the identity
	ReasonInternal           Reason = "INTERNAL"             // ssogate failed; nothing the IdP admin can fix
	// The asserted email's domain is not one of the connection's email
	// domains.
	ReasonEmailDomainMismatch Reason = "EMAIL_DOMAIN_MISMATCH"
	// ReasonUserDeprovisioned: the directory (SCIM) deactivated or deleted
	// the user, whatever the IdP's assertion says.
	ReasonUserDeprovisioned Reason = "USER_DEPROVISIONED"
	// ReasonGroupOverage: the access policy depends on groups and the IdP
	// sent a link to the user's groups instead of the groups (Entra ID's
	// group overage, MappedAttributes.GroupsOverage).
	ReasonGroupOverage Reason = "GROUP_OVERAGE"
	// ReasonUserNotProvisioned: the connection requires provisioned users
	// and the directory has none linked to the NameID.
	ReasonUserNotProvisioned Reason = "USER_NOT_PROVISIONED"
)

// Reasons lists every Reason, in API enum order.
var Reasons = []Reason{
	ReasonBodyTooLarge, ReasonMalformedEncoding, ReasonMalformedXML, ReasonForbiddenXML,
	ReasonXMLTooComplex, ReasonUnsupportedVersion,
	ReasonSignatureMissing, ReasonSignatureInvalid, ReasonCertificateNotTrusted,
	ReasonAlgorithmNotAllowed, ReasonAssertionCount, ReasonEncryptionRequired, ReasonDecryptionFailed,
	ReasonIdPAuthnFailed, ReasonIdPRequestDenied, ReasonIdPNoPassive, ReasonIdPStatus,
	ReasonIssuerMismatch, ReasonDestinationMismatch, ReasonRecipientMismatch, ReasonAudienceMismatch,
	ReasonSubjectInvalid, ReasonNotYetValid, ReasonExpired, ReasonIssueInstantInvalid,
	ReasonInResponseToUnknown, ReasonInResponseToUsed, ReasonInResponseToExpired,
	ReasonIdPInitiatedForbidden, ReasonAssertionReplayed,
	ReasonConnectionNotFound, ReasonConnectionInactive, ReasonPolicyDenied, ReasonInternal,
	ReasonAuthnStatementMissing,
	ReasonEmailDomainMismatch, ReasonGroupOverage,
	ReasonUserDeprovisioned, ReasonUserNotProvisioned,
}

// Error is a rejection: a Reason for machines and a Message for the IdP
// admin that says what was expected and what was found. Message never holds
// secrets or whole assertions.
type Error struct {
	Reason  Reason
	Message string
	Err     error // underlying cause, if any; may be nil
}

func (e *Error) Error() string {
	return fmt.Sprintf("saml: %s: %s", e.Reason, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Rejectf builds an *Error with a formatted admin-facing message.
func Rejectf(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}
