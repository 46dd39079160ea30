package webhook_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/sqlite"
	"github.com/ssogate/ssogate/webhook"
)

// countingStore counts the dispatcher's store round trips.
type countingStore struct {
	store.Store
	enqueues, claims atomic.Int64
}

func (c *countingStore) EnqueueWebhookDeliveries(ctx context.Context, now time.Time) (int, error) {
	defer c.enqueues.Add(1)
	return c.Store.EnqueueWebhookDeliveries(ctx, now)
}

func (c *countingStore) ClaimWebhookDelivery(ctx context.Context, owner string, now, leaseUntil time.Time) (store.WebhookDelivery, error) {
	c.claims.Add(1)
	return c.Store.ClaimWebhookDelivery(ctx, owner, now, leaseUntil)
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Events wake the dispatcher, but its workers ask the store for a delivery
// only when the enqueue added one (or on Kick, or the poll): a replica with
// no webhook endpoints makes one enqueue per wake-up and no claims. Woken,
// not polled (the poll is an hour), a new delivery still goes out at once.
func TestDispatcherClaimsOnlyWhenThereIsWork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hooks.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	kek := make([]byte, 32)
	rand.Read(kek)
	secrets, err := webhook.NewSecrets(kek, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	d, err := webhook.New(webhook.Config{Store: cs, Secrets: secrets, Owner: "test", Poll: time.Hour, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitUntil(t, "the first round", func() bool { return cs.enqueues.Load() >= 1 && cs.claims.Load() >= 1 })
	time.Sleep(50 * time.Millisecond)
	claimsAtStart := cs.claims.Load()

	appendEvent := func(i int) {
		t.Helper()
		if err := st.AppendAudit(ctx, store.AuditEvent{ID: fmt.Sprintf("ev-%d", i), Time: time.Now(), Type: "login.started", Message: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		appendEvent(i)
		before := cs.enqueues.Load()
		d.Wake()
		waitUntil(t, "the enqueue of a wake-up", func() bool { return cs.enqueues.Load() > before })
	}
	time.Sleep(50 * time.Millisecond)
	if got := cs.claims.Load() - claimsAtStart; got != 0 {
		t.Errorf("with no endpoints, 20 wake-ups made %d claims, want 0", got)
	}

	before := cs.claims.Load()
	d.Kick()
	waitUntil(t, "a claim after Kick", func() bool { return cs.claims.Load() > before })

	last, err := st.LastEventSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, sealed, err := secrets.New("wh-1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.CreateWebhook(ctx, store.Webhook{ID: "wh-1", URL: recv.URL, SecretSealed: sealed, Cursor: last, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	appendEvent(20)
	d.Wake()
	waitUntil(t, "the delivery of a woken event", func() bool { return delivered.Load() == 1 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
