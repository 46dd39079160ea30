package saml

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"time"
)

// Config is one connection's Service Provider settings. The zero value of
// every optional field is a safe default; New validates the rest.
type Config struct {
	// ConnectionID is the connection's slug, [a-z0-9-]{1,63}.
	ConnectionID string
	// ExternalURL is the public base URL of ssogate, without a trailing
	// slash. The SP entity ID is ExternalURL + "/saml/" + ConnectionID
	// unless EntityID is set; the ACS URL is the entity ID + "/acs" unless
	// ACSURL is set.
	ExternalURL string
	// EntityID overrides the derived SP entity ID (any absolute URI), so
	// that a connection migrated from another SP keeps the identity its IdP
	// knows. It is the AuthnRequest Issuer, the metadata entityID and the
	// only Audience accepted.
	EntityID string
	// ACSURL overrides the derived ACS URL (an absolute http(s) URL). It is
	// the AuthnRequest AssertionConsumerServiceURL, the metadata ACS
	// Location and the only Destination and Recipient accepted.
	ACSURL string

	// IdP is the peer, usually from ParseIdPMetadata.
	IdP IdentityProvider

	AllowIdPInitiated       bool // accept responses without InResponseTo
	SignRequests            bool // sign AuthnRequests and logout messages with SigningKey
	WantEncryptedAssertions bool // refuse plain Assertions
	AllowSHA1               bool // accept RSA-SHA1 / SHA-1 digests (legacy IdPs only)
	AllowLegacyEncryption   bool // accept AES-CBC content and RSA-1.5 key transport

	// NameIDFormat is requested in AuthnRequest NameIDPolicy; empty means
	// urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified.
	NameIDFormat string

	// Attributes overrides the default attribute mapping per claim.
	Attributes AttributeMapping

	// SigningKey and SigningCert sign requests (when SignRequests) and are
	// published in SP metadata. Optional unless SignRequests.
	SigningKey  crypto.Signer
	SigningCert *x509.Certificate
	// DecryptionKey and EncryptionCert decrypt EncryptedAssertions; the
	// certificate is published in SP metadata. Optional unless
	// WantEncryptedAssertions.
	DecryptionKey  *rsa.PrivateKey
	EncryptionCert *x509.Certificate

	// NextSigningCert, during a rotation of the signing key, is published
	// in SP metadata beside SigningCert (both use="signing") so that IdPs
	// learn it before it signs; requests are still signed with SigningKey.
	NextSigningCert *x509.Certificate
	// NextEncryptionCert, during a rotation of the encryption key, is
	// published in SP metadata before EncryptionCert (both
	// use="encryption"): IdPs that take the first key move to it during
	// the overlap. Its key must be in DecryptionKeys.
	NextEncryptionCert *x509.Certificate
	// DecryptionKeys are further keys EncryptedAssertions may be encrypted
	// to, tried beside DecryptionKey (the next key of a rotation, or one
	// no longer published). With several keys, the one whose certificate
	// the EncryptedKey's KeyInfo carries is used; without that hint every
	// key is tried, always all of them, so which one fits costs no time.
	DecryptionKeys []DecryptionKey

	// ClockSkew tolerated on every time check; default 60s.
	ClockSkew time.Duration
	// MaxIssueAge bounds how old a Response IssueInstant may be; default 5m.
	MaxIssueAge time.Duration
	// MaxBodyBytes bounds the base64 SAMLResponse; default 512 KiB (an Okta-style
	// assertion with 2,000 groups, each value declaring its namespaces, is
	// about 380 KB of base64).
	MaxBodyBytes int
	// MaxXMLBytes bounds the decoded XML; default 1 MiB.
	MaxXMLBytes int
	// MaxXMLElements, MaxXMLAttributes and MaxXMLNamespaceDecls bound one
	// document's elements, attributes (namespace declarations aside) and
	// namespace declarations, counted before any tree is built; defaults
	// 5,000, 10,000 and 10,000. Parsing and canonicalization cost about
	// 25 µs per element, so these bounds, not the byte limits, are what
	// keep a flood of small elements from costing a second of CPU. An
	// Okta-style assertion with 2,000 groups (namespaces declared on every
	// value) has about 2,050 elements, 2,100 attributes and 4,100
	// declarations.
	MaxXMLElements       int
	MaxXMLAttributes     int
	MaxXMLNamespaceDecls int

	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand feeds request IDs; default crypto/rand.Reader.
	Rand io.Reader
}

// DecryptionKey is one RSA key assertions may be encrypted to, with its
// certificate (which may be nil: then only trying the key finds it).
type DecryptionKey struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// IdentityProvider is what the SP knows of its peer.
type IdentityProvider struct {
	EntityID       string
	SSORedirectURL string // SingleSignOnService, HTTP-Redirect binding
	SSOPostURL     string // SingleSignOnService, HTTP-POST binding
	SLORedirectURL string // SingleLogoutService, HTTP-Redirect binding
	SLOPostURL     string // SingleLogoutService, HTTP-POST binding
	// SLOResponseURL is the SingleLogoutService ResponseLocation, if any.
	SLOResponseURL string
	// Certificates are the pinned signing certificates; several during
	// rotation. A certificate in a message's KeyInfo counts only if it is
	// one of these.
	Certificates []*x509.Certificate
	// ValidUntil is the metadata's validUntil; zero when absent.
	ValidUntil time.Time
}

// Identity is the verified result of one accepted Response. Every value in
// it came from XML covered by a verified signature.
type Identity struct {
	NameID       string
	NameIDFormat string
	SessionIndex string
	// InResponseTo is the AuthnRequest ID this answers; empty when
	// IdP-initiated.
	InResponseTo string
	AssertionID  string
	Issuer       string
	// Attributes as the IdP sent them, by attribute Name.
	Attributes map[string][]string
	// Mapped is Attributes through the connection's AttributeMapping.
	Mapped               MappedAttributes
	AuthnInstant         time.Time
	AuthnContextClassRef string
	// SessionNotOnOrAfter is the IdP's cap on the session; zero when absent.
	SessionNotOnOrAfter time.Time
	// Diagnostics explains the verification for the test-login page.
	Diagnostics Diagnostics
}

// Diagnostics are facts about a verification that help an IdP admin, shown
// on the test-login page. They hold no secrets.
type Diagnostics struct {
	ResponseSigned      bool
	AssertionSigned     bool
	Encrypted           bool
	SignatureAlgorithm  string
	DigestAlgorithm     string
	CertificateSubject  string
	CertificateNotAfter time.Time
	IssueInstant        time.Time
	NotBefore           time.Time
	NotOnOrAfter        time.Time
	ClockSkew           time.Duration
}
