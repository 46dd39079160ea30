package token

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of KeySetConfig and Config.
const (
	// DefaultAccessTTL is the lifetime of an access token.
	DefaultAccessTTL = 5 * time.Minute
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultPublishLead is how long a new key is in the JWKS before it
	// signs. It must exceed how long any verifier caches the JWKS (serve
	// the JWKS with a Cache-Control max-age well below it, e.g. 5 minutes)
	// and the interval at which replicas run Rotate.
	DefaultPublishLead = time.Hour
	// DefaultRotationPeriod is how long a key signs before its successor
	// takes over.
	DefaultRotationPeriod = 7 * 24 * time.Hour
	// DefaultMaintainInterval is how often Maintain runs Rotate (which
	// reloads the key set); well below DefaultPublishLead.
	DefaultMaintainInterval = time.Minute
)

// StoredKey is one signing key as the KeyStore keeps it; it mirrors the
// store's SigningKey. Times are the key's schedule:
//
//	PublishAt ≤ ActivateAt ≤ RetireAt ≤ ExpireAt
//
// It is in the JWKS from PublishAt until ExpireAt and signs from ActivateAt
// until RetireAt. ExpireAt is RetireAt plus the longest token lifetime and
// leeway, so every token it signed has expired when it leaves the JWKS.
type StoredKey struct {
	ID        string
	Algorithm string // ES256, EdDSA or RS256
	// PublicJWK is the JSON public JWK, with kid, alg and use.
	PublicJWK []byte
	// PrivateSealed is the PKCS #8 private key under AES-256-GCM with the
	// KEK, bound to ID and Algorithm. Meaningless without the KEK.
	PrivateSealed []byte
	CreatedAt     time.Time
	PublishAt     time.Time
	ActivateAt    time.Time
	RetireAt      time.Time
	ExpireAt      time.Time
}

// KeyStore persists signing keys so that every replica signs and verifies
// with the same set. Every replica writes through it; the contract makes
// concurrent rotations safe:
//
//   - PutKey inserts a new key. It must never overwrite: if k.ID exists it
//     fails with an error wrapping ErrKeyExists (a unique-key violation).
//   - ListKeys returns every stored key, in any order.
//   - UpdateKey replaces the schedule (PublishAt, ActivateAt, RetireAt,
//     ExpireAt) of the key k.ID; the key material passed is unchanged. A
//     missing key fails with an error wrapping ErrNotFound.
//   - DeleteKey removes a key; a missing key is not an error (or wraps
//     ErrNotFound, which is ignored).
type KeyStore interface {
	PutKey(ctx context.Context, k StoredKey) error
	ListKeys(ctx context.Context) ([]StoredKey, error)
	UpdateKey(ctx context.Context, k StoredKey) error
	DeleteKey(ctx context.Context, id string) error
}

// KeySetConfig configures a KeySet. Zero values take the defaults.
type KeySetConfig struct {
	// Store holds the keys. Required.
	Store KeyStore
	// KEK is the 32-byte key-encryption key (see LoadKEK). Required. The
	// KeySet keeps only an AES cipher built from it.
	KEK []byte
	// Algorithm of new keys: ES256 (default), EdDSA or RS256. Changing it
	// takes effect at the next rotation; keys of other algorithms keep
	// verifying until they expire.
	Algorithm string
	// PublishLead is how long a new key is published before it signs
	// (default DefaultPublishLead).
	PublishLead time.Duration
	// RotationPeriod is how long a key signs (default
	// DefaultRotationPeriod); at least 2×PublishLead.
	RotationPeriod time.Duration
	// MaxTokenTTL is the longest lifetime of a token signed with these
	// keys (default DefaultAccessTTL); retired keys stay published this
	// long plus Leeway. Config.AccessTTL may not exceed it.
	MaxTokenTTL time.Duration
	// Leeway is the clock skew verifiers allow (default DefaultLeeway).
	// Config.Leeway may not exceed it.
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness for key ids, nonces and Ed25519 keys
	// (default crypto/rand.Reader).
	Rand io.Reader
	// Logger receives key lifecycle events (key ids and times only).
	// Default: discard.
	Logger *slog.Logger
}

// KeySet holds the signing keys: it creates, seals, schedules and loads
// them, picks the one that signs, finds the one that verifies and renders
// the JWKS. Reads are lock-free snapshots; Reload and Rotate replace the
// snapshot.
type KeySet struct {
	store   KeyStore
	sealer  *sealer
	alg     string
	lead    time.Duration
	period  time.Duration
	maxTTL  time.Duration
	leeway  time.Duration
	now     func() time.Time
	random  io.Reader
	log     *slog.Logger
	writeMu sync.Mutex // serialises Reload, Rotate and RotateNow of this replica
	state   atomic.Pointer[keyState]
}

