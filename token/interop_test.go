package token

import (
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// TestInteropGoJose checks that a verifier built on go-jose, given only
// the JWKS JSON, accepts tokens minted here: per algorithm.
func TestInteropGoJose(t *testing.T) {
	for _, alg := range supportedAlgorithms {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			tok, minted := f.mint(t)
			jwksJSON, err := f.set.JWKS()
			if err != nil {
				t.Fatal(err)
			}

			var set jose.JSONWebKeySet
			if err := json.Unmarshal(jwksJSON, &set); err != nil {
				t.Fatalf("go-jose cannot read the JWKS: %v", err)
			}
			parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatalf("go-jose ParseSigned: %v", err)
			}
			h := parsed.Headers[0]
			if h.Algorithm != alg {
				t.Fatalf("alg = %q, want %q", h.Algorithm, alg)
			}
			if typ := h.ExtraHeaders[jose.HeaderType]; typ != TypeHeader {
				t.Fatalf("typ = %v, want %q", typ, TypeHeader)
			}
			keys := set.Key(h.KeyID)
			if len(keys) != 1 {
				t.Fatalf("JWKS has %d keys with kid %q, want 1", len(keys), h.KeyID)
			}
			if !keys[0].Valid() || !keys[0].IsPublic() || keys[0].Use != "sig" || keys[0].Algorithm != alg {
				t.Fatalf("JWK not a public %s signing key: %+v", alg, keys[0])
			}

			var std josejwt.Claims
			var ours struct {
				SessionID string   `json:"sid"`
				Tenant    string   `json:"tenant"`
				Conn      string   `json:"conn"`
				Email     string   `json:"email"`
				Groups    []string `json:"groups"`
				Roles     []string `json:"roles"`
				AuthTime  int64    `json:"auth_time"`
				ACR       string   `json:"acr"`
				Dept      string   `json:"department"`
			}
			if err := parsed.Claims(keys[0].Key, &std, &ours); err != nil {
				t.Fatalf("go-jose signature check: %v", err)
			}
			if err := std.ValidateWithLeeway(josejwt.Expected{
				Issuer: testIssuer, AnyAudience: josejwt.Audience{testAudience}, Subject: minted.Subject, Time: f.clock.Now(),
			}, 0); err != nil {
				t.Fatalf("go-jose claims check: %v", err)
			}
			if got, want := std.Expiry.Time(), f.clock.Now().Add(DefaultAccessTTL); !got.Equal(want) {
				t.Errorf("exp = %s, want %s", got, want)
			}
			if std.ID == "" || std.IssuedAt == nil || std.NotBefore == nil {
				t.Errorf("jti, iat or nbf missing: %+v", std)
			}
			if ours.SessionID != "sess-1" || ours.Tenant != "acme" || ours.Conn != "acme-okta" || ours.Email != "alice@acme.example" ||
				len(ours.Groups) != 2 || ours.Roles[0] != "admin" || ours.ACR == "" || ours.Dept != "R&D" ||
				!time.Unix(ours.AuthTime, 0).Equal(minted.AuthTime) {
				t.Errorf("custom claims as go-jose reads them: %+v", ours)
			}

			// The same JWKS does not vouch for a token altered after signing.
			forged := tok[:len(tok)-4] + "AAAA"
			if p, err := josejwt.ParseSigned(forged, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}); err == nil {
				if err := p.Claims(keys[0].Key, &std); err == nil {
					t.Fatal("go-jose accepted a token with a replaced signature tail")
				}
			}
		})
	}
}
