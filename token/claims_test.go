package token

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSubject(t *testing.T) {
	s := Subject("acme", "alice@acme.example")
	if s != Subject("acme", "alice@acme.example") {
		t.Fatal("Subject is not deterministic")
	}
	if len(s) != 43 || strings.ContainsAny(s, "+/=") {
		t.Fatalf("Subject = %q, want 43 characters of base64url", s)
	}
	distinct := [][2]string{
		{"acme", "alice@acme.example"},
		{"acme2", "alice@acme.example"},
		{"acme", "Alice@acme.example"},
		// Shifting bytes between the parts must change the subject.
		{"ab", "c"}, {"a", "bc"}, {"abc", ""}, {"", "abc"},
		{"a\x00", "b"}, {"a", "\x00b"},
	}
	seen := map[string][2]string{}
	for _, p := range distinct {
		sub := Subject(p[0], p[1])
		if prev, ok := seen[sub]; ok {
			t.Errorf("Subject%q = Subject%q", p, prev)
		}
		seen[sub] = p
	}
}

func TestMintedClaimsRoundTrip(t *testing.T) {
	f := newFixture(t, ES256)
	in := testClaims()
	in.ClientID = "billing-backend"
	tok, minted, err := f.iss.Mint(in)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if minted.Issuer != testIssuer || !reflect.DeepEqual(minted.Audience, []string{testAudience}) ||
		!minted.IssuedAt.Equal(now) || !minted.NotBefore.Equal(now) || !minted.ExpiresAt.Equal(now.Add(DefaultAccessTTL)) ||
		len(minted.ID) != 22 {
		t.Fatalf("minted registered claims = %+v", minted)
	}
	got, err := f.iss.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, minted) {
		t.Fatalf("verified claims differ from minted ones:\n got %+v\nwant %+v", *got, minted)
	}
	_, again, _ := f.iss.Mint(in)
	if again.ID == minted.ID {
		t.Fatal("jti repeats")
	}
}

func TestMintChecks(t *testing.T) {
	f := newFixture(t, ES256)
	now := f.clock.Now()
	tests := []struct {
		name    string
		edit    func(c *Claims)
		wantErr string
		is      error
		wantExp time.Time
	}{
		{name: "no subject", edit: func(c *Claims) { c.Subject = "" }, wantErr: "Subject"},
		{name: "no session", edit: func(c *Claims) { c.SessionID = "" }, wantErr: "SessionID"},
		{name: "no connection", edit: func(c *Claims) { c.Connection = "" }, wantErr: "Connection"},
		{name: "extra overwrites sub", edit: func(c *Claims) { c.Extra = map[string]any{"sub": "admin"} }, is: ErrReservedClaim},
		{name: "extra overwrites roles", edit: func(c *Claims) { c.Extra = map[string]any{"roles": []string{"owner"}} }, is: ErrReservedClaim},
		{name: "extra overwrites tenant", edit: func(c *Claims) { c.Extra = map[string]any{"tenant": "other"} }, is: ErrReservedClaim},
		{name: "session ended", edit: func(c *Claims) { c.ExpiresAt = now }, wantErr: "not after now"},
		{name: "session ends before TTL", edit: func(c *Claims) { c.ExpiresAt = now.Add(time.Minute) }, wantExp: now.Add(time.Minute)},
		{name: "later ExpiresAt cannot lengthen", edit: func(c *Claims) { c.ExpiresAt = now.Add(time.Hour) }, wantExp: now.Add(DefaultAccessTTL)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testClaims()
			tc.edit(&c)
			_, minted, err := f.iss.Mint(c)
			if tc.wantErr == "" && tc.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !minted.ExpiresAt.Equal(tc.wantExp) {
					t.Fatalf("exp = %s, want %s", minted.ExpiresAt, tc.wantExp)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Mint = %v, want an error (%q, %v)", err, tc.wantErr, tc.is)
			}
		})
	}
}

func TestReservedClaims(t *testing.T) {
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "tenant", "conn", "email",
		"name", "given_name", "family_name", "groups", "roles", "auth_time", "acr", "client_id", "scope", "cnf"} {
		if !ReservedClaim(name) {
			t.Errorf("%q is not reserved", name)
		}
	}
	if ReservedClaim("department") {
		t.Error("department is reserved")
	}
}

func TestExtraClaimsCannotShadowOnParse(t *testing.T) {
	var w wireClaims
	if err := w.UnmarshalJSON([]byte(`{"sub":"a","roles":["r"],"department":"x","n":1}`)); err != nil {
		t.Fatal(err)
	}
	if w.Subject != "a" || len(w.Roles) != 1 || len(w.Extra) != 2 || w.Extra["department"] != "x" || w.Extra["n"] != 1.0 {
		t.Fatalf("parsed = %+v", w)
	}
}

func TestNewConfig(t *testing.T) {
	f := newFixture(t, ES256)
	base := func() Config {
		return Config{Issuer: testIssuer, Audience: []string{testAudience}, Keys: f.set, Revocation: f.refresh}
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }, "Issuer"},
		{"no audience", func(c *Config) { c.Audience = nil }, "Audience"},
		{"empty audience", func(c *Config) { c.Audience = []string{""} }, "Audience[0]"},
		{"no keys", func(c *Config) { c.Keys = nil }, "Keys"},
		{"no revocation", func(c *Config) { c.Revocation = nil }, "Revocation"},
		{"TTL beyond key retention", func(c *Config) { c.AccessTTL = time.Hour }, "AccessTTL"},
		{"leeway beyond key set's", func(c *Config) { c.Leeway = time.Hour }, "Leeway"},
		{"negative refresh TTL", func(c *Config) { c.RefreshTTL = -time.Hour }, "RefreshTTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := New(base()); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
