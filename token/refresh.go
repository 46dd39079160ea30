package token

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
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
// RotateRefreshToken spends oldHash and stores next in its place, in one
// transaction that is atomic across replicas (two concurrent calls with
// the same oldHash: one wins, the other sees a spent token). In this
// order:
//
//   - oldHash unknown: return an error wrapping ErrNotFound.
//   - oldHash already spent less than retryWindow ago, its successor
//     still unspent and unexpired, the session live: a retry. Store
//     nothing; return the successor's hash, sealed value and expiry with
//     Retry set.
//   - oldHash already spent otherwise: revoke its session, so that every
//     refresh token and access token of it stops working, commit that,
//     and return an error wrapping ErrReused. Checked before expiry: a
//     replayed token is a leak even when late.
//   - session revoked: ErrRevoked. Token or session expired (expiry at or
//     before now): ErrExpired. Nothing is stored.
//   - otherwise mark oldHash spent (remembering next.Hash), store next for
//     the same session with expiry min(next.ExpiresAt, the session's
//     expiry), and return the session id and that expiry.
//
// Spent hashes must be kept (at least until their session expires) so
// that reuse is detected.
type RefreshStore interface {
	PutRefreshToken(ctx context.Context, hash []byte, sessionID string, expiresAt time.Time) error
	RotateRefreshToken(ctx context.Context, oldHash []byte, next NextRefreshToken, retryWindow time.Duration, now time.Time) (RotatedRefreshToken, error)
}

// NextRefreshToken is the successor RotateRefreshToken stores.
type NextRefreshToken struct {
	Hash []byte
	// Sealed is the successor's value under AES-256-GCM with a key derived
	// (HKDF-SHA256) from the predecessor's value, which nothing stores: the
	// store can hand it back on a retry, yet a copy of the database reveals
	// no usable token.
	Sealed    []byte
	ExpiresAt time.Time
}

// RotatedRefreshToken is what RotateRefreshToken did.
type RotatedRefreshToken struct {
	SessionID string
	// ExpiresAt is the successor's expiry.
	ExpiresAt time.Time
	// Retry: nothing was stored; Hash and Sealed are the successor an
	// earlier rotation of the same token stored.
	Retry  bool
	Hash   []byte
	Sealed []byte
}

// DefaultRefreshRetryWindow is how long after a rotation presenting the
// spent token again returns the same successor instead of revoking the
// session (a client whose answer was lost in flight retries), as long as
// that successor is unused.
const DefaultRefreshRetryWindow = 30 * time.Second

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
	raw, err := decodeRefreshToken(token)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	clear(raw)
	return sum[:], nil
}

func decodeRefreshToken(token string) ([]byte, error) {
	if len(token) != b64.EncodedLen(refreshTokenBytes) {
		return nil, fmt.Errorf("%w: refresh token has %d characters, want %d", ErrMalformed, len(token), b64.EncodedLen(refreshTokenBytes))
	}
	raw, err := b64.Strict().DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("%w: refresh token is not base64url", ErrMalformed)
	}
	return raw, nil
}

// successorAEAD is the cipher that seals a token's successor, keyed by the
// token's own 32 bytes. The key is not the stored hash (HKDF with its own
// label), so the store's copy of the hash opens nothing.
func successorAEAD(predecessor []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, predecessor, nil, "ssogate refresh token successor v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive successor key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("successor cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealSuccessor seals the successor's raw value under the predecessor,
// bound to the successor's hash.
func (i *Issuer) sealSuccessor(predecessor, successor, successorHash []byte) ([]byte, error) {
	aead, err := successorAEAD(predecessor)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(successor)+aead.Overhead())
	if _, err := io.ReadFull(i.random, nonce); err != nil {
		return nil, fmt.Errorf("successor nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, successor, successorHash), nil
}

// openSuccessor recovers the successor token a retry hands back.
func openSuccessor(predecessor, sealed, successorHash []byte) (string, error) {
	aead, err := successorAEAD(predecessor)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed successor is too short")
	}
	raw, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], successorHash)
	if err != nil {
		return "", errors.New("sealed successor does not open with the presented token")
	}
	defer clear(raw)
	if sum := sha256.Sum256(raw); len(raw) != refreshTokenBytes || !bytes.Equal(sum[:], successorHash) {
		return "", errors.New("sealed successor does not match its hash")
	}
	return b64.EncodeToString(raw), nil
}

