package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/token"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newValidateServer builds a server without listeners, for calling the
// services directly.
func newValidateServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := config.Default()
	cfg.Store = "sqlite://" + filepath.Join(tb.TempDir(), "ssogate.db")
	srv, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

func mint(tb testing.TB, s *Server, sid string) string {
	tb.Helper()
	tok, _, err := s.tokens.Mint(token.Claims{Subject: token.Subject("acme", "jo@acme.com"), SessionID: sid, Connection: "acme", Tenant: "acme-inc"})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestValidateTokenCacheStillSeesRevocationAndExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := newValidateServer(t, WithClock(clock.now))
	ctx := context.Background()
	login := loginService{s: s}
	tok := mint(t, s, "sess-1")
	for i := 0; i < 2; i++ { // the second call is served from the cache
		v, err := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: tok})
		if err != nil || !v.Valid {
			t.Fatalf("call %d: %v %v", i, v, err)
		}
	}
	if _, ok := s.verified.get(tok, clock.now()); !ok {
		t.Fatal("a verified token was not cached")
	}
	s.revoked.add("sess-1", clock.now())
	if v, _ := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: tok}); v.Valid || v.Reason != "revoked" {
		t.Fatalf("cached token of a revoked session: %v", v)
	}
	other := mint(t, s, "sess-2")
	if v, _ := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: other}); !v.Valid {
		t.Fatal(v)
	}
	clock.add(s.cfg.Token.AccessTTL + time.Minute)
	if v, _ := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: other}); v.Valid || v.Reason != "expired" {
		t.Fatalf("cached token after expiry: %v", v)
	}
}

func TestVerifiedCacheIsBounded(t *testing.T) {
	c := newVerifiedCache(100)
	exp := &token.Claims{ExpiresAt: time.Now().Add(time.Hour)}
	for i := 0; i < 1000; i++ {
		c.put(string(rune('a'+i%26))+time.Duration(i).String(), exp)
	}
	if n := len(c.entries); n > 100 {
		t.Fatalf("cache holds %d entries, bound 100", n)
	}
}

// BenchmarkValidateToken compares ValidateToken on a token seen before
// (cache) with a fresh verification of the same token (the signature path),
// in one run: report the ratio.
func BenchmarkValidateToken(b *testing.B) {
	s := newValidateServer(b)
	ctx := context.Background()
	login := loginService{s: s}
	tok := mint(b, s, "sess-bench")
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.tokens.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, err := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: tok}); err != nil || !v.Valid {
				b.Fatal(v, err)
			}
		}
	})
}

// A replica picks up keys another replica made when it serves the JWKS,
// without waiting for the minute's maintenance.
func TestJWKSPicksUpOtherReplicasKeys(t *testing.T) {
	cfg := config.Default()
	cfg.Store = "sqlite://" + filepath.Join(t.TempDir(), "ssogate.db")
	open := func() *Server {
		s, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	k, err := b.keys.RotateNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := a.jwks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), k.ID) {
		t.Fatalf("replica a's JWKS lacks replica b's new key %s: %s", k.ID, doc)
	}
	// On-demand reloads are rate-limited: a flood of unknown kids does not
	// become a flood of store queries.
	if a.reloadKeys(ctx) {
		t.Error("a second reload within a second was not refused")
	}
}
