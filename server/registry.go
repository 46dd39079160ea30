package server

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/policy"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
)

// spCredentials are the service's own SAML keys: they sign AuthnRequests
// and logout messages, and decrypt assertions.
type spCredentials struct {
	signingKey  crypto.Signer
	signingCert *x509.Certificate
	decryptKey  *rsa.PrivateKey
	encryptCert *x509.Certificate
	// kek seals and opens the connections' own SP keys (spkeys.go).
	kek []byte
}

// conn is one connection ready to serve: its settings, its SAML Service
// Provider and its access policy, for one stored version.
type conn struct {
	msg     *ssogatev1.Connection
	version int64
	sp      *saml.ServiceProvider
	policy  policy.Policy
	// ownKeys are the connection's own SP keys; keysUntil is when the
	// keys serving it change next (a rotation's transition time), zero
	// when none is pending.
	ownKeys   []*spKey
	keysUntil time.Time
}

// registry builds and caches a conn per stored connection version. Every
// lookup reads the store (one primary-key read), so a change made on
// another replica is seen at once; the SAML SP is rebuilt only when the
// version changed.
type registry struct {
	s     *Server
	mu    sync.Mutex
	cache map[string]*conn
}

var errConnectionNotFound = errors.New("connection not found")

func (r *registry) get(ctx context.Context, id string) (*conn, error) {
	if err := r.s.pending.lookup(id); err != nil {
		return nil, err
	}
	return r.load(ctx, fmt.Sprintf("connection %q", id), func() (store.Connection, error) { return r.s.store.GetConnection(ctx, id) })
}

func (r *registry) byDomain(ctx context.Context, domain string) (*conn, error) {
	return r.load(ctx, fmt.Sprintf("connection for domain %q", domain), func() (store.Connection, error) { return r.s.store.ConnectionByDomain(ctx, domain) })
}

// load reads one stored connection and builds (or reuses) its conn.
func (r *registry) load(ctx context.Context, what string, read func() (store.Connection, error)) (*conn, error) {
	row, err := read()
	if errors.Is(err, store.ErrNotFound) {
		return nil, errConnectionNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	return r.build(ctx, row)
}

// rpcConnection is registry.get for RPC handlers: NOT_FOUND or INTERNAL as
// a status.
func (s *Server) rpcConnection(ctx context.Context, id string) (*conn, error) {
	c, err := s.registry.get(ctx, id)
	if pe := (*pendingError)(nil); errors.As(err, &pe) {
		return nil, status.Error(codes.Unavailable, pe.Error())
	}
	if errors.Is(err, errConnectionNotFound) {
		return nil, apiError(codes.NotFound, reasonConnectionNotFound, fmt.Sprintf("no connection %q", id), "connection_id", id)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return c, nil
}

func (r *registry) build(ctx context.Context, row store.Connection) (*conn, error) {
	r.mu.Lock()
	if c, ok := r.cache[row.ID]; ok && c.version == row.Version && (c.keysUntil.IsZero() || r.s.now().Before(c.keysUntil)) {
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	msg, err := unmarshalConnection(row.Config)
	if err != nil {
		return nil, err
	}
	cfg, err := samlConfig(msg)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", row.ID, err)
	}
	r.s.fillSAMLConfig(&cfg)
	own, err := r.s.ownSPKeys(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", row.ID, err)
	}
	keys := r.s.spKeyStateAt(own, r.s.now())
	if err := r.s.applySPKeys(&cfg, keys, publishesEncryptionKey(msg)); err != nil {
		return nil, fmt.Errorf("connection %q: %w", row.ID, err)
	}
	sp, err := saml.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", row.ID, err)
	}
	c := &conn{msg: msg, version: row.Version, sp: sp, policy: accessPolicy(msg), ownKeys: own, keysUntil: keys.until}
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]*conn{}
	}
	r.cache[row.ID] = c
	r.mu.Unlock()
	return c, nil
}

// fillSAMLConfig adds the service-wide settings to one connection's.
func (s *Server) fillSAMLConfig(cfg *saml.Config) {
	cfg.ExternalURL = s.cfg.ExternalURL
	if cfg.ClockSkew == 0 { // the connection's clock_skew, else the service's
		cfg.ClockSkew = s.cfg.SAML.ClockSkew
	}
	cfg.MaxBodyBytes = s.cfg.SAML.MaxBodyBytes
	cfg.MaxXMLBytes = s.cfg.SAML.MaxXMLBytes
	cfg.MaxXMLElements = s.cfg.SAML.MaxXMLElements
	cfg.MaxXMLAttributes = s.cfg.SAML.MaxXMLAttributes
	cfg.MaxXMLNamespaceDecls = s.cfg.SAML.MaxXMLNamespaceDecls
	cfg.Now = s.now
	cfg.Rand = s.rand
	if s.spCreds != nil {
		cfg.SigningKey, cfg.SigningCert = s.spCreds.signingKey, s.spCreds.signingCert
		cfg.DecryptionKey, cfg.EncryptionCert = s.spCreds.decryptKey, s.spCreds.encryptCert
	}
}