func (i *Issuer) newRefreshToken() (string, []byte, error) {
	raw, hash, err := i.newRefreshTokenRaw()
	if err != nil {
		return "", nil, err
	}
	tok := b64.EncodeToString(raw)
	clear(raw)
	return tok, hash, nil
}

func (i *Issuer) newRefreshTokenRaw() (raw, hash []byte, err error) {
	raw = make([]byte, refreshTokenBytes)
	if _, err := io.ReadFull(i.random, raw); err != nil {
		return nil, nil, fmt.Errorf("refresh token: %w", err)
	}
	sum := sha256.Sum256(raw)
	return raw, sum[:], nil
}

func (i *Issuer) refreshStore() (RefreshStore, error) {
	if i.refresh == nil {
		return nil, errors.New("refresh tokens are not configured (Config.Refresh is nil)")
	}
	return i.refresh, nil
}

// PreparedRefreshToken is a session's first refresh token, made but not
// stored: the caller stores Hash in a transaction of its own (with what
// makes the session's tokens due, e.g. a redeemed code) and hands Token
// out only once that committed.
type PreparedRefreshToken struct {
	Token string
	Hash  []byte
	// ExpiresAt is now + RefreshTTL; the caller caps it at the session's
	// end, as IssueRefreshToken does.
	ExpiresAt time.Time
}

// PrepareRefreshToken makes a first refresh token without storing it (see
// PreparedRefreshToken); IssueRefreshToken makes and stores one.
func (i *Issuer) PrepareRefreshToken() (PreparedRefreshToken, error) {
	tok, hash, err := i.newRefreshToken()
	if err != nil {
		return PreparedRefreshToken{}, err
	}
	return PreparedRefreshToken{Token: tok, Hash: hash, ExpiresAt: i.now().Add(i.refreshTTL)}, nil
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
// access token). A token rotated less than the retry window ago whose
// successor is still unused returns that same successor (the client's
// retry after a lost answer). Rejections match ErrInvalid: ErrMalformed or
// an unknown token, ErrExpired, ErrRevoked, and ErrReused (a spent token
// came back; the store has revoked the session). Other errors are the
// store's.
func (i *Issuer) RotateRefreshToken(ctx context.Context, presented string) (RefreshToken, error) {
	store, err := i.refreshStore()
	if err != nil {
		return RefreshToken{}, err
	}
	old, err := decodeRefreshToken(presented)
	if err != nil {
		return RefreshToken{}, err
	}
	defer clear(old)
	oldSum := sha256.Sum256(old)
	now := i.now()
	raw, newHash, err := i.newRefreshTokenRaw()
	if err != nil {
		return RefreshToken{}, err
	}
	defer clear(raw)
	sealed, err := i.sealSuccessor(old, raw, newHash)
	if err != nil {
		return RefreshToken{}, err
	}
	newExpiresAt := now.Add(i.refreshTTL)
	rot, err := store.RotateRefreshToken(ctx, oldSum[:], NextRefreshToken{Hash: newHash, Sealed: sealed, ExpiresAt: newExpiresAt}, max(i.retryWindow, 0), now)
	switch {
	case errors.Is(err, ErrNotFound):
		return RefreshToken{}, fmt.Errorf("%w: refresh token not recognised", ErrInvalid)
	case err != nil: // ErrReused, ErrRevoked, ErrExpired (rejections) or the store's failure
		return RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	case rot.SessionID == "" || rot.ExpiresAt.After(newExpiresAt):
		return RefreshToken{}, fmt.Errorf("rotate refresh token: store broke its contract (session %q, expiry %s after the requested %s)",
			rot.SessionID, rot.ExpiresAt.UTC().Format(time.RFC3339), newExpiresAt.UTC().Format(time.RFC3339))
	case !rot.ExpiresAt.After(now):
		return RefreshToken{}, fmt.Errorf("rotate refresh token: %w: session %q has ended", ErrExpired, rot.SessionID)
	}
	if rot.Retry {
		tok, err := openSuccessor(old, rot.Sealed, rot.Hash)
		if err != nil {
			return RefreshToken{}, fmt.Errorf("retry of a rotation of session %q: %w", rot.SessionID, err)
		}
		return RefreshToken{Token: tok, SessionID: rot.SessionID, ExpiresAt: rot.ExpiresAt}, nil
	}
	return RefreshToken{Token: b64.EncodeToString(raw), SessionID: rot.SessionID, ExpiresAt: rot.ExpiresAt}, nil
}
