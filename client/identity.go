package client

import (
	"context"
	"slices"
	"time"
)

// Identity is who a verified access token speaks for.
type Identity struct {
	Subject      string // sub: stable, unique across connections
	TenantID     string // tenant: the customer, in the product's terms
	ConnectionID string // conn: the IdP connection the user signed in through
	SessionID    string // sid: what RevokeSession takes
	Email        string
	Name         string
	GivenName    string
	FamilyName   string
	Groups       []string // from the IdP
	Roles        []string // from the connection's group-to-role mapping
	ExpiresAt    time.Time
	// Claims holds every claim of the token, mapped extra claims included.
	Claims map[string]any
}

// HasRole reports whether the identity holds role.
func (id *Identity) HasRole(role string) bool { return slices.Contains(id.Roles, role) }

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the middleware verified, if any.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
