package token

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is the content of an access token. On Mint the caller fills the
// identity part (Subject down to ACR, Extra); Mint sets Issuer, Audience,
// IssuedAt, NotBefore and ID, and ExpiresAt unless the caller gave an
// earlier one. On Verify every field comes from the verified token.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub, see Subject
	Audience  []string  // aud
	ExpiresAt time.Time // exp; on Mint a non-zero value can only shorten the token (e.g. to the session's end)
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf
	ID        string    // jti, 128 random bits

	SessionID  string // sid
	Tenant     string // tenant
	Connection string // conn
	// ClientID (client_id, RFC 9068) is the OAuth client the token was
	// issued to; the server may set it to the calling API key's name.
	ClientID   string
	Email      string    // email
	Name       string    // name
	GivenName  string    // given_name
	FamilyName string    // family_name
	Groups     []string  // groups
	Roles      []string  // roles
	AuthTime   time.Time // auth_time
	ACR        string    // acr: the SAML AuthnContextClassRef

	// Extra holds mapped claims beyond the ones above. Its names can never
	// be reserved ones (see ReservedClaim): Mint refuses them.
	Extra map[string]any
}

// reservedClaims are claim names ssogate sets itself or whose meaning a
// verifier relies on; Extra can never carry them.
var reservedClaims = []string{
	// RFC 7519 registered claims.
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	// Claims of Claims' fields.
	"sid", "tenant", "conn", "client_id", "email", "name", "given_name", "family_name",
	"groups", "roles", "auth_time", "acr",
	// Claims with security meaning for OAuth / OIDC verifiers.
	"scope", "scp", "azp", "amr", "cnf", "act", "may_act", "nonce", "at_hash", "c_hash",
	"entitlements", "typ", "email_verified",
}

// ReservedClaim reports whether name is a claim ssogate sets itself (or a
// verifier gives a security meaning), so that an attribute mapping must not
// produce it. The server can use it to validate mappings up front.
func ReservedClaim(name string) bool { return slices.Contains(reservedClaims, name) }

// Subject derives the token subject of a user: the SHA-256 of a version
// tag and the length-prefixed connection id and SAML NameID, base64url
// without padding (43 characters). It is deterministic and unkeyed, so it
// survives key rotation and replicas agree without shared secrets; the
// length prefixes make it distinct for distinct (connectionID, nameID)
// pairs, so two connections never share a subject even when their IdPs use
// the same NameID. It changes if the connection id or the NameID changes;
// NameIDs are compared byte for byte (normalise case before, if the IdP's
// NameID format calls for it).
func Subject(connectionID, nameID string) string {
	sum := sha256.Sum256(lengthPrefixed("ssogate/sub/v1", connectionID, nameID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// lengthPrefixed encodes a domain-separation tag and parts so that no two
// different part lists give the same bytes: each is preceded by its length
// as 8 bytes big-endian.
func lengthPrefixed(tag string, parts ...string) []byte {
	n := 0
	for _, p := range append(parts, tag) {
		n += 8 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range append([]string{tag}, parts...) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// wireClaims is the JSON payload of an access token.
type wireClaims struct {
	Issuer     string   `json:"iss,omitempty"`
	Subject    string   `json:"sub,omitempty"`
	Audience   audience `json:"aud,omitempty"`
	ExpiresAt  int64    `json:"exp,omitempty"`
	IssuedAt   int64    `json:"iat,omitempty"`
	NotBefore  int64    `json:"nbf,omitempty"`
	ID         string   `json:"jti,omitempty"`
	SessionID  string   `json:"sid,omitempty"`
	Tenant     string   `json:"tenant,omitempty"`
	Connection string   `json:"conn,omitempty"`
	ClientID   string   `json:"client_id,omitempty"`
	Email      string   `json:"email,omitempty"`
	Name       string   `json:"name,omitempty"`
	GivenName  string   `json:"given_name,omitempty"`
	FamilyName string   `json:"family_name,omitempty"`
	Groups     []string `json:"groups,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	AuthTime   int64    `json:"auth_time,omitempty"`
	ACR        string   `json:"acr,omitempty"`

	Extra map[string]any `json:"-"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func toWire(c *Claims) *wireClaims {
	return &wireClaims{
		Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		ExpiresAt: unixOrZero(c.ExpiresAt), IssuedAt: unixOrZero(c.IssuedAt), NotBefore: unixOrZero(c.NotBefore),
		ID: c.ID, SessionID: c.SessionID, Tenant: c.Tenant, Connection: c.Connection, ClientID: c.ClientID,
		Email: c.Email, Name: c.Name, GivenName: c.GivenName, FamilyName: c.FamilyName,
		Groups: c.Groups, Roles: c.Roles, AuthTime: unixOrZero(c.AuthTime), ACR: c.ACR,
		Extra: c.Extra,
	}
}

func (w *wireClaims) claims() *Claims {
	return &Claims{
		Issuer: w.Issuer, Subject: w.Subject, Audience: w.Audience,
		ExpiresAt: timeOrZero(w.ExpiresAt), IssuedAt: timeOrZero(w.IssuedAt), NotBefore: timeOrZero(w.NotBefore),
		ID: w.ID, SessionID: w.SessionID, Tenant: w.Tenant, Connection: w.Connection, ClientID: w.ClientID,
		Email: w.Email, Name: w.Name, GivenName: w.GivenName, FamilyName: w.FamilyName,
		Groups: w.Groups, Roles: w.Roles, AuthTime: timeOrZero(w.AuthTime), ACR: w.ACR,
		Extra: w.Extra,
	}
}

// wireFields is wireClaims without its methods, so that encoding/json
// handles the known fields and the methods below only add Extra.
type wireFields wireClaims

// MarshalJSON writes the known claims, then Extra's (Mint has checked that
// none of Extra's names is reserved).
func (w *wireClaims) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal((*wireFields)(w))
	if err != nil || len(w.Extra) == 0 {
		return b, err
	}
	extra, err := json.Marshal(w.Extra)
	if err != nil {
		return nil, fmt.Errorf("encode extra claims: %w", err)
	}
	if len(b) > 2 {
		b[len(b)-1] = ','
	} else {
		b = b[:1]
	}
	return append(b, extra[1:]...), nil
}

// UnmarshalJSON reads the known claims and gathers the others into Extra.
func (w *wireClaims) UnmarshalJSON(data []byte) error {
	if err := json.Unmarshal(data, (*wireFields)(w)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for name, raw := range all {
		if ReservedClaim(name) {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if w.Extra == nil {
			w.Extra = make(map[string]any)
		}
		w.Extra[name] = v
	}
	return nil
}

// The jwt.Claims methods let golang-jwt's validator check exp, nbf, iss
// and aud.

func numericDate(s int64) *jwt.NumericDate {
	if s == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(s, 0))
}

func (w *wireClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return numericDate(w.ExpiresAt), nil
}
func (w *wireClaims) GetIssuedAt() (*jwt.NumericDate, error)  { return numericDate(w.IssuedAt), nil }
func (w *wireClaims) GetNotBefore() (*jwt.NumericDate, error) { return numericDate(w.NotBefore), nil }
func (w *wireClaims) GetIssuer() (string, error)              { return w.Issuer, nil }
func (w *wireClaims) GetSubject() (string, error)             { return w.Subject, nil }
func (w *wireClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(w.Audience), nil
}

// audience is aud: a single string when there is one value (what most
// verifiers expect), an array otherwise; both are read.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return fmt.Errorf("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}
