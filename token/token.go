package token

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TypeHeader is the JOSE "typ" of an access token (RFC 9068 section 2.1).
const TypeHeader = "at+jwt"

// MaxTokenBytes bounds a presented access token before any parsing; an
// assertion with thousands of groups still fits.
const MaxTokenBytes = 512 << 10

// DefaultRefreshTTL is how long a refresh token stays usable without being
// used; never past the session's end.
const DefaultRefreshTTL = 12 * time.Hour

// RevocationChecker tells whether a verified token's session, subject or
// connection has been revoked; c holds the token's claims (SessionID,
// Subject, Connection, IssuedAt). Verify calls it for every token, so it
// should answer from memory (ValidateToken is the hot path and does not
// query the store). An error is reported as a failure of the check, not as a
// rejection of the token.
type RevocationChecker interface {
	Revoked(ctx context.Context, c *Claims) (bool, error)
}

// Config configures an Issuer. Zero values take the defaults.
type Config struct {
	// Issuer is the iss of every token and the only one accepted. Required.
	Issuer string
	// Audience is the aud of every token; a token must name at least one
	// of them. Required.
	Audience []string
	// Keys signs and verifies. Required.
	Keys *KeySet
	// Revocation is consulted by Verify. Required.
	Revocation RevocationChecker
	// Refresh stores refresh tokens; nil disables the refresh methods.
	Refresh RefreshStore
	// AccessTTL is the lifetime of an access token (default
	// DefaultAccessTTL); at most the key set's MaxTokenTTL.
	AccessTTL time.Duration
	// RefreshTTL bounds a refresh token's life from its issue (default
	// DefaultRefreshTTL); the session's end bounds it too.
	RefreshTTL time.Duration
	// RefreshRetryWindow is how long a rotated refresh token presented
	// again still returns its unused successor instead of counting as reuse
	// (default DefaultRefreshRetryWindow; negative: never, every reuse
	// revokes).
	RefreshRetryWindow time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat (default
	// DefaultLeeway); at most the key set's Leeway.
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness for jti and refresh tokens (default
	// crypto/rand.Reader).
	Rand io.Reader
}

// Issuer mints and verifies access tokens and issues and rotates refresh
// tokens. It is safe for concurrent use.
type Issuer struct {
	issuer     string
	audience   []string
	keys       *KeySet
	revocation RevocationChecker
	refresh    RefreshStore
	accessTTL  time.Duration
	refreshTTL time.Duration
	// retryWindow is RefreshRetryWindow; negative disables retries.
	retryWindow time.Duration
	leeway      time.Duration
	now         func() time.Time
	random      io.Reader
	parser      *jwt.Parser
}

// New checks cfg and returns an Issuer.
func New(cfg Config) (*Issuer, error) {
	i := &Issuer{
		issuer: cfg.Issuer, audience: slices.Clone(cfg.Audience), keys: cfg.Keys, revocation: cfg.Revocation, refresh: cfg.Refresh,
		accessTTL: cmp.Or(cfg.AccessTTL, DefaultAccessTTL), refreshTTL: cmp.Or(cfg.RefreshTTL, DefaultRefreshTTL),
		retryWindow: cmp.Or(cfg.RefreshRetryWindow, DefaultRefreshRetryWindow),
		leeway:      cmp.Or(cfg.Leeway, DefaultLeeway), now: cfg.Now, random: cfg.Rand,
	}
	switch {
	case i.issuer == "":
		return nil, errors.New("token: Issuer is required")
	case len(i.audience) == 0:
		return nil, errors.New("token: Audience is required")
	case i.keys == nil:
		return nil, errors.New("token: Keys is required")
	case i.revocation == nil:
		return nil, errors.New("token: Revocation is required")
	case i.accessTTL < time.Second:
		return nil, fmt.Errorf("token: AccessTTL (%s) must be at least 1s", i.accessTTL)
	case i.accessTTL > i.keys.maxTTL:
		return nil, fmt.Errorf("token: AccessTTL (%s) exceeds the key set's MaxTokenTTL (%s): retired keys would leave the JWKS before their tokens expire", i.accessTTL, i.keys.maxTTL)
	case i.leeway < 0 || i.leeway > i.keys.leeway:
		return nil, fmt.Errorf("token: Leeway (%s) must be between 0 and the key set's Leeway (%s)", i.leeway, i.keys.leeway)
	case i.refreshTTL < time.Second:
		return nil, fmt.Errorf("token: RefreshTTL (%s) must be at least 1s", i.refreshTTL)
	}
	for n, a := range i.audience {
		if a == "" {
			return nil, fmt.Errorf("token: Audience[%d] is empty", n)
		}
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.random == nil {
		i.random = rand.Reader
	}
	i.parser = jwt.NewParser(
		jwt.WithValidMethods(supportedAlgorithms),
		jwt.WithIssuer(i.issuer),
		jwt.WithAudience(i.audience...),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(i.leeway),
		jwt.WithTimeFunc(i.now),
		jwt.WithStrictDecoding(),
	)
	return i, nil
}

// AccessTTL is the lifetime of the access tokens Mint makes.
func (i *Issuer) AccessTTL() time.Duration { return i.accessTTL }

// Mint signs an access token for c with the active key and returns it with
// the claims it carries. c must name Subject, SessionID and Connection;
// Mint sets Issuer, Audience, IssuedAt, NotBefore, ID and ExpiresAt (now +
// AccessTTL, or c.ExpiresAt if that is earlier, e.g. the session's end).
func (i *Issuer) Mint(c Claims) (string, Claims, error) {
	now := i.now()
	switch {
	case c.Subject == "":
		return "", Claims{}, errors.New("mint access token: Subject is empty")
	case c.SessionID == "":
		return "", Claims{}, errors.New("mint access token: SessionID is empty")
	case c.Connection == "":
		return "", Claims{}, errors.New("mint access token: Connection is empty")
	}
	for name := range c.Extra {
		if ReservedClaim(name) {
			return "", Claims{}, fmt.Errorf("mint access token: extra claim %q: %w", name, ErrReservedClaim)
		}
	}
	key := i.keys.state.Load().signing(now)
	if key == nil {
		return "", Claims{}, fmt.Errorf("mint access token: %w", ErrNoSigningKey)
	}
	iat := now.Truncate(time.Second)
	exp := iat.Add(i.accessTTL)
	if !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(exp) {
		exp = c.ExpiresAt.Truncate(time.Second)
	}
	if !exp.After(now) {
		return "", Claims{}, fmt.Errorf("mint access token: ExpiresAt %s is not after now %s (session over?)", c.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	var jti [16]byte
	if _, err := io.ReadFull(i.random, jti[:]); err != nil {
		return "", Claims{}, fmt.Errorf("mint access token: jti: %w", err)
	}
	c.Issuer, c.Audience, c.ID = i.issuer, i.audience, b64.EncodeToString(jti[:])
	c.IssuedAt, c.NotBefore, c.ExpiresAt = iat, iat, exp
	t := &jwt.Token{
		Header: map[string]any{"alg": key.method.Alg(), "typ": TypeHeader, "kid": key.ID},
		Claims: toWire(&c),
		Method: key.method,
	}
	signed, err := t.SignedString(key.signer)
	if err != nil {
		return "", Claims{}, fmt.Errorf("mint access token with key %q: %w", key.ID, err)
	}
	return signed, c, nil
}

// keyError carries a rejection out of golang-jwt's key function.
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// keyFor checks the header and returns the published key it names.
func (i *Issuer) keyFor(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); !isAccessTokenType(typ) {
		return nil, &keyError{fmt.Errorf("%w: typ is %q, want %q", ErrType, clip(typ), TypeHeader)}
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, &keyError{fmt.Errorf("%w: crit header parameters are not understood", ErrMalformed)}
	}
	kid, _ := t.Header["kid"].(string)
	key := i.keys.state.Load().verifying(kid, i.now(), i.leeway)
	if key == nil {
		return nil, &keyError{fmt.Errorf("%w: kid %q is not published", ErrUnknownKey, clip(kid))}
	}
	if alg := t.Method.Alg(); alg != key.Algorithm {
		return nil, &keyError{fmt.Errorf("%w: alg is %q but key %q is %s", ErrAlgorithm, clip(alg), key.ID, key.Algorithm)}
	}
	return key.public, nil
}

// isAccessTokenType accepts "at+jwt" and its full media type (RFC 9068
// section 4); media types are case-insensitive.
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, TypeHeader) || strings.EqualFold(typ, "application/"+TypeHeader)
}

// clip shortens an attacker-chosen value before it goes into an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Verify checks an access token and returns its claims: the signature with
// a published key of the algorithm that key was made for (never none,
// never HMAC), typ at+jwt, iss, aud, exp, nbf and iat with Leeway, the
// claims sub, sid and jti, and then revocation. Rejections match
// ErrInvalid and a specific reason (ErrExpired, ErrRevoked, ...); any other
// error (the revocation check failed) is not the token's fault.
func (i *Issuer) Verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(raw), MaxTokenBytes)
	}
	var w wireClaims
	t, err := i.parser.ParseWithClaims(raw, &w, i.keyFor)
	if err != nil {
		return nil, i.rejection(t, &w, err)
	}
	for _, req := range []struct{ name, v string }{{"sub", w.Subject}, {"sid", w.SessionID}, {"jti", w.ID}} {
		if req.v == "" {
			return nil, fmt.Errorf("%w: %s", ErrMissingClaim, req.name)
		}
	}
	if w.IssuedAt == 0 {
		return nil, fmt.Errorf("%w: iat", ErrMissingClaim)
	}
	// Mint never signs a token living longer than AccessTTL; one that does
	// was not minted under this configuration, however good its signature.
	if life := time.Duration(w.ExpiresAt-w.IssuedAt) * time.Second; life > i.accessTTL+i.leeway {
		return nil, fmt.Errorf("%w: exp - iat is %s, at most %s (access TTL) + %s (leeway) accepted", ErrLifetime, life, i.accessTTL, i.leeway)
	}
	c := w.claims()
	revoked, err := i.revocation.Revoked(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("check revocation of session %q: %w", c.SessionID, err)
	}
	if revoked {
		return nil, fmt.Errorf("%w: session %q", ErrRevoked, c.SessionID)
	}
	return c, nil
}

