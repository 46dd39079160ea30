package scim

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// A SCIM token reads "scim_<id>.<secret>": the id finds the stored hash,
// the secret (256 bits) is what is compared.
const tokenPrefix = "scim_"

// CreateToken makes a token for one connection and stores its hash. The
// returned secret is the whole bearer value, to be shown once.
func CreateToken(ctx context.Context, st Store, rand io.Reader, connectionID string, now time.Time) (store.ScimToken, string, error) {
	id, err := newID(rand, 8)
	if err != nil {
		return store.ScimToken{}, "", err
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rand, raw); err != nil {
		return store.ScimToken{}, "", fmt.Errorf("scim token secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	t := store.ScimToken{ID: id, ConnectionID: connectionID, Hash: sum[:], CreatedAt: now}
	if err := st.CreateScimToken(ctx, t); err != nil {
		return store.ScimToken{}, "", fmt.Errorf("store scim token: %w", err)
	}
	return t, tokenPrefix + id + "." + secret, nil
}

var errUnauthorized = &Error{Status: http.StatusUnauthorized,
	Detail: "a valid SCIM bearer token for this connection is required (Authorization: Bearer scim_…)"}

// authenticate checks the bearer token against the connection in the path.
// Every failure looks the same to the caller.
func (h *Handler) authenticate(r *http.Request, conn string) error {
	auth := r.Header.Get("Authorization")
	scheme, value, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errUnauthorized
	}
	id, secret, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(value), tokenPrefix), ".")
	if !ok || id == "" || secret == "" {
		return errUnauthorized
	}
	sum := sha256.Sum256([]byte(secret))
	t, err := h.cfg.Store.GetScimToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// Compare anyway, so an unknown id costs what a known one does.
		subtle.ConstantTimeCompare(sum[:], make([]byte, len(sum)))
		return errUnauthorized
	}
	if err != nil {
		return fmt.Errorf("look up scim token: %w", err)
	}
	match := subtle.ConstantTimeCompare(sum[:], t.Hash) == 1
	if !match || t.ConnectionID != conn || !t.RevokedAt.IsZero() {
		return errUnauthorized
	}
	return nil
}
