package token

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"
)

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// RefreshStore keeps refresh tokens as SHA-256 hashes (see
// HashRefreshToken), never the tokens. The server adapts the store to it.
//
// PutRefreshToken stores the hash of a new token of sessionID, usable
// until expiresAt.
//
// RotateRefreshToken spends oldHash and stores newHash in its place, in
// one transaction that is atomic across replicas (two concurrent calls
// with the same oldHash: one wins, the other sees a spent token). In this
// order:
//
//   - oldHash unknown: return an error wrapping ErrNotFound.
//   - oldHash already spent (rotated before): revoke its session, so that
//     every refresh token and access token of it stops working, commit
//     that, and return an error wrapping ErrReused. Checked before expiry:
//     a replayed token is a leak even when late.
//   - session revoked: ErrRevoked. Token or session expired (expiry at or
//     before now): ErrExpired. Nothing is stored.
//   - otherwise mark oldHash spent, store newHash for the same session
//     with expiry min(newExpiresAt, the session's expiry), and return the
//     session id and that expiry.
//
// Spent hashes must be kept (at least until their session expires) so
// that reuse is detected.
type RefreshStore interface {
	PutRefreshToken(ctx context.Context, hash []byte, sessionID string, expiresAt time.Time) error
	RotateRefreshToken(ctx context.Context, oldHash, newHash []byte, newExpiresAt, now time.Time) (sessionID string, expiresAt time.Time, err error)
}

// RefreshToken is a refresh token handed to a client.
type RefreshToken struct {
	// Token is the opaque value: 256 random bits, base64url. Only its hash
	// is stored; never log it.
	Token     string
	SessionID string
	ExpiresAt time.Time
}

// HashRefreshToken is the SHA-256 of a refresh token's 32 bytes, the only
// form stored. A value that is not a refresh token's shape fails with
// ErrMalformed, before any store lookup.
func HashRefreshToken(token string) ([]byte, error) {
	if len(token) != b64.EncodedLen(refreshTokenBytes) {
		return nil, fmt.Errorf("%w: refresh token has %d characters, want %d", ErrMalformed, len(token), b64.EncodedLen(refreshTokenBytes))
	}
	raw, err := b64.Strict().DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("%w: refresh token is not base64url", ErrMalformed)
	}
	sum := sha256.Sum256(raw)
	clear(raw)
	return sum[:], nil
}

func (i *Issuer) newRefreshToken() (string, []byte, error) {
	var raw [refreshTokenBytes]byte
	if _, err := io.ReadFull(i.random, raw[:]); err != nil {
		return "", nil, fmt.Errorf("refresh token: %w", err)
	}
	sum := sha256.Sum256(raw[:])
	tok := b64.EncodeToString(raw[:])
	clear(raw[:])
	return tok, sum[:], nil
}

func (i *Issuer) refreshStore() (RefreshStore, error) {
	if i.refresh == nil {
		return nil, errors.New("refresh tokens are not configured (Config.Refresh is nil)")
	}
	return i.refresh, nil
}

// IssueRefreshToken makes and stores the first refresh token of a session
// that ends at sessionExpiresAt; it expires at min(now + RefreshTTL,
// sessionExpiresAt).
func (i *Issuer) IssueRefreshToken(ctx context.Context, sessionID string, sessionExpiresAt time.Time) (RefreshToken, error) {
	store, err := i.refreshStore()
	if err != nil {
		return RefreshToken{}, err
	}
	now := i.now()
	switch {
	case sessionID == "":
		return RefreshToken{}, errors.New("issue refresh token: sessionID is empty")
	case !sessionExpiresAt.After(now):
		return RefreshToken{}, fmt.Errorf("issue refresh token: %w: session %q ended at %s", ErrExpired, sessionID, sessionExpiresAt.UTC().Format(time.RFC3339))
	}
	expiresAt := now.Add(i.refreshTTL)
	if sessionExpiresAt.Before(expiresAt) {
		expiresAt = sessionExpiresAt
	}
	tok, hash, err := i.newRefreshToken()
	if err != nil {
		return RefreshToken{}, err
	}
	if err := store.PutRefreshToken(ctx, hash, sessionID, expiresAt); err != nil {
		return RefreshToken{}, fmt.Errorf("store refresh token of session %q: %w", sessionID, err)
	}
	return RefreshToken{Token: tok, SessionID: sessionID, ExpiresAt: expiresAt}, nil
}

// RotateRefreshToken spends a presented refresh token and returns its
// replacement, with the session it belongs to (load it to mint the new
// access token). Rejections match ErrInvalid: ErrMalformed or an unknown
// token, ErrExpired, ErrRevoked, and ErrReused (a spent token came back;
// the store has revoked the session). Other errors are the store's.
func (i *Issuer) RotateRefreshToken(ctx context.Context, presented string) (RefreshToken, error) {
	store, err := i.refreshStore()
	if err != nil {
		return RefreshToken{}, err
	}
	oldHash, err := HashRefreshToken(presented)
	if err != nil {
		return RefreshToken{}, err
	}
	now := i.now()
	tok, newHash, err := i.newRefreshToken()
	if err != nil {
		return RefreshToken{}, err
	}
	newExpiresAt := now.Add(i.refreshTTL)
	sessionID, expiresAt, err := store.RotateRefreshToken(ctx, oldHash, newHash, newExpiresAt, now)
	switch {
	case errors.Is(err, ErrNotFound):
		return RefreshToken{}, fmt.Errorf("%w: refresh token not recognised", ErrInvalid)
	case err != nil: // ErrReused, ErrRevoked, ErrExpired (rejections) or the store's failure
		return RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	case sessionID == "" || expiresAt.After(newExpiresAt):
		return RefreshToken{}, fmt.Errorf("rotate refresh token: store broke its contract (session %q, expiry %s after the requested %s)",
			sessionID, expiresAt.UTC().Format(time.RFC3339), newExpiresAt.UTC().Format(time.RFC3339))
	case !expiresAt.After(now):
		return RefreshToken{}, fmt.Errorf("rotate refresh token: %w: session %q has ended", ErrExpired, sessionID)
	}
	return RefreshToken{Token: tok, SessionID: sessionID, ExpiresAt: expiresAt}, nil
}
