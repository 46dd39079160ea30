package token

import "errors"

// ErrInvalid matches, through errors.Is, every rejection of a presented
// token (access or refresh): the caller answers "unauthenticated". The more
// specific errors below all match it too, so a caller can test for the
// class or for the reason.
var ErrInvalid = errors.New("token: invalid")

// Reasons a presented token is rejected. Each matches ErrInvalid. Messages
// wrapping them say what was expected and what was found, never a token,
// a signature or key material.
var (
	ErrMalformed    error = &rejection{"token: malformed"}
	ErrAlgorithm    error = &rejection{"token: algorithm not accepted"}
	ErrType         error = &rejection{"token: wrong type"}
	ErrUnknownKey   error = &rejection{"token: unknown signing key"}
	ErrSignature    error = &rejection{"token: bad signature"}
	ErrIssuer       error = &rejection{"token: wrong issuer"}
	ErrAudience     error = &rejection{"token: wrong audience"}
	ErrExpired      error = &rejection{"token: expired"}
	ErrNotYetValid  error = &rejection{"token: not yet valid"}
	ErrMissingClaim error = &rejection{"token: missing claim"}
	ErrRevoked      error = &rejection{"token: session revoked"}
	// ErrLifetime is a token whose exp - iat exceeds the configured access
	// token TTL (plus leeway): signed with our key, yet not minted by us
	// under this configuration (a leaked signing key, or a forged claim set).
	ErrLifetime error = &rejection{"token: lifetime exceeds the access token TTL"}
	// ErrReused is a refresh token presented again after it was rotated: a
	// sign that it leaked. The session has been revoked.
	ErrReused error = &rejection{"token: refresh token reused; session revoked"}
)

// Errors that are not about a presented token.
var (
	// ErrNotFound is what a KeyStore or RefreshStore returns (wrapped) for
	// an id or hash it does not hold.
	ErrNotFound = errors.New("token: not found")
	// ErrKeyExists is what KeyStore.PutKey returns (wrapped) when the key id
	// is already taken: two replicas raced to create the same successor.
	ErrKeyExists = errors.New("token: signing key id already exists")
	// ErrWrongKEK means a sealed private key did not open: the
	// key-encryption key is not the one it was sealed with, or the sealed
	// bytes were altered or moved to another key id.
	ErrWrongKEK = errors.New("wrong key-encryption key?")
	// ErrNoSigningKey means no key is active: Rotate has not run yet, or
	// every key has retired without a successor.
	ErrNoSigningKey = errors.New("token: no active signing key")
	// ErrReservedClaim is an Extra claim that would overwrite one ssogate
	// sets itself.
	ErrReservedClaim = errors.New("token: reserved claim")
)

// rejection is a reason a token is refused; it also matches ErrInvalid.
type rejection struct{ msg string }

func (e *rejection) Error() string { return e.msg }

func (e *rejection) Is(target error) bool { return target == ErrInvalid }