// rejection turns a golang-jwt error into one of ours, most fundamental
// failure first.
func (i *Issuer) rejection(t *jwt.Token, w *wireClaims, err error) error {
	var ke *keyError
	now := i.now().UTC().Format(time.RFC3339)
	switch {
	case errors.As(err, &ke):
		return ke.err
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: not a well-formed JWS compact token", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		alg, _ := t.Header["alg"].(string)
		return fmt.Errorf("%w: alg %q is missing or unknown", ErrAlgorithm, clip(alg))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if alg := t.Method.Alg(); !slices.Contains(supportedAlgorithms, alg) {
			return fmt.Errorf("%w: alg %q (accepted: %s)", ErrAlgorithm, clip(alg), strings.Join(supportedAlgorithms, ", "))
		}
		kid, _ := t.Header["kid"].(string)
		return fmt.Errorf("%w: signature does not verify with key %q", ErrSignature, clip(kid))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: exp, nbf, iss and aud are required", ErrMissingClaim)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: at %s, now %s", ErrExpired, timeOrZero(w.ExpiresAt).Format(time.RFC3339), now)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: nbf %s, iat %s, now %s", ErrNotYetValid,
			timeOrZero(w.NotBefore).Format(time.RFC3339), timeOrZero(w.IssuedAt).Format(time.RFC3339), now)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: iss is %q, want %q", ErrIssuer, clip(w.Issuer), i.issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: aud is %q, want one of %q", ErrAudience, clipAll(w.Audience), i.audience)
	}
	return fmt.Errorf("%w: claims do not validate", ErrMalformed)
}

func clipAll(v []string) []string {
	if len(v) > 4 {
		v = v[:4]
	}
	out := make([]string, len(v))
	for n, s := range v {
		out[n] = clip(s)
	}
	return out
}
