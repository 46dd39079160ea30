package client

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// The checks a token can fail; every error of Verify matches one through
// errors.Is, and ErrInvalid unless the failure was ours (ErrUnavailable).
var (
	ErrInvalid     = errors.New("invalid access token")
	ErrMissing     = fmt.Errorf("%w: missing", ErrInvalid)
	ErrMalformed   = fmt.Errorf("%w: malformed", ErrInvalid)
	ErrType        = fmt.Errorf("%w: typ is not at+jwt", ErrInvalid)
	ErrUnknownKey  = fmt.Errorf("%w: kid not in the issuer's JWKS", ErrInvalid)
	ErrAlgorithm   = fmt.Errorf("%w: algorithm is not the key's", ErrInvalid)
	ErrSignature   = fmt.Errorf("%w: signature does not verify", ErrInvalid)
	ErrIssuer      = fmt.Errorf("%w: wrong issuer", ErrInvalid)
	ErrAudience    = fmt.Errorf("%w: wrong audience", ErrInvalid)
	ErrExpired     = fmt.Errorf("%w: expired", ErrInvalid)
	ErrNotYetValid = fmt.Errorf("%w: not yet valid", ErrInvalid)
	ErrRevoked     = fmt.Errorf("%w: revoked or refused by ValidateToken", ErrInvalid)
	// ErrUnavailable: the JWKS or ValidateToken could not be reached; the
	// token was not judged. Answer 503, not 401.
	ErrUnavailable = errors.New("access token could not be checked: ssogate unreachable")
)

// VerifierConfig configures a Verifier; Issuer and Audience are required.
type VerifierConfig struct {
	// Issuer is the tokens' iss (ssogate's token.issuer, by default its
	// external URL).
	Issuer string
	// Audience must be among the token's aud (ssogate's token.audience).
	Audience string
	// JWKSURL defaults to Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// HTTPClient fetches the JWKS; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway for exp and nbf; default 30 seconds.
	Leeway time.Duration
	// Online, when set, also asks ValidateToken about every token that
	// passes the offline checks, so that a revocation is seen at once.
	// It needs an API key with the login scope (Dial(...).Login).
	Online ssogatev1.LoginServiceClient
	// OnlineCacheTTL keeps a positive ValidateToken answer this long;
	// default 1 s, which bounds how late a revocation is seen.
	OnlineCacheTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg VerifierConfig

	mu        sync.Mutex // guards the fields below and serialises fetches
	keys      map[string]jose.JSONWebKey
	expires   time.Time // when the cached JWKS goes stale
	lastFetch time.Time
	lastSweep time.Time

	online sync.Map // sha256(token) -> time.Time (cached until)
}

// NewVerifier checks cfg and fills its defaults. The JWKS is fetched on the
// first token.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("client: VerifierConfig.Issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("client: VerifierConfig.Audience is required")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/jwks.json"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.OnlineCacheTTL == 0 {
		cfg.OnlineCacheTTL = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg}, nil
}

// supportedAlgorithms are those ssogate signs with; which one a token may
// use is then fixed by its key.
var supportedAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

// claims is the token's payload as ssogate writes it.
type claims struct {
	jwt.Claims
	SessionID  string   `json:"sid"`
	Tenant     string   `json:"tenant"`
	Connection string   `json:"conn"`
	Email      string   `json:"email"`
	Name       string   `json:"name"`
	GivenName  string   `json:"given_name"`
	FamilyName string   `json:"family_name"`
	Groups     []string `json:"groups"`
	Roles      []string `json:"roles"`
}

