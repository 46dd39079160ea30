package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/postgres"
	"github.com/ssogate/ssogate/store/sqlite"
	"github.com/ssogate/ssogate/token"
)

// openStore opens the configured backend and applies its migrations.
func openStore(ctx context.Context, url string) (store.Store, error) {
	kind, dsn, err := config.ParseStore(url)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "sqlite":
		return sqlite.Open(ctx, dsn)
	case "postgres":
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("store kind %q", kind)
}

// keyStore adapts the store to token.KeyStore.
type keyStore struct{ st store.Store }

func toStored(k store.SigningKey) token.StoredKey {
	return token.StoredKey{ID: k.ID, Algorithm: k.Algorithm, PublicJWK: k.PublicJWK, PrivateSealed: k.PrivateSealed,
		CreatedAt: k.CreatedAt, PublishAt: k.PublishAt, ActivateAt: k.ActivateAt, RetireAt: k.RetireAt, ExpireAt: k.ExpireAt}
}

func fromStored(k token.StoredKey) store.SigningKey {
	return store.SigningKey{ID: k.ID, Algorithm: k.Algorithm, PublicJWK: k.PublicJWK, PrivateSealed: k.PrivateSealed,
		CreatedAt: k.CreatedAt, PublishAt: k.PublishAt, ActivateAt: k.ActivateAt, RetireAt: k.RetireAt, ExpireAt: k.ExpireAt}
}

func mapStoreErr(err error) error {
	for _, m := range []struct{ from, to error }{
		{store.ErrNotFound, token.ErrNotFound}, {store.ErrConflict, token.ErrKeyExists},
		{store.ErrReused, token.ErrReused}, {store.ErrRevoked, token.ErrRevoked}, {store.ErrExpired, token.ErrExpired},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %v", m.to, err)
		}
	}
	return err
}

func (k keyStore) PutKey(ctx context.Context, sk token.StoredKey) error {
	return mapStoreErr(k.st.PutSigningKey(ctx, fromStored(sk)))
}

func (k keyStore) ListKeys(ctx context.Context) ([]token.StoredKey, error) {
	rows, err := k.st.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]token.StoredKey, 0, len(rows))
	for _, r := range rows {
		if isSPKeyAlgorithm(r.Algorithm) {
			continue // the SAML credentials are not token keys
		}
		out = append(out, toStored(r))
	}
	return out, nil
}

func (k keyStore) UpdateKey(ctx context.Context, sk token.StoredKey) error {
	return mapStoreErr(k.st.UpdateSigningKey(ctx, fromStored(sk)))
}

func (k keyStore) DeleteKey(ctx context.Context, id string) error {
	return mapStoreErr(k.st.DeleteSigningKey(ctx, id))
}

// refreshStore adapts the store to token.RefreshStore. On reuse it audits
// which session the store revoked, since only the store knows.
type refreshStore struct {
	s *Server
}

func (r refreshStore) PutRefreshToken(ctx context.Context, hash []byte, sessionID string, expiresAt time.Time) error {
	return mapStoreErr(r.s.store.PutRefreshToken(ctx, store.RefreshToken{Hash: hash, SessionID: sessionID, CreatedAt: r.s.now(), ExpiresAt: expiresAt}))
}

func (r refreshStore) RotateRefreshToken(ctx context.Context, oldHash []byte, next token.NextRefreshToken, retryWindow time.Duration, now time.Time) (token.RotatedRefreshToken, error) {
	rot, err := r.s.store.RotateRefreshToken(ctx, oldHash,
		store.RefreshToken{Hash: next.Hash, Sealed: next.Sealed, CreatedAt: now, ExpiresAt: next.ExpiresAt}, now, retryWindow)
	if errors.Is(err, store.ErrReused) {
		r.s.revoked.add(rot.Old.SessionID, now)
		e := auditEvent{Type: auditRefreshReused, Message: "a spent refresh token was presented again; its session is revoked",
			Detail: map[string]any{"session_id": rot.Old.SessionID}}
		if sess, serr := r.s.store.GetSession(ctx, rot.Old.SessionID); serr == nil {
			e.ConnectionID, e.TenantID, e.Subject = sess.ConnectionID, sess.TenantID, sess.Subject
		}
		r.s.audit(ctx, e)
	}
	if err != nil {
		return token.RotatedRefreshToken{}, mapStoreErr(err)
	}
	return token.RotatedRefreshToken{SessionID: rot.Next.SessionID, ExpiresAt: rot.Next.ExpiresAt, Retry: rot.Retry,
		Hash: rot.Next.Hash, Sealed: rot.Next.Sealed}, nil
}

// revocationChecker adapts the in-memory set to token.RevocationChecker.
type revocationChecker struct{ r *revocations }

func (c revocationChecker) Revoked(_ context.Context, claims *token.Claims) (bool, error) {
	return c.r.Revoked(claims.SessionID), nil
}