// loadedKey is a StoredKey with its keys decoded.
type loadedKey struct {
	StoredKey
	public crypto.PublicKey
	signer crypto.Signer
	method jwt.SigningMethod
	jwk    jwk
}

type keyState struct {
	keys []*loadedKey // by ActivateAt, then ID
	byID map[string]*loadedKey
}

// NewKeySet checks cfg and returns a KeySet with no keys loaded: call
// Rotate (which also reloads) before the first Mint.
func NewKeySet(cfg KeySetConfig) (*KeySet, error) {
	k := &KeySet{
		store: cfg.Store, alg: cmp.Or(cfg.Algorithm, ES256),
		lead: cmp.Or(cfg.PublishLead, DefaultPublishLead), period: cmp.Or(cfg.RotationPeriod, DefaultRotationPeriod),
		maxTTL: cmp.Or(cfg.MaxTokenTTL, DefaultAccessTTL), leeway: cmp.Or(cfg.Leeway, DefaultLeeway),
		now: cfg.Now, random: cfg.Rand, log: cfg.Logger,
	}
	if k.store == nil {
		return nil, errors.New("token key set: Store is required")
	}
	if len(cfg.KEK) != KEKSize {
		return nil, fmt.Errorf("token key set: KEK has %d bytes, want %d (see LoadKEK)", len(cfg.KEK), KEKSize)
	}
	if _, err := signingMethod(k.alg); err != nil {
		return nil, fmt.Errorf("token key set: Algorithm: %w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PublishLead", k.lead}, {"RotationPeriod", k.period}, {"MaxTokenTTL", k.maxTTL}, {"Leeway", k.leeway}} {
		if d.v < 0 {
			return nil, fmt.Errorf("token key set: %s is negative (%s)", d.name, d.v)
		}
	}
	if k.period < 2*k.lead {
		return nil, fmt.Errorf("token key set: RotationPeriod (%s) must be at least twice PublishLead (%s)", k.period, k.lead)
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.random == nil {
		k.random = rand.Reader
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	s, err := newSealer(cfg.KEK, k.random)
	if err != nil {
		return nil, fmt.Errorf("token key set: %w", err)
	}
	k.sealer = s
	k.state.Store(&keyState{byID: map[string]*loadedKey{}})
	return k, nil
}

// Reload replaces the in-memory key set with the store's. Unchanged keys
// are not decrypted again. On any error the previous set stays in use; a
// key that does not decrypt fails with ErrWrongKEK and names its id.
func (k *KeySet) Reload(ctx context.Context) error {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	return k.reload(ctx)
}

func (k *KeySet) reload(ctx context.Context) error {
	stored, err := k.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	old := k.state.Load()
	next := &keyState{byID: make(map[string]*loadedKey, len(stored))}
	for _, sk := range stored {
		if _, dup := next.byID[sk.ID]; dup {
			return fmt.Errorf("signing key %q is stored twice", sk.ID)
		}
		lk, err := k.load(sk, old.byID[sk.ID])
		if err != nil {
			return err
		}
		next.byID[sk.ID] = lk
		next.keys = append(next.keys, lk)
	}
	slices.SortFunc(next.keys, func(a, b *loadedKey) int {
		return cmp.Or(a.ActivateAt.Compare(b.ActivateAt), cmp.Compare(a.ID, b.ID))
	})
	k.state.Store(next)
	return nil
}

// load decodes sk, reusing prev when its key material is the same.
func (k *KeySet) load(sk StoredKey, prev *loadedKey) (*loadedKey, error) {
	if sk.ID == "" {
		return nil, errors.New("a stored signing key has an empty id")
	}
	if !(!sk.PublishAt.After(sk.ActivateAt) && !sk.ActivateAt.After(sk.RetireAt) && !sk.RetireAt.After(sk.ExpireAt)) {
		return nil, fmt.Errorf("signing key %q: schedule out of order (publish %s, activate %s, retire %s, expire %s)",
			sk.ID, sk.PublishAt, sk.ActivateAt, sk.RetireAt, sk.ExpireAt)
	}
	if prev != nil && prev.Algorithm == sk.Algorithm && bytes.Equal(prev.PublicJWK, sk.PublicJWK) && bytes.Equal(prev.PrivateSealed, sk.PrivateSealed) {
		lk := *prev
		lk.StoredKey = sk
		return &lk, nil
	}
	method, err := signingMethod(sk.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", sk.ID, err)
	}
	pub, err := parseJWK(sk.PublicJWK, sk.ID, sk.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", sk.ID, err)
	}
	signer, err := k.sealer.open(sk.ID, sk.Algorithm, sk.PrivateSealed, pub)
	if err != nil {
		return nil, err
	}
	j, err := publicJWK(sk.ID, sk.Algorithm, pub)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", sk.ID, err)
	}
	return &loadedKey{StoredKey: sk, public: pub, signer: signer, method: method, jwk: j}, nil
}

// signing is the key that signs at now: the active key (ActivateAt ≤ now <
// RetireAt) activated last, ties broken by id, so replicas agree.
func (s *keyState) signing(now time.Time) *loadedKey {
	for i := len(s.keys) - 1; i >= 0; i-- {
		if lk := s.keys[i]; !lk.ActivateAt.After(now) && now.Before(lk.RetireAt) {
			return lk
		}
	}
	return nil
}

// verifying is the key kid if it is published at now, give or take leeway
// (replicas' clocks differ a little).
func (s *keyState) verifying(kid string, now time.Time, leeway time.Duration) *loadedKey {
	lk := s.byID[kid]
	if lk == nil || now.Add(leeway).Before(lk.PublishAt) || !now.Add(-leeway).Before(lk.ExpireAt) {
		return nil
	}
	return lk
}

func (lk *loadedKey) published(now time.Time) bool {
	return !now.Before(lk.PublishAt) && now.Before(lk.ExpireAt)
}

// JWKS renders the JSON Web Key Set (RFC 7517) of the keys published now:
// the signing key, its announced successor and retired keys whose tokens
// may still be valid, newest first.
func (k *KeySet) JWKS() ([]byte, error) {
	now := k.now()
	s := k.state.Load()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for i := len(s.keys) - 1; i >= 0; i-- {
		if lk := s.keys[i]; lk.published(now) {
			set.Keys = append(set.Keys, lk.jwk)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encode JWKS: %w", err)
	}
	return b, nil
}

// KeyState is where a key is in its life at a given time.
type KeyState string

// Key states, in order.
const (
	KeyPending KeyState = "pending" // published, not yet signing
	KeyActive  KeyState = "active"  // signing
	KeyRetired KeyState = "retired" // published for tokens it signed
	KeyExpired KeyState = "expired" // out of the JWKS; Rotate deletes it
)

// KeyInfo describes a key without its key material.
type KeyInfo struct {
	ID, Algorithm string
	State         KeyState
	// Signing is true for the one key that signs now.
	Signing                                              bool
	CreatedAt, PublishAt, ActivateAt, RetireAt, ExpireAt time.Time
}

// Keys lists the loaded keys, newest first.
func (k *KeySet) Keys() []KeyInfo {
	now := k.now()
	s := k.state.Load()
	signing := s.signing(now)
	out := make([]KeyInfo, 0, len(s.keys))
	for i := len(s.keys) - 1; i >= 0; i-- {
		lk := s.keys[i]
		out = append(out, lk.info(now, lk == signing))
	}
	return out
}

func (lk *loadedKey) info(now time.Time, signing bool) KeyInfo {
	state := KeyExpired
	switch {
	case now.Before(lk.ActivateAt):
		state = KeyPending
	case now.Before(lk.RetireAt):
		state = KeyActive
	case now.Before(lk.ExpireAt):
		state = KeyRetired
	}
	return KeyInfo{
		ID: lk.ID, Algorithm: lk.Algorithm, State: state, Signing: signing,
		CreatedAt: lk.CreatedAt, PublishAt: lk.PublishAt, ActivateAt: lk.ActivateAt, RetireAt: lk.RetireAt, ExpireAt: lk.ExpireAt,
	}
}

// retention is how long a retired key stays published: until every token
// it signed has expired, leeway included.
func (k *KeySet) retention() time.Duration { return k.maxTTL + k.leeway }

// successorID is the id of the key that follows kid. It is derived, so
// replicas that rotate at once create the same id and the store's
// uniqueness lets exactly one of them win.
func successorID(kid string) string {
	sum := sha256.Sum256(lengthPrefixed("ssogate/kid/successor/v1", kid))
	return b64.EncodeToString(sum[:12])
}

func (k *KeySet) randomID() (string, error) {
	var b [12]byte
	if _, err := io.ReadFull(k.random, b[:]); err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	return b64.EncodeToString(b[:]), nil
}

// Rotate brings the stored key set up to date and reloads it. Every
// replica runs it on a schedule (see Maintain); running it twice, or on two
// replicas at once, is harmless. It
//
//   - deletes keys whose ExpireAt has passed;
//   - if no key is active: lets the newest published key sign again (a
//     replica was down too long), or else creates a key that signs at
//     once (first start);
//   - creates the signing key's successor once its retirement is less
//     than 2×PublishLead away, published now and signing from the
//     predecessor's RetireAt, but never sooner than PublishLead from now
//     (the predecessor's RetireAt is moved out to meet it, so there is no
//     gap).
func (k *KeySet) Rotate(ctx context.Context) error {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	if err := k.reload(ctx); err != nil {
		return err
	}
	now := k.now()
	s := k.state.Load()
	changed := false
	for _, lk := range s.keys {
		if now.Before(lk.ExpireAt) {
			continue
		}
		if err := k.store.DeleteKey(ctx, lk.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete expired signing key %q: %w", lk.ID, err)
		}
		k.log.InfoContext(ctx, "signing key removed from the JWKS", "kid", lk.ID, "expired_at", lk.ExpireAt)
		changed = true
	}
	cur := s.signing(now)
	if cur == nil {
		// No replica ran Rotate in time. A key still in the JWKS can sign
		// again, which verifiers already trust, until a successor is due.
		revived, err := k.revive(ctx, s, now)
		if err != nil {
			return err
		}
		if revived == nil {
			if err := k.bootstrap(ctx, now, len(s.keys) > 0); err != nil {
				return err
			}
			return k.reload(ctx)
		}
		cur, changed = revived, true
	}
	switch {
	case now.Add(2 * k.lead).Before(cur.RetireAt):
		// The successor is not due yet.
	default:
		created, err := k.ensureSuccessor(ctx, now, cur, cur.RetireAt)
		if err != nil {
			return err
		}
		changed = changed || created
	}
	if changed {
		return k.reload(ctx)
	}
	return nil
}

// revive extends the newest published key that has retired (or never
// activated) to sign until PublishLead from now, so that its successor
// can be published ahead. It returns nil if no key is published.
func (k *KeySet) revive(ctx context.Context, s *keyState, now time.Time) (*loadedKey, error) {
	var lk *loadedKey
	// Prefer the newest retired key, then the oldest pending one.
	for i := len(s.keys) - 1; i >= 0 && lk == nil; i-- {
		if c := s.keys[i]; c.published(now) && !c.ActivateAt.After(now) {
			lk = c
		}
	}
	for i := 0; i < len(s.keys) && lk == nil; i++ {
		if c := s.keys[i]; c.published(now) {
			lk = c
		}
	}
	if lk != nil {
		upd := lk.StoredKey
		upd.ActivateAt = earliest(upd.ActivateAt, now)
		upd.RetireAt = now.Add(k.lead)
		upd.ExpireAt = upd.RetireAt.Add(k.retention())
		if err := k.store.UpdateKey(ctx, upd); err != nil {
			return nil, fmt.Errorf("reschedule signing key %q: %w", lk.ID, err)
		}
		k.log.WarnContext(ctx, "no signing key was active; a published key signs again until its successor is due",
			"kid", lk.ID, "retire_at", upd.RetireAt)
		return &loadedKey{StoredKey: upd}, nil
	}
	return nil, nil
}

// bootstrap creates a key that signs at once: there is none to hand over
// from, so it cannot be published ahead.
func (k *KeySet) bootstrap(ctx context.Context, now time.Time, hadKeys bool) error {
	id, err := k.randomID()
	if err != nil {
		return err
	}
	sk, err := k.newKey(id, now, now)
	if err != nil {
		return err
	}
	if err := k.store.PutKey(ctx, sk); err != nil {
		return fmt.Errorf("store signing key %q: %w", id, err)
	}
	if hadKeys {
		k.log.WarnContext(ctx, "no signing key was active; created one that signs at once, before verifiers could fetch it",
			"kid", id, "alg", sk.Algorithm)
	} else {
		k.log.InfoContext(ctx, "created the first signing key", "kid", id, "alg", sk.Algorithm)
	}
	return nil
}

// ensureSuccessor makes sure cur's successor exists and signs from
// activateAt, or PublishLead after its publication if that is later, and
// that cur signs until the successor takes over. It reports whether it
// changed the store.
func (k *KeySet) ensureSuccessor(ctx context.Context, now time.Time, cur *loadedKey, activateAt time.Time) (bool, error) {
	id := successorID(cur.ID)
	s := k.state.Load()
	next, exists := s.byID[id]
	changed := false
	if !exists {
		sk, err := k.newKey(id, now, latest(activateAt, now.Add(k.lead)))
		if err != nil {
			return false, err
		}
		switch err := k.store.PutKey(ctx, sk); {
		case errors.Is(err, ErrKeyExists):
			// Another replica won the race; use its key.
			if err := k.reload(ctx); err != nil {
				return false, err
			}
			if next = k.state.Load().byID[id]; next == nil {
				return false, fmt.Errorf("store signing key %q: store says it exists but does not list it", id)
			}
		case err != nil:
			return false, fmt.Errorf("store signing key %q: %w", id, err)
		default:
			k.log.InfoContext(ctx, "signing key published ahead of use", "kid", id, "alg", sk.Algorithm,
				"publish_at", sk.PublishAt, "activate_at", sk.ActivateAt, "predecessor", cur.ID)
			next = &loadedKey{StoredKey: sk}
		}
		changed = true
	} else if want := latest(activateAt, next.PublishAt.Add(k.lead)); !next.ActivateAt.Equal(want) && now.Before(next.ActivateAt) {
		// Not yet signing: move its start (RotateNow brings it forward).
		upd := next.StoredKey
		k.schedule(&upd, want)
		if err := k.store.UpdateKey(ctx, upd); err != nil {
			return false, fmt.Errorf("reschedule signing key %q: %w", id, err)
		}
		next = &loadedKey{StoredKey: upd}
		changed = true
	}
	if !cur.RetireAt.Equal(next.ActivateAt) && now.Before(cur.RetireAt) {
		upd := cur.StoredKey
		upd.RetireAt = latest(next.ActivateAt, now)
		upd.ExpireAt = upd.RetireAt.Add(k.retention())
		if err := k.store.UpdateKey(ctx, upd); err != nil {
			return false, fmt.Errorf("reschedule signing key %q: %w", cur.ID, err)
		}
		k.log.InfoContext(ctx, "signing key retirement moved to its successor's start", "kid", cur.ID, "retire_at", upd.RetireAt, "successor", id)
		changed = true
	}
	return changed, nil
}

// RotateNow retires the signing key as soon as publish-before-use allows:
// its successor is published now (or already was) and signs PublishLead
// after its publication. It returns the successor. It is not an emergency
// revocation: the current key keeps verifying its tokens until they
// expire.
func (k *KeySet) RotateNow(ctx context.Context) (KeyInfo, error) {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	if err := k.reload(ctx); err != nil {
		return KeyInfo{}, err
	}
	now := k.now()
	cur := k.state.Load().signing(now)
	if cur == nil {
		return KeyInfo{}, fmt.Errorf("rotate signing key: %w (run Rotate first)", ErrNoSigningKey)
	}
	if _, err := k.ensureSuccessor(ctx, now, cur, now); err != nil {
		return KeyInfo{}, err
	}
	if err := k.reload(ctx); err != nil {
		return KeyInfo{}, err
	}
	next := k.state.Load().byID[successorID(cur.ID)]
	if next == nil {
		return KeyInfo{}, fmt.Errorf("rotate signing key: successor of %q is not in the store after creation", cur.ID)
	}
	return next.info(now, false), nil
}

// newKey generates and seals a key published at publishAt that signs from
// activateAt.
func (k *KeySet) newKey(id string, publishAt, activateAt time.Time) (StoredKey, error) {
	priv, err := generateKey(k.alg, k.random)
	if err != nil {
		return StoredKey{}, fmt.Errorf("generate %s signing key: %w", k.alg, err)
	}
	j, err := publicJWK(id, k.alg, priv.Public())
	if err != nil {
		return StoredKey{}, err
	}
	pub, err := json.Marshal(j)
	if err != nil {
		return StoredKey{}, fmt.Errorf("encode public JWK: %w", err)
	}
	sealed, err := k.sealer.seal(id, k.alg, priv)
	if err != nil {
		return StoredKey{}, err
	}
	sk := StoredKey{ID: id, Algorithm: k.alg, PublicJWK: pub, PrivateSealed: sealed, CreatedAt: publishAt, PublishAt: publishAt}
	k.schedule(&sk, activateAt)
	return sk, nil
}

// schedule sets sk to sign from activateAt for one RotationPeriod.
func (k *KeySet) schedule(sk *StoredKey, activateAt time.Time) {
	sk.ActivateAt = activateAt
	sk.RetireAt = activateAt.Add(k.period)
	sk.ExpireAt = sk.RetireAt.Add(k.retention())
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Maintain runs Rotate now and then every interval until ctx ends, logging
// failures (which name key ids, never key material). The server runs it in
// a goroutine it waits for. It returns ctx's error.
func (k *KeySet) Maintain(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultMaintainInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := k.Rotate(ctx); err != nil && ctx.Err() == nil {
			k.log.ErrorContext(ctx, "signing key rotation failed", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
