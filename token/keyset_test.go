package token

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// jwksKids lists the kids of the set's JWKS document.
func jwksKids(t *testing.T, set *KeySet) []string {
	t.Helper()
	b, err := set.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range doc.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestRotationSchedule(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	first := f.signingKey(t)
	if got := jwksKids(t, f.set); !slices.Equal(got, []string{first.ID}) {
		t.Fatalf("JWKS after first Rotate = %v, want [%s]", got, first.ID)
	}
	if got := f.keys.ids(); len(got) != 1 {
		t.Fatalf("store has %v, want one key", got)
	}

	// Rotate again before the successor is due: nothing changes.
	f.clock.Advance(DefaultRotationPeriod - 2*DefaultPublishLead - time.Minute)
	if err := f.set.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.keys.ids(); len(got) != 1 {
		t.Fatalf("successor created too early: %v", got)
	}

	// Once due, the successor is published but does not sign yet.
	f.clock.Advance(2 * time.Minute)
	if err := f.set.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	next := successorID(first.ID)
	if got := jwksKids(t, f.set); !slices.Equal(got, []string{next, first.ID}) {
		t.Fatalf("JWKS = %v, want [%s %s]", got, next, first.ID)
	}
	published := f.clock.Now()
	oldTok, _ := f.mint(t)
	if kid := headerKid(t, oldTok); kid != first.ID {
		t.Fatalf("signed with %q before the successor's activation, want %q", kid, first.ID)
	}
	infos := f.set.Keys()
	if infos[0].ID != next || infos[0].State != KeyPending || infos[1].State != KeyActive || !infos[1].Signing {
		t.Fatalf("Keys = %+v", infos)
	}

	// Just before the handover the old key signs; at it the new one does,
	// after at least PublishLead in the JWKS.
	f.clock.Set(first.RetireAt.Add(-time.Second))
	lastOld, lastOldClaims := f.mint(t)
	if kid := headerKid(t, lastOld); kid != first.ID {
		t.Fatalf("kid just before handover = %q", kid)
	}
	f.clock.Set(first.RetireAt)
	newTok, _ := f.mint(t)
	if kid := headerKid(t, newTok); kid != next {
		t.Fatalf("kid at handover = %q, want %q", kid, next)
	}
	if lead := f.clock.Now().Sub(published); lead < DefaultPublishLead {
		t.Fatalf("successor published only %s before it signed", lead)
	}

	// A token of the old key stays valid until it expires; the old key
	// stays in the JWKS until then (plus leeway).
	if _, err := f.iss.Verify(ctx, lastOld); err != nil {
		t.Fatalf("old key's token after retirement: %v", err)
	}
	if err := f.set.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := jwksKids(t, f.set); !slices.Contains(got, first.ID) {
		t.Fatalf("retired key left the JWKS while its tokens are valid: %v", got)
	}
	f.clock.Set(lastOldClaims.ExpiresAt.Add(DefaultLeeway - time.Second))
	if _, err := f.iss.Verify(ctx, lastOld); err != nil {
		t.Fatalf("old key's token within its lifetime and leeway: %v", err)
	}

	// After that the key is removed everywhere.
	if first.ExpireAt.Before(lastOldClaims.ExpiresAt.Add(DefaultLeeway)) {
		t.Fatalf("key expires at %s, before its last token (exp %s) plus leeway", first.ExpireAt, lastOldClaims.ExpiresAt)
	}
	f.clock.Set(first.ExpireAt)
	if err := f.set.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := jwksKids(t, f.set); slices.Contains(got, first.ID) {
		t.Fatalf("expired key still in the JWKS: %v", got)
	}
	if got := f.keys.ids(); slices.Contains(got, first.ID) {
		t.Fatalf("expired key still stored: %v", got)
	}
	if _, err := f.iss.Verify(ctx, lastOld); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token of a removed key: %v", err)
	}
	if _, err := f.iss.Verify(ctx, newTok); err != nil && !errors.Is(err, ErrExpired) {
		t.Fatalf("new key's token: %v", err)
	}
}

func headerKid(t *testing.T, tok string) string {
	t.Helper()
	h, _, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatal("not a JWS")
	}
	raw, err := b64.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

func TestRotateRaceBetweenReplicas(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	b, _ := f.replica(t, ES256, f.kek)
	bIss := f.issuer(t, b)
	first := f.signingKey(t)
	f.clock.Set(first.RetireAt.Add(-DefaultPublishLead * 3 / 2))

	// Replica B has listed the keys and is about to store the successor
	// when replica A stores its own.
	f.keys.onPut = func(StoredKey) {
		if err := f.set.Rotate(ctx); err != nil {
			t.Errorf("replica A Rotate: %v", err)
		}
	}
	if err := b.Rotate(ctx); err != nil {
		t.Fatalf("replica B Rotate after losing the race: %v", err)
	}
	if got := f.keys.ids(); len(got) != 2 {
		t.Fatalf("store has %v, want the key and one successor", got)
	}
	next := successorID(first.ID)
	aKey, bKey := f.set.state.Load().byID[next], b.state.Load().byID[next]
	if aKey == nil || bKey == nil || string(aKey.PublicJWK) != string(bKey.PublicJWK) {
		t.Fatal("replicas disagree on the successor")
	}

	// After the handover, each replica verifies the other's tokens.
	f.clock.Set(first.RetireAt)
	tokA, _ := f.mint(t)
	tokB, _, err := bIss.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	if headerKid(t, tokA) != next || headerKid(t, tokB) != next {
		t.Fatal("replicas sign with different keys")
	}
	if _, err := bIss.Verify(ctx, tokA); err != nil {
		t.Fatalf("B verifies A's token: %v", err)
	}
	if _, err := f.iss.Verify(ctx, tokB); err != nil {
		t.Fatalf("A verifies B's token: %v", err)
	}
}

