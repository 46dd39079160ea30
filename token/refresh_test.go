package token

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func TestRefreshRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	sessionEnd := f.clock.Now().Add(8 * time.Hour)
	f.refresh.addSession("sess-1", sessionEnd)

	first, err := f.iss.IssueRefreshToken(ctx, "sess-1", sessionEnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Token) != 43 || !first.ExpiresAt.Equal(sessionEnd) {
		t.Fatalf("first = %d chars, expires %s; want 43 chars, the session's end %s", len(first.Token), first.ExpiresAt, sessionEnd)
	}
	raw, err := b64.DecodeString(first.Token)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if _, ok := f.refresh.tokens[hex.EncodeToString(sum[:])]; !ok || len(f.refresh.tokens) != 1 {
		t.Fatal("the store does not hold exactly the SHA-256 of the token")
	}

	f.clock.Advance(time.Hour)
	second, err := f.iss.RotateRefreshToken(ctx, first.Token)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if second.Token == first.Token || second.SessionID != "sess-1" || !second.ExpiresAt.Equal(sessionEnd) {
		t.Fatalf("second = %+v", second)
	}
	access, _ := f.mint(t)
	if _, err := f.iss.Verify(ctx, access); err != nil {
		t.Fatalf("access token before reuse: %v", err)
	}

	// The spent token comes back after the retry window: the session is
	// revoked, with everything issued for it.
	f.clock.Advance(DefaultRefreshRetryWindow)
	if _, err := f.iss.RotateRefreshToken(ctx, first.Token); !errors.Is(err, ErrReused) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("reuse = %v, want ErrReused", err)
	}
	if _, err := f.iss.RotateRefreshToken(ctx, second.Token); !errors.Is(err, ErrRevoked) {
		t.Fatalf("the live token after reuse = %v, want ErrRevoked", err)
	}
	if _, err := f.iss.Verify(ctx, access); !errors.Is(err, ErrRevoked) {
		t.Fatalf("access token after reuse = %v, want ErrRevoked", err)
	}
}

func TestRefreshExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		sessionFor time.Duration
		advance    time.Duration
		wantExpiry time.Duration // of the first token, from issue
		want       error         // of the rotation after advance
	}{
		{"session shorter than RefreshTTL caps the token", time.Hour, 30 * time.Minute, time.Hour, nil},
		{"RefreshTTL shorter than the session", 48 * time.Hour, time.Hour, DefaultRefreshTTL, nil},
		{"session over", time.Hour, time.Hour, time.Hour, ErrExpired},
		{"token idle past RefreshTTL", 48 * time.Hour, DefaultRefreshTTL, DefaultRefreshTTL, ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ES256)
			start := f.clock.Now()
			f.refresh.addSession("s", start.Add(tc.sessionFor))
			rt, err := f.iss.IssueRefreshToken(ctx, "s", start.Add(tc.sessionFor))
			if err != nil {
				t.Fatal(err)
			}
			if !rt.ExpiresAt.Equal(start.Add(tc.wantExpiry)) {
				t.Fatalf("expires %s, want %s", rt.ExpiresAt, start.Add(tc.wantExpiry))
			}
			f.clock.Advance(tc.advance)
			next, err := f.iss.RotateRefreshToken(ctx, rt.Token)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("rotate = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next.ExpiresAt.After(start.Add(tc.sessionFor)) {
				t.Fatalf("rotated token outlives the session: %s", next.ExpiresAt)
			}
		})
	}
}

func TestRefreshRejectsBeforeTheStore(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	good := b64.EncodeToString(make([]byte, 32))
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"short", good[:42], ErrMalformed},
		{"padding", good + "=", ErrMalformed},
		{"standard alphabet", "+" + good[1:], ErrMalformed},
		{"non-canonical last character", good[:42] + "B", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.refresh.calls
			_, err := f.iss.RotateRefreshToken(ctx, tc.token)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("rotate = %v, want %v", err, tc.want)
			}
			if f.refresh.calls != before {
				t.Fatal("a malformed token reached the store")
			}
		})
	}
	if _, err := f.iss.RotateRefreshToken(ctx, good); !errors.Is(err, ErrInvalid) || f.refresh.calls == 0 {
		t.Fatalf("unknown well-formed token = %v, want ErrInvalid from the store lookup", err)
	}
}

