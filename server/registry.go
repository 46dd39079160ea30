package server

import (
	"cmp"
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

// registry builds and caches a conn per stored connection version, and
// answers lookups from memory while it knows the store has not changed:
// every connection write, on any replica, bumps one counter in its own
// transaction (store.ConnectionChanges), which watch polls every
// connCacheCheck. A lookup is served from memory only while the last
// counter read that confirmed the cache started less than connCacheStale
// ago; past that (the store cannot be read, or watch is not running) every
// lookup reads the store, as if there were no cache. A change made on
// another replica is therefore honoured here within connCacheCheck plus
// one read (at most connCacheStale); one made through this replica's store
// at once (invalidatingStore). The SAML SP is rebuilt only when the
// version changed.
type registry struct {
	s     *Server
	mu    sync.Mutex
	cache map[string]*conn // built, any version: reused while the version holds

	// The verified view: lookups that need no store read while fresh.
	byID    map[string]*conn
	domains map[string]*conn
	gen     uint64    // bumped whenever the view is dropped
	changes int64     // the counter value the view belongs to
	counted bool      // changes was read at least once
	checked time.Time // when the read that confirmed changes started
	clock   func() time.Time
	// every and stale override connCacheCheck and connCacheStale (tests).
	every, stale time.Duration
}

// Connection cache cadence (README "Operations": connection changes reach
// every replica within a second).
const (
	connCacheCheck = 250 * time.Millisecond
	connCacheStale = time.Second
)

var errConnectionNotFound = errors.New("connection not found")

func (r *registry) now() time.Time {
	if r.clock != nil {
		return r.clock()
	}
	return time.Now()
}

// viewLocked returns the verified view's generation and whether it may
// answer lookups now.
func (r *registry) viewLocked() (uint64, bool) {
	return r.gen, r.counted && r.now().Sub(r.checked) < cmp.Or(r.stale, connCacheStale)
}

func (r *registry) get(ctx context.Context, id string) (*conn, error) {
	if err := r.s.pending.lookup(id); err != nil {
		return nil, err
	}
	r.mu.Lock()
	gen, fresh := r.viewLocked()
	if c, ok := r.byID[id]; ok && fresh && r.keysCurrent(c) {
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	c, err := r.load(ctx, fmt.Sprintf("connection %q", id), func() (store.Connection, error) { return r.s.store.GetConnection(ctx, id) })
	if err == nil {
		r.remember(gen, c, "")
	}
	return c, err
}

func (r *registry) byDomain(ctx context.Context, domain string) (*conn, error) {
	r.mu.Lock()
	gen, fresh := r.viewLocked()
	if c, ok := r.domains[domain]; ok && fresh && r.keysCurrent(c) {
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	c, err := r.load(ctx, fmt.Sprintf("connection for domain %q", domain), func() (store.Connection, error) { return r.s.store.ConnectionByDomain(ctx, domain) })
	if err == nil {
		r.remember(gen, c, domain)
	}
	return c, err
}

// keysCurrent reports whether c's SP keys still hold (a rotation's
// transition time has not come).
func (r *registry) keysCurrent(c *conn) bool {
	return c.keysUntil.IsZero() || r.s.now().Before(c.keysUntil)
}

// remember adds a conn read from the store to the verified view, unless
// the view was dropped since the lookup began (the row may predate the
// change that dropped it).
func (r *registry) remember(gen uint64, c *conn, domain string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen || !r.counted {
		return
	}
	if r.byID == nil {
		r.byID, r.domains = map[string]*conn{}, map[string]*conn{}
	}
	r.byID[c.msg.Id] = c
	if domain != "" {
		r.domains[domain] = c
	}
}

// invalidate drops the verified view: this replica changed a connection.
func (r *registry) invalidate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked()
}

func (r *registry) dropLocked() {
	r.gen++
	clear(r.byID)
	clear(r.domains)
}

// check reads the change counter once and drops the view if it moved.
func (r *registry) check(ctx context.Context) error {
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	started := r.now()
	n, err := r.s.store.ConnectionChanges(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.counted || n != r.changes || gen != r.gen {
		// Moved, or dropped meanwhile: what the view holds may predate n.
		r.dropLocked()
	}
	r.changes, r.counted, r.checked = n, true, started
	return nil
}

// watch keeps the view fresh until ctx ends. Failed reads are retried at
// the same cadence; meanwhile lookups fall back to the store once the view
// is connCacheStale old.
func (r *registry) watch(ctx context.Context) error {
	t := time.NewTicker(cmp.Or(r.every, connCacheCheck))
	defer t.Stop()
	for {
		if err := r.check(ctx); err != nil && ctx.Err() == nil {
			r.s.log.DebugContext(ctx, "connection change counter unreadable; lookups read the store", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// invalidatingStore drops the registry's view after each connection write
// made through it, so this replica sees its own changes at once.
type invalidatingStore struct {
	store.Store
	r *registry
}

func (st invalidatingStore) CreateConnection(ctx context.Context, c store.Connection) error {
	defer st.r.invalidate()
	return st.Store.CreateConnection(ctx, c)
}

func (st invalidatingStore) UpdateConnection(ctx context.Context, c store.Connection, expectVersion int64) (store.Connection, error) {
	defer st.r.invalidate()
	return st.Store.UpdateConnection(ctx, c, expectVersion)
}

func (st invalidatingStore) DeleteConnection(ctx context.Context, id string) error {
	defer st.r.invalidate()
	return st.Store.DeleteConnection(ctx, id)
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
		return nil, internalError(err)
	}
	return c, nil
}

func (r *registry) build(ctx context.Context, row store.Connection) (*conn, error) {
	r.mu.Lock()
	if c, ok := r.cache[row.ID]; ok && c.version == row.Version && r.keysCurrent(c) {
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