func TestRotateNow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	first := f.signingKey(t)
	f.clock.Advance(DefaultPublishLead / 2)
	info, err := f.set.RotateNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if info.State != KeyPending || !info.PublishAt.Equal(now) || !info.ActivateAt.Equal(now.Add(DefaultPublishLead)) {
		t.Fatalf("successor = %+v, want published now and signing after PublishLead", info)
	}
	if !slices.Contains(jwksKids(t, f.set), info.ID) {
		t.Fatal("successor not in the JWKS")
	}
	if tok, _ := f.mint(t); headerKid(t, tok) != first.ID {
		t.Fatal("successor signs before PublishLead")
	}
	old := f.set.state.Load().byID[first.ID]
	if !old.RetireAt.Equal(info.ActivateAt) || !old.ExpireAt.Equal(info.ActivateAt.Add(DefaultAccessTTL+DefaultLeeway)) {
		t.Fatalf("old key retires %s expires %s, want at the successor's start", old.RetireAt, old.ExpireAt)
	}
	// Again: idempotent, the same successor.
	again, err := f.set.RotateNow(ctx)
	if err != nil || again.ID != info.ID || !again.ActivateAt.Equal(info.ActivateAt) {
		t.Fatalf("second RotateNow = %+v, %v", again, err)
	}
	// A scheduled Rotate keeps that plan.
	if err := f.set.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if k := f.set.state.Load().byID[info.ID]; !k.ActivateAt.Equal(info.ActivateAt) {
		t.Fatalf("Rotate moved the successor to %s", k.ActivateAt)
	}
	f.clock.Set(info.ActivateAt)
	if tok, _ := f.mint(t); headerKid(t, tok) != info.ID {
		t.Fatal("successor does not sign at its activation")
	}
}

// When no replica ran for a while, the successor still gets its full
// PublishLead and the current key signs until then: no gap.
func TestLateRotationKeepsSigning(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ES256)
	first := f.signingKey(t)
	f.clock.Set(first.RetireAt.Add(-time.Minute))
	if err := f.set.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	next := f.set.state.Load().byID[successorID(first.ID)]
	if next == nil || !next.ActivateAt.Equal(f.clock.Now().Add(DefaultPublishLead)) {
		t.Fatalf("late successor = %+v", next)
	}
	f.clock.Set(first.RetireAt.Add(time.Minute)) // the original retirement has passed
	if tok, _ := f.mint(t); headerKid(t, tok) != first.ID {
		t.Fatal("current key stopped signing before its successor's PublishLead")
	}
	f.clock.Set(next.ActivateAt)
	if tok, _ := f.mint(t); headerKid(t, tok) != next.ID {
		t.Fatal("successor does not sign at its activation")
	}
}

func TestReloadFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		kek    func(f *fixture) []byte
		mutate func(t *testing.T, f *fixture)
		want   []string
		is     error
	}{
		{
			name: "wrong KEK",
			kek: func(f *fixture) []byte {
				k := slices.Clone(f.kek)
				k[0] ^= 1
				return k
			},
			want: []string{"cannot decrypt signing key", "wrong key-encryption key?"},
			is:   ErrWrongKEK,
		},
		{
			name: "sealed key moved to another kid",
			mutate: func(t *testing.T, f *fixture) {
				k := f.keys.keys[f.keys.ids()[0]]
				var j jwk
				if err := json.Unmarshal(k.PublicJWK, &j); err != nil {
					t.Fatal(err)
				}
				j.Kid = "moved"
				k.ID = "moved"
				k.PublicJWK, _ = json.Marshal(j)
				f.keys.keys = map[string]StoredKey{"moved": k}
			},
			want: []string{`"moved"`, "wrong key-encryption key?"},
			is:   ErrWrongKEK,
		},
		{
			name: "sealed key altered",
			mutate: func(t *testing.T, f *fixture) {
				for id, k := range f.keys.keys {
					k.PrivateSealed[len(k.PrivateSealed)-1] ^= 1
					f.keys.keys[id] = k
				}
			},
			want: []string{"cannot decrypt signing key"},
			is:   ErrWrongKEK,
		},
		{
			name: "public JWK of another key",
			mutate: func(t *testing.T, f *fixture) {
				other := newFixture(t, ES256)
				for id, k := range f.keys.keys {
					for _, o := range other.keys.keys {
						var j jwk
						if err := json.Unmarshal(o.PublicJWK, &j); err != nil {
							t.Fatal(err)
						}
						j.Kid = id
						k.PublicJWK, _ = json.Marshal(j)
					}
					f.keys.keys[id] = k
				}
			},
			want: []string{"does not match the stored public JWK"},
		},
		{
			name: "schedule out of order",
			mutate: func(t *testing.T, f *fixture) {
				for id, k := range f.keys.keys {
					k.RetireAt = k.ActivateAt.Add(-time.Second)
					f.keys.keys[id] = k
				}
			},
			want: []string{"schedule out of order"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ES256)
			kek := f.kek
			if tc.kek != nil {
				kek = tc.kek(f)
			}
			if tc.mutate != nil {
				tc.mutate(t, f)
			}
			other, _ := f.replica(t, ES256, kek)
			err := other.Reload(ctx)
			if err == nil {
				t.Fatal("Reload succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if len(other.Keys()) != 0 {
				t.Error("a failed Reload loaded keys")
			}
			if err := other.Rotate(ctx); err == nil {
				t.Error("Rotate over an unreadable key set succeeded")
			}
		})
	}
}

