package server

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"time"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
)

// The service's shared SAML credential (one RSA key and its self-signed
// certificate, for signing requests and logout messages and for decrypting
// assertions) lives in the signing-key table beside the token keys, sealed
// with token.SealKey under the same key-encryption key, so that every
// replica uses the same one. Its algorithm marks it; the token key set never
// sees it. It serves every connection without keys of its own (spkeys.go).
const (
	spCredentialID        = "saml-sp-1"
	spCredentialAlgorithm = "saml-sp"
	spCredentialLifetime  = 5 * 365 * 24 * time.Hour
)

// loadSPCredentials reads the SAML credential, creating it on first start.
// Replicas starting together race on one id: the loser reads the winner's.
func (s *Server) loadSPCredentials(ctx context.Context, kek []byte) (*spCredentials, error) {
	for attempt := 0; attempt < 2; attempt++ {
		keys, err := s.store.ListSigningKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("load SAML credential: %w", err)
		}
		for _, k := range keys {
			if k.ID == spCredentialID && k.Algorithm == spCredentialAlgorithm {
				return openSPCredential(kek, k)
			}
		}
		k, err := s.newSPCredential(kek)
		if err != nil {
			return nil, err
		}
		if err := s.store.PutSigningKey(ctx, k); err == nil {
			return openSPCredential(kek, k)
		} else if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("store SAML credential: %w", err)
		}
	}
	return nil, errors.New("SAML credential: created concurrently but not readable")
}

func openSPCredential(kek []byte, k store.SigningKey) (*spCredentials, error) {
	cert, err := x509.ParseCertificate(k.PublicJWK)
	if err != nil {
		return nil, fmt.Errorf("SAML credential certificate: %w", err)
	}
	signer, err := token.OpenKey(kek, k.ID, k.Algorithm, k.PrivateSealed, cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SAML credential: %w", err)
	}
	key, ok := signer.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("SAML credential: key is %T, want RSA", signer)
	}
	return &spCredentials{signingKey: key, signingCert: cert, decryptKey: key, encryptCert: cert, kek: bytes.Clone(kek)}, nil
}

func (s *Server) newSPCredential(kek []byte) (store.SigningKey, error) {
	cn := "ssogate"
	if u, err := url.Parse(s.cfg.ExternalURL); err == nil {
		cn = u.Hostname()
	}
	key, cert, err := s.selfSignedSPKey(cn)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("SAML credential: %w", err)
	}
	sealed, err := token.SealKey(kek, spCredentialID, spCredentialAlgorithm, key, s.rand)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("SAML credential: %w", err)
	}
	now := s.now()
	return store.SigningKey{ID: spCredentialID, Algorithm: spCredentialAlgorithm, PublicJWK: cert.Raw, PrivateSealed: sealed,
		CreatedAt: now, PublishAt: now, ActivateAt: now, ExpireAt: now.Add(spCredentialLifetime)}, nil
}

func randInt(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}
