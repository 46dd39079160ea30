package token

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock shared by the objects of one test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// memKeyStore is an in-memory KeyStore keeping to the interface contract.
type memKeyStore struct {
	mu   sync.Mutex
	keys map[string]StoredKey
	// onPut, if set, runs before each PutKey (without the lock held).
	onPut func(StoredKey)
}

func newMemKeyStore() *memKeyStore { return &memKeyStore{keys: map[string]StoredKey{}} }

func cloneKey(k StoredKey) StoredKey {
	k.PublicJWK = bytes.Clone(k.PublicJWK)
	k.PrivateSealed = bytes.Clone(k.PrivateSealed)
	return k
}

func (m *memKeyStore) PutKey(_ context.Context, k StoredKey) error {
	m.mu.Lock()
	hook := m.onPut
	m.onPut = nil
	m.mu.Unlock()
	if hook != nil {
		hook(k)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k.ID]; ok {
		return fmt.Errorf("insert key %q: %w", k.ID, ErrKeyExists)
	}
	m.keys[k.ID] = cloneKey(k)
	return nil
}

func (m *memKeyStore) ListKeys(context.Context) ([]StoredKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]StoredKey, 0, len(m.keys))
	for _, k := range m.keys {
		out = append(out, cloneKey(k))
	}
	return out, nil
}

func (m *memKeyStore) UpdateKey(_ context.Context, k StoredKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.keys[k.ID]
	if !ok {
		return fmt.Errorf("update key %q: %w", k.ID, ErrNotFound)
	}
	old.PublishAt, old.ActivateAt, old.RetireAt, old.ExpireAt = k.PublishAt, k.ActivateAt, k.RetireAt, k.ExpireAt
	m.keys[k.ID] = old
	return nil
}

func (m *memKeyStore) DeleteKey(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, id)
	return nil
}

func (m *memKeyStore) ids() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id := range m.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// memRefreshStore is an in-memory RefreshStore keeping to the interface
// contract, with sessions; it is also the RevocationChecker.
type memRefreshStore struct {
	mu       sync.Mutex
	tokens   map[string]*refreshRow // by hex of the hash
	sessions map[string]*memSession
	calls    int
}

type refreshRow struct {
	sessionID string
	expiresAt time.Time
	spent     bool
	spentAt   time.Time
	next      []byte
	sealed    []byte
}

type memSession struct {
	expiresAt time.Time
	revoked   bool
}

func newMemRefreshStore() *memRefreshStore {
	return &memRefreshStore{tokens: map[string]*refreshRow{}, sessions: map[string]*memSession{}}
}

func (m *memRefreshStore) addSession(id string, expiresAt time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[id] = &memSession{expiresAt: expiresAt}
}

func (m *memRefreshStore) revoke(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[id].revoked = true
}

func (m *memRefreshStore) Revoked(_ context.Context, c *Claims) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[c.SessionID]
	return ok && s.revoked, nil
}

func (m *memRefreshStore) PutRefreshToken(_ context.Context, hash []byte, sessionID string, expiresAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if _, ok := m.sessions[sessionID]; !ok {
		return fmt.Errorf("session %q: %w", sessionID, ErrNotFound)
	}
	m.tokens[hex.EncodeToString(hash)] = &refreshRow{sessionID: sessionID, expiresAt: expiresAt}
	return nil
}

func (m *memRefreshStore) RotateRefreshToken(_ context.Context, oldHash []byte, next NextRefreshToken, retryWindow time.Duration, now time.Time) (RotatedRefreshToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	row, ok := m.tokens[hex.EncodeToString(oldHash)]
	if !ok {
		return RotatedRefreshToken{}, ErrNotFound
	}
	s := m.sessions[row.sessionID]
	if row.spent {
		if succ := m.tokens[hex.EncodeToString(row.next)]; succ != nil && !succ.spent && now.Before(row.spentAt.Add(retryWindow)) &&
			!s.revoked && now.Before(succ.expiresAt) {
			return RotatedRefreshToken{SessionID: row.sessionID, ExpiresAt: succ.expiresAt, Retry: true, Hash: row.next, Sealed: succ.sealed}, nil
		}
		s.revoked = true
		return RotatedRefreshToken{}, ErrReused
	}
	switch {
	case s.revoked:
		return RotatedRefreshToken{}, ErrRevoked
	case !now.Before(row.expiresAt) || !now.Before(s.expiresAt):
		return RotatedRefreshToken{}, ErrExpired
	}
	row.spent, row.spentAt, row.next = true, now, next.Hash
	exp := next.ExpiresAt
	if s.expiresAt.Before(exp) {
		exp = s.expiresAt
	}
	m.tokens[hex.EncodeToString(next.Hash)] = &refreshRow{sessionID: row.sessionID, expiresAt: exp, sealed: next.Sealed}
	return RotatedRefreshToken{SessionID: row.sessionID, ExpiresAt: exp, Hash: next.Hash}, nil
}

// fixture is one replica's token setup on shared stores.
type fixture struct {
	clock   *testClock
	keys    *memKeyStore
	refresh *memRefreshStore
	kek     []byte
	set     *KeySet
	iss     *Issuer
	logs    *bytes.Buffer
}

const (
	testIssuer   = "https://sso.example.com"
	testAudience = "https://api.example.com"
)

func newFixture(t testing.TB, alg string) *fixture {
	t.Helper()
	kek := make([]byte, KEKSize)
	if _, err := io.ReadFull(rand.Reader, kek); err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: newClock(), keys: newMemKeyStore(), refresh: newMemRefreshStore(), kek: kek}
	f.set, f.logs = f.replica(t, alg, kek)
	if err := f.set.Rotate(context.Background()); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	f.iss = f.issuer(t, f.set)
	return f
}

// replica makes another KeySet on the fixture's store and clock.
func (f *fixture) replica(t testing.TB, alg string, kek []byte) (*KeySet, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	set, err := NewKeySet(KeySetConfig{
		Store: f.keys, KEK: kek, Algorithm: alg, Now: f.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("NewKeySet: %v", err)
	}
	return set, &logs
}

func (f *fixture) issuer(t testing.TB, set *KeySet) *Issuer {
	t.Helper()
	iss, err := New(Config{
		Issuer: testIssuer, Audience: []string{testAudience}, Keys: set,
		Revocation: f.refresh, Refresh: f.refresh, Now: f.clock.Now,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return iss
}

func testClaims() Claims {
	return Claims{
		Subject: Subject("acme-okta", "alice@acme.example"), SessionID: "sess-1", Tenant: "acme", Connection: "acme-okta",
		Email: "alice@acme.example", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
		Groups: []string{"eng", "admins"}, Roles: []string{"admin"},
		AuthTime: time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC), ACR: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
		Extra: map[string]any{"department": "R&D"},
	}
}

func (f *fixture) mint(t testing.TB) (string, Claims) {
	t.Helper()
	tok, c, err := f.iss.Mint(testClaims())
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok, c
}

// signingKey is the key the fixture's key set signs with now.
func (f *fixture) signingKey(t testing.TB) *loadedKey {
	t.Helper()
	k := f.set.state.Load().signing(f.clock.Now())
	if k == nil {
		t.Fatal("no signing key")
	}
	return k
}