// Verify checks raw (the token, without "Bearer ") and returns its
// identity. Errors name the failed check (see ErrExpired and the others).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if raw == "" {
		return nil, ErrMissing
	}
	tok, err := jwt.ParseSigned(raw, supportedAlgorithms)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrMalformed, len(tok.Headers))
	}
	h := tok.Headers[0]
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if t := strings.ToLower(typ); t != "at+jwt" && t != "application/at+jwt" {
		return nil, fmt.Errorf("%w: typ %q", ErrType, typ)
	}
	key, err := v.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if key.Algorithm == "" || h.Algorithm != key.Algorithm {
		return nil, fmt.Errorf("%w: header says %q, key %q is for %q", ErrAlgorithm, h.Algorithm, h.KeyID, key.Algorithm)
	}
	var c claims
	all := map[string]any{}
	if err := tok.Claims(key.Key, &c, &all); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrMalformed)
	}
	now := v.cfg.Now()
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: now}, v.cfg.Leeway)
	switch {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, fmt.Errorf("%w: %q, want %q", ErrIssuer, c.Issuer, v.cfg.Issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, fmt.Errorf("%w: %q does not include %q", ErrAudience, []string(c.Audience), v.cfg.Audience)
	case errors.Is(err, jwt.ErrExpired):
		return nil, fmt.Errorf("%w: at %s", ErrExpired, c.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, fmt.Errorf("%w: until %s", ErrNotYetValid, c.NotBefore.Time().UTC().Format(time.RFC3339))
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrMalformed)
	}
	if v.cfg.Online != nil {
		if err := v.checkOnline(ctx, raw, c.Expiry.Time()); err != nil {
			return nil, err
		}
	}
	return &Identity{
		Subject: c.Subject, TenantID: c.Tenant, ConnectionID: c.Connection, SessionID: c.SessionID,
		Email: c.Email, Name: c.Name, GivenName: c.GivenName, FamilyName: c.FamilyName,
		Groups: c.Groups, Roles: c.Roles, ExpiresAt: c.Expiry.Time(), Claims: all,
	}, nil
}

// checkOnline asks ValidateToken, keeping a yes for OnlineCacheTTL (never
// past the token's exp).
func (v *Verifier) checkOnline(ctx context.Context, raw string, exp time.Time) error {
	sum := sha256.Sum256([]byte(raw))
	now := v.cfg.Now()
	if until, ok := v.online.Load(sum); ok && now.Before(until.(time.Time)) {
		return nil
	}
	res, err := v.cfg.Online.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: raw})
	if err != nil {
		return fmt.Errorf("%w: ValidateToken: %v", ErrUnavailable, err)
	}
	if !res.Valid {
		return fmt.Errorf("%w: %s", ErrRevoked, res.Reason)
	}
	until := now.Add(v.cfg.OnlineCacheTTL)
	if exp.Before(until) {
		until = exp
	}
	v.online.Store(sum, until)
	v.sweepOnline(now)
	return nil
}

// sweepOnline drops stale cache entries now and then, so that the cache
// holds about one TTL's worth of tokens.
func (v *Verifier) sweepOnline(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.lastSweep) < 10*v.cfg.OnlineCacheTTL {
		return
	}
	v.lastSweep = now
	v.online.Range(func(k, until any) bool {
		if !now.Before(until.(time.Time)) {
			v.online.Delete(k)
		}
		return true
	})
}

// refetchInterval bounds JWKS fetches caused by unknown kids.
const refetchInterval = time.Second

// key returns the published key kid, fetching the JWKS when the cache is
// stale or lacks kid (at most once per refetchInterval).
func (v *Verifier) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	k, ok := v.keys[kid]
	fresh := v.keys != nil && now.Before(v.expires)
	if ok && fresh {
		return k, nil
	}
	if v.keys != nil && now.Sub(v.lastFetch) < refetchInterval {
		if ok {
			return k, nil
		}
		return jose.JSONWebKey{}, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
	}
	if err := v.fetch(ctx, now); err != nil {
		if ok { // stale but known: better than refusing every token
			return k, nil
		}
		return jose.JSONWebKey{}, err
	}
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
}

// JWKS cache bounds, whatever max-age says.
const (
	minJWKSAge = refetchInterval
	maxJWKSAge = 24 * time.Hour
)

func (v *Verifier) fetch(ctx context.Context, now time.Time) error {
	v.lastFetch = now
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return fmt.Errorf("%w: JWKS URL: %v", ErrUnavailable, err)
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: JWKS: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: JWKS %s: HTTP %d", ErrUnavailable, v.cfg.JWKSURL, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("%w: JWKS %s: %v", ErrUnavailable, v.cfg.JWKSURL, err)
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use == "" || k.Use == "sig" {
			keys[k.KeyID] = k
		}
	}
	v.keys = keys
	v.expires = now.Add(maxAge(resp.Header.Get("Cache-Control")))
	return nil
}

// maxAge reads Cache-Control's max-age, bounded; no-store or no-cache
// count as the minimum.
func maxAge(cc string) time.Duration {
	age := 5 * time.Minute
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				age = time.Duration(n) * time.Second
			}
		}
		if d == "no-store" || d == "no-cache" {
			return minJWKSAge
		}
	}
	return min(max(age, minJWKSAge), maxJWKSAge)
}
