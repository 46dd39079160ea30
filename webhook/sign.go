package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ssogate/ssogate/token"
)

// SecretPrefix starts every secret, as Standard Webhooks libraries expect.
const SecretPrefix = "whsec_"

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign returns the v1 signature of one message: base64 of HMAC-SHA256
// under key over "id.timestamp.body".
func Sign(key []byte, id string, at time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, at.Unix())
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Headers are the Standard Webhooks headers of a message signed by every
// key in keys (space-separated signatures).
func Headers(keys [][]byte, id string, at time.Time, body []byte) map[string]string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, at, body)
	}
	return map[string]string{
		HeaderID:        id,
		HeaderTimestamp: strconv.FormatInt(at.Unix(), 10),
		HeaderSignature: strings.Join(sigs, " "),
	}
}

// Secrets makes and opens endpoint secrets. A secret is 32 random bytes:
// the seed of an Ed25519 key, sealed with token.SealKey under the
// key-encryption key as the service's other keys at rest are, bound to the
// endpoint's id. The stored form is the 32-byte public key (which OpenKey
// checks the opened seed against) followed by the sealed key.
type Secrets struct {
	kek  []byte
	rand io.Reader
}

// sealKind binds a sealed secret to its use.
const sealKind = "webhook-secret"

// NewSecrets keeps a copy of kek.
func NewSecrets(kek []byte, random io.Reader) (*Secrets, error) {
	if len(kek) != token.KEKSize {
		return nil, fmt.Errorf("webhook secrets: KEK has %d bytes, want %d", len(kek), token.KEKSize)
	}
	return &Secrets{kek: append([]byte(nil), kek...), rand: random}, nil
}

// New makes a secret for endpoint id: its whsec_ form, shown once, and its
// sealed form, stored.
func (s *Secrets) New(id string) (secret string, sealed []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(s.rand)
	if err != nil {
		return "", nil, fmt.Errorf("webhook secret: %w", err)
	}
	box, err := token.SealKey(s.kek, id, sealKind, priv, s.rand)
	if err != nil {
		return "", nil, fmt.Errorf("webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(priv.Seed()), append(append([]byte(nil), pub...), box...), nil
}

// Open returns the signing key of endpoint id from its sealed form.
func (s *Secrets) Open(id string, sealed []byte) ([]byte, error) {
	if len(sealed) <= ed25519.PublicKeySize {
		return nil, errors.New("webhook secret: sealed value too short")
	}
	pub := ed25519.PublicKey(sealed[:ed25519.PublicKeySize])
	k, err := token.OpenKey(s.kek, id, sealKind, sealed[ed25519.PublicKeySize:], pub)
	if err != nil {
		return nil, fmt.Errorf("webhook secret of %q: %w", id, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("webhook secret of %q: unexpected key type %T", id, k)
	}
	return priv.Seed(), nil
}
