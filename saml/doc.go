// Package saml is ssogate's SAML 2.0 Service Provider: one
// ServiceProvider per connection (New), its SP metadata, AuthnRequests,
// Single Logout, and the verification of the Responses an IdP posts to
// the Assertion Consumer Service (ValidateResponse). It speaks no HTTP,
// gRPC or SQL: the server feeds it form values and adapts the store to the
// small interfaces it declares (RequestConsumer, ReplayCache).
//
// # What ValidateResponse guarantees
//
// An *Identity comes back only if every check below passed; otherwise the
// error is an *Error whose Reason names the first check that failed and
// whose Message tells an IdP admin what was expected and what was found.
// Every value in the Identity (NameID, attributes, times, InResponseTo)
// was read from XML covered by a verified signature of a pinned key.
//
// The work is split between the libraries it builds on and this package.
//
// etree (beevik/etree) parses the XML, and mattermost/xml-roundtrip-validator
// refuses documents that encoding/xml would not read back identically, as
// gosaml2 does.
//
// goxmldsig (russellhaering/goxmldsig, the signature engine of gosaml2)
// checks each XML signature: the reference to the signed element's ID,
// the enveloped-signature and exclusive-canonicalization transforms, the
// digest, and the signature value with a certificate from the store it is
// given; a certificate in KeyInfo must equal one in that store; the
// certificate must be inside its validity period. It returns the signed
// element as canonicalized (comments dropped), and only that is read.
//
// gosaml2 (russellhaering/gosaml2) is the baseline this package is
// measured against (see bench_test.go) but its Response pipeline
// (RetrieveAssertionInfo, ValidateEncodedResponse) is deliberately not
// used: it inflates any input that fails to parse (deflate on the POST
// binding, past any pre-parse guard), reports audience and time problems
// only as WarningInfo, has no clock skew, no InResponseTo binding and no
// replay cache, checks Destination only when present even on a signed
// Response, requires an optional Response Issuer, returns untyped errors
// that cannot be mapped to reasons, does not say which certificate or
// algorithm verified, decrypts with distinguishable errors and no
// algorithm allowlist, and, through goxmldsig's namespace traversal limit
// of 1,000 elements, refuses genuine responses from about 500 attribute
// values up however they are signed ("traversal limit reached"; raising
// MaximumXMLTokens does not help). Its checks are all repeated here.
//
// This package checks, in this order, before any store is touched:
//
//   - Size and shape, before any parser or signature code: the form value
//     (MaxBodyBytes) and the decoded XML (MaxXMLBytes); strict base64
//     (standard alphabet, padding, canonical trailing bits; line breaks
//     tolerated); deflated data is refused; no DTD, entity declaration or
//     processing instruction (the XML declaration aside); exactly one root
//     element, samlp:Response, no text beside it; UTF-8 only (another
//     declared encoding is refused); no element with two attributes of one
//     expanded name; element depth at most 48; at most 64 namespace
//     declarations in scope at any element (canonicalization copies the
//     in-scope set per element, which is what makes a nested namespace
//     flood expensive); and at most MaxXMLElements elements,
//     MaxXMLAttributes attributes and MaxXMLNamespaceDecls declarations in
//     the document (parsing and canonicalization cost per element, which is
//     what makes a flood of small elements expensive). All of it is one
//     scan that builds no tree, so a refusal costs about what a bad
//     signature costs. The bounds leave room for a genuine assertion with
//     2,000 attribute values, each declaring its namespaces.
//   - Version 2.0, and Status Success; other statuses map to
//     IDP_AUTHN_FAILED, IDP_REQUEST_DENIED, IDP_NO_PASSIVE or IDP_STATUS.
//   - Exactly one Assertion or EncryptedAssertion anywhere in the document,
//     directly under the Response: every signature-wrapping shape (a forged
//     assertion beside, around or instead of the signed one, a signed
//     Response tucked into Extensions) has a second one.
//   - Every ds:Signature anywhere uses RSA or ECDSA with SHA-256/384/512
//     and SHA-256/384/512 digests; SHA-1 only with AllowSHA1.
//   - Signatures: the Response, the Assertion, or both, are signed; each
//     signature present must verify. A signed Response covers its
//     Assertion (saml-profiles 4.1.3.5), so an unsigned Assertion inside a
//     signed Response is accepted. A signature is checked only with pinned
//     certificates (IdP.Certificates): a KeyInfo certificate selects among
//     them and is refused if it is not one of them; without KeyInfo, or
//     with a KeyInfo that holds no certificate (an RSAKeyValue or KeyName,
//     as some IdPs send), each pinned certificate is tried, so rotation
//     with two pinned works.
//   - Encryption: EncryptedAssertion needs DecryptionKey; WantEncryptedAssertions
//     refuses a plain Assertion. AES-GCM with RSA-OAEP (SHA-1/256/512
//     digests and MGFs) is accepted; AES-CBC and RSA 1.5 only with
//     AllowLegacyEncryption. A Response signature is checked before
//     decryption, the Assertion signature after it. Every decryption
//     failure, from key transport to parsing the plaintext (which passes the
//     same shape guard), has the same reason and message, and a key that
//     does not unwrap is replaced by a random one so that the content
//     decryption still runs (no key-transport oracle). AES-CBC, which has
//     no integrity of its own, is decrypted only under a verified Response
//     signature; under an unsigned Response it is refused before any key is
//     used, so no timing tells a sender about altered ciphertext.
//   - Several decryption keys (DecryptionKey and DecryptionKeys, during a
//     rotation): the one whose certificate the EncryptedKey's KeyInfo
//     carries is used; otherwise every key is tried, always all of them,
//     each with implicit rejection, so the work does not depend on which
//     key fits, and with RSA 1.5 nothing depends on whether a padding was
//     valid. NextSigningCert and NextEncryptionCert are published in
//     metadata beside the current certificates.
//   - Issuer of the Response (when present) and of the Assertion equal
//     IdP.EntityID. Destination equals the ACS URL; it is required when the
//     Response is signed (saml-bindings 3.5.5.2) and, when the Response is
//     unsigned, still refused if present and wrong.
//   - One Subject with one plain-text NameID (its whole text: a comment
//     inside it cannot truncate it); a bearer SubjectConfirmation whose
//     data has Recipient equal to the ACS URL, NotOnOrAfter in the future
//     and NotBefore, if any, in the past.
//   - Conditions: NotBefore and NotOnOrAfter if present, and at least one
//     AudienceRestriction, each of which must name the SP entity ID.
//   - IssueInstant of the Assertion (and of the Response, when present) no
//     more than MaxIssueAge old and not in the future. Every time check
//     allows ClockSkew, against the injected Now.
//   - InResponseTo comes only from signed data: the bearer
//     SubjectConfirmationData, or a signed Response. An unsigned Response
//     may not claim a request the signed Assertion does not name. No
//     InResponseTo is an IdP-initiated login, refused unless
//     AllowIdPInitiated.
//   - The Assertion carries an AuthnStatement (saml-profiles 4.1.4.2).
//
// Only then does ValidateResponse call the store: ReplayCache records the
// Assertion ID until the assertion could no longer be accepted (its
// earliest NotOnOrAfter or IssueInstant+MaxIssueAge, plus ClockSkew), and
// RequestConsumer consumes the pending request. A message that fails
// earlier never burns a real user's pending request.
//
// ParseLogoutRequest records each LogoutRequest ID in the same
// ReplayCache, so an IdP's logout is acted on once, and says which
// sessions it may end (those created before its IssueInstant).
//
// Left to the caller: access policy, connection state, sessions, and
// turning an *Error into an HTTP page or gRPC status.
package saml
