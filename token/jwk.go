package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// Signing algorithms (JWS "alg" values) a KeySet can use.
const (
	ES256 = "ES256" // ECDSA P-256 with SHA-256: the default
	EdDSA = "EdDSA" // Ed25519
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys
)

// supportedAlgorithms is the whole list golang-jwt may accept: never
// "none", never an HMAC algorithm (whose "key" would be a public key).
var supportedAlgorithms = []string{ES256, EdDSA, RS256}

// minRSABits is the smallest RSA modulus accepted from the store.
const minRSABits = 2048

func signingMethod(alg string) (jwt.SigningMethod, error) {
	switch alg {
	case ES256:
		return jwt.SigningMethodES256, nil
	case EdDSA:
		return jwt.SigningMethodEdDSA, nil
	case RS256:
		return jwt.SigningMethodRS256, nil
	}
	return nil, fmt.Errorf("algorithm %q is not supported (want %s, %s or %s)", alg, ES256, EdDSA, RS256)
}

// generateKey makes a private key for alg. Since Go 1.26 ECDSA and RSA key
// generation ignore random and always use the system's secure source;
// Ed25519 reads its seed from random.
func generateKey(alg string, random io.Reader) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), random)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(random)
		return priv, err
	case RS256:
		if random == nil {
			random = rand.Reader
		}
		return rsa.GenerateKey(random, minRSABits)
	}
	_, err := signingMethod(alg)
	return nil, err
}

// jwk is a public JSON Web Key (RFC 7517, RFC 7518 section 6, RFC 8037).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

var b64 = base64.RawURLEncoding

// publicJWK describes pub as the JWK of key kid for alg.
func publicJWK(kid, alg string, pub crypto.PublicKey) (jwk, error) {
	j := jwk{Kid: kid, Alg: alg, Use: "sig"}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg != ES256 || k.Curve != elliptic.P256() {
			return jwk{}, fmt.Errorf("ECDSA key does not fit algorithm %q", alg)
		}
		point, err := k.Bytes() // 0x04 || X || Y, each 32 bytes
		if err != nil {
			return jwk{}, fmt.Errorf("encode ECDSA public key: %w", err)
		}
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64.EncodeToString(point[1:33]), b64.EncodeToString(point[33:])
	case ed25519.PublicKey:
		if alg != EdDSA {
			return jwk{}, fmt.Errorf("Ed25519 key does not fit algorithm %q", alg)
		}
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64.EncodeToString(k)
	case *rsa.PublicKey:
		if alg != RS256 {
			return jwk{}, fmt.Errorf("RSA key does not fit algorithm %q", alg)
		}
		j.Kty, j.N, j.E = "RSA", b64.EncodeToString(k.N.Bytes()), b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())
	default:
		return jwk{}, fmt.Errorf("unsupported public key type %T", pub)
	}
	return j, nil
}

// publicKey parses j, checking that it is a key of the algorithm it names.
func (j *jwk) publicKey() (crypto.PublicKey, error) {
	field := func(name, v string, size int) ([]byte, error) {
		b, err := b64.Strict().DecodeString(v)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("JWK field %q is not base64url", name)
		}
		if size > 0 && len(b) != size {
			return nil, fmt.Errorf("JWK field %q has %d bytes, want %d", name, len(b), size)
		}
		return b, nil
	}
	switch {
	case j.Alg == ES256 && j.Kty == "EC" && j.Crv == "P-256":
		x, err := field("x", j.X, 32)
		if err != nil {
			return nil, err
		}
		y, err := field("y", j.Y, 32)
		if err != nil {
			return nil, err
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, fmt.Errorf("JWK is not a P-256 point: %w", err)
		}
		return pub, nil
	case j.Alg == EdDSA && j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := field("x", j.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		return ed25519.PublicKey(x), nil
	case j.Alg == RS256 && j.Kty == "RSA":
		n, err := field("n", j.N, 0)
		if err != nil {
			return nil, err
		}
		e, err := field("e", j.E, 0)
		if err != nil {
			return nil, err
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 || exp.Bit(0) == 0 {
			return nil, fmt.Errorf("JWK RSA exponent is not an odd number in [3, 2^31)")
		}
		pub.E = int(exp.Int64())
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("JWK RSA modulus has %d bits, want at least %d", pub.N.BitLen(), minRSABits)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("JWK kty %q crv %q does not fit algorithm %q", j.Kty, j.Crv, j.Alg)
}

// parseJWK reads a stored public JWK and checks it names kid and alg.
func parseJWK(data []byte, kid, alg string) (crypto.PublicKey, error) {
	var j jwk
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("public JWK is not JSON: %w", err)
	}
	if j.Kid != kid || j.Alg != alg {
		return nil, fmt.Errorf("public JWK names kid %q alg %q, stored as kid %q alg %q", j.Kid, j.Alg, kid, alg)
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("public JWK use is %q, want sig", j.Use)
	}
	return j.publicKey()
}