func TestNewKeySetConfig(t *testing.T) {
	kek := make([]byte, KEKSize)
	tests := []struct {
		name string
		cfg  KeySetConfig
		want string
	}{
		{"no store", KeySetConfig{KEK: kek}, "Store"},
		{"short KEK", KeySetConfig{Store: newMemKeyStore(), KEK: kek[:16]}, "KEK"},
		{"HS256", KeySetConfig{Store: newMemKeyStore(), KEK: kek, Algorithm: "HS256"}, "Algorithm"},
		{"none", KeySetConfig{Store: newMemKeyStore(), KEK: kek, Algorithm: "none"}, "Algorithm"},
		{"period too short", KeySetConfig{Store: newMemKeyStore(), KEK: kek, PublishLead: time.Hour, RotationPeriod: 90 * time.Minute}, "RotationPeriod"},
		{"negative leeway", KeySetConfig{Store: newMemKeyStore(), KEK: kek, Leeway: -time.Second}, "Leeway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeySet(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewKeySet = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := NewKeySet(KeySetConfig{Store: newMemKeyStore(), KEK: kek}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestMintWithoutKey(t *testing.T) {
	f := newFixture(t, ES256)
	empty, _ := f.replica(t, ES256, f.kek)
	iss := f.issuer(t, empty)
	if _, _, err := iss.Mint(testClaims()); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("Mint before any Reload = %v, want ErrNoSigningKey", err)
	}
}

func TestRotateAfterOutage(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		after     func(first *loadedKey) time.Time
		wantFirst bool // the first key signs again
	}{
		{"retired key still published signs again", func(k *loadedKey) time.Time { return k.RetireAt.Add(time.Minute) }, true},
		{"every key expired: a new key", func(k *loadedKey) time.Time { return k.ExpireAt.Add(time.Minute) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ES256)
			first := f.signingKey(t)
			f.clock.Set(tc.after(first))
			if _, _, err := f.iss.Mint(testClaims()); !errors.Is(err, ErrNoSigningKey) {
				t.Fatalf("Mint during the outage = %v, want ErrNoSigningKey", err)
			}
			if err := f.set.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			tok, _ := f.mint(t)
			if got := headerKid(t, tok) == first.ID; got != tc.wantFirst {
				t.Fatalf("signed with %s; first key %s; want first key: %v", headerKid(t, tok), first.ID, tc.wantFirst)
			}
			if !tc.wantFirst {
				if !strings.Contains(f.logs.String(), "no signing key was active") {
					t.Error("an unannounced key was not logged as a warning")
				}
				return
			}
			next := f.set.state.Load().byID[successorID(first.ID)]
			if next == nil || !next.ActivateAt.Equal(f.clock.Now().Add(DefaultPublishLead)) {
				t.Fatalf("successor = %+v, want one signing after PublishLead", next)
			}
			f.clock.Set(next.ActivateAt.Add(-time.Second))
			if tok, _ := f.mint(t); headerKid(t, tok) != first.ID {
				t.Fatal("gap before the successor")
			}
		})
	}
}

// TestConcurrentUse mints and verifies while another goroutine rotates and
// reloads; run with -race.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, EdDSA)
	done := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				tok, c, err := f.iss.Mint(testClaims())
				if err != nil {
					errs <- err
					return
				}
				_, err = f.iss.Verify(ctx, tok)
				// The clock only moves forward: if the token is still
				// valid after Verify returned, it was valid throughout.
				if err != nil && f.clock.Now().Before(c.ExpiresAt) {
					errs <- err
					return
				}
			}
		})
	}
	for range 6 {
		if _, err := f.set.RotateNow(ctx); err != nil {
			t.Fatal(err)
		}
		for range 12 {
			f.clock.Advance(DefaultPublishLead / 12)
			time.Sleep(time.Millisecond)
		}
		if err := f.set.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("mint/verify during rotation: %v", err)
	}
}