func TestIssueRefreshTokenChecks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	if _, err := f.iss.IssueRefreshToken(ctx, "", f.clock.Now().Add(time.Hour)); err == nil {
		t.Error("empty session id accepted")
	}
	if _, err := f.iss.IssueRefreshToken(ctx, "s", f.clock.Now()); !errors.Is(err, ErrExpired) {
		t.Errorf("ended session = %v, want ErrExpired", err)
	}
	noRefresh := f.issuer(t, f.set)
	noRefresh.refresh = nil
	if _, err := noRefresh.IssueRefreshToken(ctx, "s", f.clock.Now().Add(time.Hour)); err == nil {
		t.Error("refresh without a store succeeded")
	}
}

// TestRefreshRetry: a client whose rotation answer was lost presents the
// spent token again within the window and gets the very same successor;
// nothing new is stored, and the store never holds a usable token.
func TestRefreshRetry(t *testing.T) {
	f := newFixture(t, ES256)
	ctx := context.Background()
	f.refresh.addSession("sess-1", f.clock.Now().Add(12*time.Hour))
	first, err := f.iss.IssueRefreshToken(ctx, "sess-1", f.clock.Now().Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.iss.RotateRefreshToken(ctx, first.Token)
	if err != nil {
		t.Fatal(err)
	}
	stored := len(f.refresh.tokens)
	f.clock.Advance(DefaultRefreshRetryWindow - time.Second)
	retry, err := f.iss.RotateRefreshToken(ctx, first.Token)
	if err != nil {
		t.Fatalf("retry within the window: %v", err)
	}
	if retry.Token != second.Token || !retry.ExpiresAt.Equal(second.ExpiresAt) || len(f.refresh.tokens) != stored {
		t.Fatalf("retry = %+v (store holds %d), want the same successor %+v and nothing new", retry, len(f.refresh.tokens), second)
	}
	// At rest the successor is sealed: neither its value nor its raw bytes
	// appear, and the stored hash of the predecessor does not open it.
	raw, _ := b64.DecodeString(second.Token)
	for _, row := range f.refresh.tokens {
		if bytes.Contains(row.sealed, raw) || bytes.Contains(row.sealed, []byte(second.Token)) {
			t.Fatal("the store holds the successor in plaintext")
		}
		if row.sealed != nil {
			sum, _ := HashRefreshToken(first.Token)
			if _, err := openSuccessor(sum, row.sealed, row.next); err == nil {
				t.Fatal("the predecessor's stored hash opens the sealed successor")
			}
		}
	}
	// Once the successor is used, the old token is reuse.
	if _, err := f.iss.RotateRefreshToken(ctx, second.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := f.iss.RotateRefreshToken(ctx, first.Token); !errors.Is(err, ErrReused) {
		t.Fatalf("old token after its successor was used = %v, want ErrReused", err)
	}
}

// TestRefreshRetryDisabled: a negative window keeps the strict rule.
func TestRefreshRetryDisabled(t *testing.T) {
	f := newFixture(t, ES256)
	f.iss.retryWindow = -1
	ctx := context.Background()
	f.refresh.addSession("sess-1", f.clock.Now().Add(12*time.Hour))
	first, err := f.iss.IssueRefreshToken(ctx, "sess-1", f.clock.Now().Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.iss.RotateRefreshToken(ctx, first.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := f.iss.RotateRefreshToken(ctx, first.Token); !errors.Is(err, ErrReused) {
		t.Fatalf("retry with retries disabled = %v, want ErrReused", err)
	}
}
