package server

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"time"

	"github.com/ssogate/ssogate/store"
)

// The service's SAML credential (one RSA key and its self-signed
// certificate, for signing requests and logout messages and for decrypting
// assertions) lives in the signing-key table beside the token keys, sealed
// under the same key-encryption key, so that every replica uses the same
// one. Its algorithm marks it; the token key set never sees it.
const (
	spCredentialID        = "saml-sp-1"
	spCredentialAlgorithm = "saml-sp"
	spCredentialLifetime  = 5 * 365 * 24 * time.Hour
)

func spSealAD(id string) []byte { return []byte("ssogate/saml-sp/v1\x00" + id) }

func newAEAD(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// loadSPCredentials reads the SAML credential, creating it on first start.
// Replicas starting together race on one id: the loser reads the winner's.
func (s *Server) loadSPCredentials(ctx context.Context, kek []byte) (*spCredentials, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		keys, err := s.store.ListSigningKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("load SAML credential: %w", err)
		}
		for _, k := range keys {
			if k.ID == spCredentialID && k.Algorithm == spCredentialAlgorithm {
				return openSPCredential(aead, k)
			}
		}
		k, err := s.newSPCredential(aead)
		if err != nil {
			return nil, err
		}
		if err := s.store.PutSigningKey(ctx, k); err == nil {
			return openSPCredential(aead, k)
		} else if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("store SAML credential: %w", err)
		}
	}
	return nil, errors.New("SAML credential: created concurrently but not readable")
}

func openSPCredential(aead cipher.AEAD, k store.SigningKey) (*spCredentials, error) {
	cert, err := x509.ParseCertificate(k.PublicJWK)
	if err != nil {
		return nil, fmt.Errorf("SAML credential certificate: %w", err)
	}
	n := aead.NonceSize()
	if len(k.PrivateSealed) < n+aead.Overhead() {
		return nil, errors.New("SAML credential: sealed key is truncated")
	}
	der, err := aead.Open(nil, k.PrivateSealed[:n], k.PrivateSealed[n:], spSealAD(k.ID))
	if err != nil {
		return nil, errors.New("cannot decrypt the SAML credential: wrong key-encryption key?")
	}
	defer clear(der)
	key, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("SAML credential key: %w", err)
	}
	return &spCredentials{signingKey: key, signingCert: cert, decryptKey: key, encryptCert: cert}, nil
}

func (s *Server) newSPCredential(aead cipher.AEAD) (store.SigningKey, error) {
	key, err := rsa.GenerateKey(s.rand, 2048)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("SAML credential: %w", err)
	}
	serial, err := randInt(s.rand)
	if err != nil {
		return store.SigningKey{}, err
	}
	now := s.now()
	cn := "ssogate"
	if u, err := url.Parse(s.cfg.ExternalURL); err == nil {
		cn = u.Hostname()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"ssogate SAML SP"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(spCredentialLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(s.rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("SAML credential certificate: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return store.SigningKey{}, err
	}
	plain := x509.MarshalPKCS1PrivateKey(key)
	sealed := aead.Seal(nonce, nonce, plain, spSealAD(spCredentialID))
	clear(plain)
	return store.SigningKey{ID: spCredentialID, Algorithm: spCredentialAlgorithm, PublicJWK: der, PrivateSealed: sealed,
		CreatedAt: now, PublishAt: now, ActivateAt: now, ExpireAt: now.Add(spCredentialLifetime)}, nil
}

func randInt(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}
