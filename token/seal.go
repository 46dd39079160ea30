package token

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KEKEnv is the environment variable that holds the key-encryption key.
const KEKEnv = "SSOGATE_KEK"

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// sealVersion is the first byte of a sealed private key; the rest is the
// 12-byte GCM nonce and the ciphertext of the PKCS #8 DER key.
const sealVersion = 1

// sealer encrypts private keys at rest with AES-256-GCM under the KEK. The
// additional data binds each sealed key to its key id and algorithm, so a
// sealed key copied to another row does not open.
type sealer struct {
	aead   cipher.AEAD
	random io.Reader
}

func newSealer(kek []byte, random io.Reader) (*sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("KEK has %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("KEK: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("KEK: %w", err)
	}
	return &sealer{aead: aead, random: random}, nil
}

func sealAD(kid, alg string) []byte { return lengthPrefixed("ssogate/signing-key/v1", kid, alg) }

func (s *sealer) seal(kid, alg string, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("seal signing key %q: encode: %w", kid, err)
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(der)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(s.random, out[1:]); err != nil {
		return nil, fmt.Errorf("seal signing key %q: nonce: %w", kid, err)
	}
	out = s.aead.Seal(out, out[1:], der, sealAD(kid, alg))
	clear(der)
	return out, nil
}

// open decrypts a sealed key and checks it is the private half of pub.
func (s *sealer) open(kid, alg string, sealed []byte, pub crypto.PublicKey) (crypto.Signer, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("cannot decrypt signing key %q: sealed key is not in the version %d format", kid, sealVersion)
	}
	der, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealAD(kid, alg))
	if err != nil {
		// GCM says only "authentication failed"; the likely cause is the KEK.
		return nil, fmt.Errorf("cannot decrypt signing key %q: %w (or the sealed key was altered or moved)", kid, ErrWrongKEK)
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: decrypted key is not PKCS #8", kid)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %q: decrypted key of type %T cannot sign", kid, parsed)
	}
	if p, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(pub) {
		return nil, fmt.Errorf("signing key %q: private key does not match the stored public JWK", kid)
	}
	return signer, nil
}

// ParseKEK decodes a key-encryption key written as 64 hex digits or as
// base64 (standard or URL alphabet, with or without padding) of 32 bytes.
// Surrounding white space is ignored. Errors never repeat the input.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("key-encryption key is empty")
	}
	if len(s) == 2*KEKSize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KEKSize {
			return nil, fmt.Errorf("key-encryption key decodes to %d bytes, want %d (e.g. `openssl rand -base64 32`)", len(b), KEKSize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("key-encryption key is neither %d hex digits nor base64 of %d bytes (e.g. `openssl rand -base64 32`)", 2*KEKSize, KEKSize)
}

// LoadKEK returns the key-encryption key from value (the SSOGATE_KEK
// setting) or else from the file at path, which holds either the same text
// form as ParseKEK reads or exactly 32 raw bytes. Exactly one of the two
// must be set. Errors name the source, never the key.
func LoadKEK(value, path string) ([]byte, error) {
	switch {
	case value != "" && path != "":
		return nil, fmt.Errorf("key-encryption key: both %s and a key file (%s) are set; set one", KEKEnv, path)
	case value != "":
		kek, err := ParseKEK(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KEKEnv, err)
		}
		return kek, nil
	case path != "":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key file: %w", err)
		}
		defer clear(data)
		if len(data) == KEKSize && !isText(data) {
			return bytes.Clone(data), nil
		}
		kek, err := ParseKEK(string(data))
		if err != nil {
			return nil, fmt.Errorf("key-encryption key file %s: %w", path, err)
		}
		return kek, nil
	}
	return nil, fmt.Errorf("no key-encryption key: set %s or a key file", KEKEnv)
}

// isText reports whether b looks like an encoded key rather than raw bytes.
func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// GenerateKEK makes a random key-encryption key (for `ssogate dev`) and
// its base64 form, which SSOGATE_KEK accepts.
func GenerateKEK(random io.Reader) ([]byte, string, error) {
	if random == nil {
		random = rand.Reader
	}
	kek := make([]byte, KEKSize)
	if _, err := io.ReadFull(random, kek); err != nil {
		return nil, "", fmt.Errorf("generate key-encryption key: %w", err)
	}
	return kek, base64.StdEncoding.EncodeToString(kek), nil
}

// SealKey encrypts a private key for storage exactly as the key set seals
// its signing keys: AES-256-GCM under kek, with id and kind bound as
// additional data, so a sealed key moved to another id or kind does not
// open. Other keys the service keeps at rest (the SAML SP credential) use
// it with a kind of their own.
func SealKey(kek []byte, id, kind string, key crypto.Signer, random io.Reader) ([]byte, error) {
	s, err := newSealer(kek, random)
	if err != nil {
		return nil, err
	}
	return s.seal(id, kind, key)
}

// OpenKey reverses SealKey and checks the key is the private half of pub.
// A wrong kek fails with an error wrapping ErrWrongKEK.
func OpenKey(kek []byte, id, kind string, sealed []byte, pub crypto.PublicKey) (crypto.Signer, error) {
	s, err := newSealer(kek, nil)
	if err != nil {
		return nil, err
	}
	return s.open(id, kind, sealed, pub)
}
