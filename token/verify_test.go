package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// forge signs claims with header fields over the defaults of a genuine
// token, so each case differs from a valid token in one respect.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign forged token: %v", err)
	}
	return s
}

func validMapClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIssuer, "sub": "s", "aud": testAudience, "sid": "sess-1", "jti": "j",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for n, x := range c {
		out[n] = x
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t, ES256)
	ctx := context.Background()
	key := f.signingKey(t)
	now := f.clock.Now()
	claims := validMapClaims(now)
	hdr := func(kv ...any) map[string]any {
		h := map[string]any{"typ": "at+jwt", "kid": key.ID}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i].(string)] = kv[i+1]
		}
		return h
	}
	genuine, _ := f.mint(t)

	// The public key in the forms an attacker could use as an HMAC secret.
	der, err := x509.MarshalPKIXPublicKey(key.public)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwks, err := f.set.JWKS()
	if err != nil {
		t.Fatal(err)
	}

	// An Ed25519 key of a second algorithm, published in the same set.
	f.set.alg = EdDSA
	edInfo, err := f.set.RotateNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	edKey := f.set.state.Load().byID[edInfo.ID]
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)

	tampered := func() string {
		parts := strings.Split(genuine, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		payload = []byte(strings.Replace(string(payload), `"roles":["admin"]`, `"roles":["owner"]`, 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}

	tests := []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"control: forged fixture with the real key is accepted", forge(t, jwt.SigningMethodES256, key.signer, hdr(), claims), nil},
		{"control: minted token is accepted", genuine, nil},
		{"typ application/at+jwt is accepted", forge(t, jwt.SigningMethodES256, key.signer, hdr("typ", "application/AT+JWT"), claims), nil},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr(), claims), ErrAlgorithm},
		// Refused on alg alone, before any key lookup.
		{"alg none, unknown kid", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr("kid", "nope"), claims), ErrAlgorithm},
		{"HS256, unknown kid", forge(t, jwt.SigningMethodHS256, der, hdr("kid", "nope"), claims), ErrAlgorithm},
		{"HS256 keyed with the public key DER", forge(t, jwt.SigningMethodHS256, der, hdr(), claims), ErrAlgorithm},
		{"HS256 keyed with the public key PEM", forge(t, jwt.SigningMethodHS256, pemBytes, hdr(), claims), ErrAlgorithm},
		{"HS256 keyed with the JWKS", forge(t, jwt.SigningMethodHS256, jwks, hdr(), claims), ErrAlgorithm},
		{"EdDSA signature under the kid of the ES256 key", forge(t, jwt.SigningMethodEdDSA, edKey.signer, hdr(), claims), ErrAlgorithm},
		{"unknown alg", strings.Replace(forge(t, jwt.SigningMethodES256, key.signer, hdr(), claims), "eyJhbGciOiJFUzI1NiIs", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XS256",`)), 1), ErrAlgorithm},
		{"unknown kid", forge(t, jwt.SigningMethodES256, key.signer, hdr("kid", "nope"), claims), ErrUnknownKey},
		{"no kid", forge(t, jwt.SigningMethodES256, key.signer, hdr("kid", nil), claims), ErrUnknownKey},
		{"signed by a stranger with a published kid", forge(t, jwt.SigningMethodEdDSA, otherEd, hdr("kid", edKey.ID), claims), ErrSignature},
		{"tampered payload", tampered(), ErrSignature},
		{"expired", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "exp", now.Add(-time.Minute).Unix())), ErrExpired},
		{"no exp", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "exp", nil)), ErrMissingClaim},
		{"not yet valid", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "nbf", now.Add(time.Minute).Unix())), ErrNotYetValid},
		{"issued in the future", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "iat", now.Add(time.Minute).Unix())), ErrNotYetValid},
		{"no nbf", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "nbf", nil)), ErrMissingClaim},
		{"wrong aud", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "aud", "https://other.example")), ErrAudience},
		{"no aud", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "aud", nil)), ErrMissingClaim},
		{"wrong iss", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "iss", "https://evil.example")), ErrIssuer},
		{"wrong typ JWT", forge(t, jwt.SigningMethodES256, key.signer, hdr("typ", "JWT"), claims), ErrType},
		{"no typ", forge(t, jwt.SigningMethodES256, key.signer, hdr("typ", nil), claims), ErrType},
		{"crit header", forge(t, jwt.SigningMethodES256, key.signer, hdr("crit", []string{"exp"}), claims), ErrMalformed},
		{"no iat", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "iat", nil)), ErrMissingClaim},
		// Signed with our key but living longer than we ever mint.
		{"lifetime beyond access TTL", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "exp", now.Add(f.iss.AccessTTL()+DefaultLeeway+2*time.Second).Unix())), ErrLifetime},
		{"lifetime at access TTL + leeway is accepted", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "exp", now.Add(f.iss.AccessTTL()+f.iss.leeway).Unix())), nil},
		{"no sid", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "sid", nil)), ErrMissingClaim},
		{"no sub", forge(t, jwt.SigningMethodES256, key.signer, hdr(), with(claims, "sub", nil)), ErrMissingClaim},
		{"two segments", "eyJhbGciOiJFUzI1NiJ9.e30", ErrMalformed},
		{"oversized", strings.Repeat("a", MaxTokenBytes+1), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.iss.Verify(ctx, tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.SessionID != "sess-1" {
					t.Fatalf("sid = %q", c.SessionID)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify error = %v, want %v (and ErrInvalid)", err, tc.want)
			}
			if c != nil {
				t.Fatal("claims returned with an error")
			}
		})
	}
}

func TestVerifyRevokedSession(t *testing.T) {
	f := newFixture(t, ES256)
	ctx := context.Background()
	f.refresh.addSession("sess-1", f.clock.Now().Add(time.Hour))
	tok, _ := f.mint(t)
	if _, err := f.iss.Verify(ctx, tok); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	f.refresh.revoke("sess-1")
	if _, err := f.iss.Verify(ctx, tok); !errors.Is(err, ErrRevoked) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("after revocation: %v, want ErrRevoked", err)
	}
}

type failingChecker struct{}

func (failingChecker) Revoked(context.Context, *Claims) (bool, error) {
	return false, errors.New("revocation cache unavailable")
}

func TestVerifyRevocationFailureIsNotARejection(t *testing.T) {
	f := newFixture(t, ES256)
	tok, _ := f.mint(t)
	f.iss.revocation = failingChecker{}
	_, err := f.iss.Verify(context.Background(), tok)
	if err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify = %v, want a non-rejection error", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := newFixture(t, ES256)
	f.clock.Advance(time.Hour) // the key was published well before nbf
	tok, c := f.mint(t)
	tests := []struct {
		name string
		at   time.Time
		want error
	}{
		{"just before exp", c.ExpiresAt.Add(-time.Second), nil},
		{"within leeway after exp", c.ExpiresAt.Add(DefaultLeeway - time.Second), nil},
		{"past leeway", c.ExpiresAt.Add(DefaultLeeway), ErrExpired},
		{"within leeway before nbf", c.NotBefore.Add(-DefaultLeeway + time.Second), nil},
		{"before nbf past leeway", c.NotBefore.Add(-DefaultLeeway - time.Second), ErrNotYetValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Set(tc.at)
			_, err := f.iss.Verify(context.Background(), tok)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify at %s = %v, want %v", tc.at, err, tc.want)
			}
		})
	}
}
