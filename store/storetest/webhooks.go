package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func webhook(id string, cursor int64, types ...string) store.Webhook {
	return store.Webhook{ID: id, URL: "https://example.com/" + id, EventTypes: types,
		SecretSealed: []byte("sealed-" + id), Cursor: cursor, CreatedAt: t0}
}

func claim(t *testing.T, st store.Store, owner string, now time.Time) (store.WebhookDelivery, bool) {
	t.Helper()
	d, err := st.ClaimWebhookDelivery(ctx(t), owner, now, now.Add(30*time.Second))
	if err != nil {
		wantErr(t, "ClaimWebhookDelivery", err, store.ErrNotFound)
		return store.WebhookDelivery{}, false
	}
	return d, true
}

func testWebhooks(t *testing.T, st store.Store) {
	wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), store.AuditEvent{Type: "before"}), nil)
	wantErr(t, "CreateWebhook", st.CreateWebhook(ctx(t), webhook("w1", 1)), nil)
	wantErr(t, "CreateWebhook logins", st.CreateWebhook(ctx(t), webhook("w2", 1, "login.succeeded")), nil)
	wantErr(t, "CreateWebhook duplicate", st.CreateWebhook(ctx(t), webhook("w1", 1)), store.ErrConflict)
	got, err := st.GetWebhook(ctx(t), "w2")
	wantErr(t, "GetWebhook", err, nil)
	if got.URL != "https://example.com/w2" || fmt.Sprint(got.EventTypes) != "[login.succeeded]" ||
		string(got.SecretSealed) != "sealed-w2" || got.State != store.WebhookActive || got.Cursor != 1 {
		t.Fatalf("GetWebhook = %+v", got)
	}
	_, err = st.GetWebhook(ctx(t), "nope")
	wantErr(t, "GetWebhook unknown", err, store.ErrNotFound)

	for _, typ := range []string{"login.succeeded", "login.failed", "login.succeeded"} {
		wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), store.AuditEvent{Type: typ}), nil)
	}
	n, err := st.EnqueueWebhookDeliveries(ctx(t), t0)
	wantErr(t, "EnqueueWebhookDeliveries", err, nil)
	if n != 5 { // w1: 2, 3, 4; w2: 2, 4
		t.Fatalf("enqueued %d deliveries, want 5", n)
	}
	if n, _ := st.EnqueueWebhookDeliveries(ctx(t), t0); n != 0 {
		t.Fatalf("second enqueue added %d, want 0", n)
	}

	// The head of each queue only, one lease each.
	heads := map[string]store.WebhookDelivery{}
	for {
		d, ok := claim(t, st, "r1", t0)
		if !ok {
			break
		}
		heads[d.WebhookID] = d
	}
	if len(heads) != 2 || heads["w1"].EventSequence != 2 || heads["w2"].EventSequence != 2 {
		t.Fatalf("claimed %+v, want the sequence-2 delivery of each webhook", heads)
	}
	if _, ok := claim(t, st, "r2", t0.Add(29*time.Second)); ok {
		t.Fatalf("claimed a leased delivery")
	}
	w2 := heads["w2"]
	w2.Status, w2.Attempts = store.DeliverySucceeded, 1
	wantErr(t, "FinishWebhookDelivery w2", st.FinishWebhookDelivery(ctx(t), w2, "r1", false), nil)
	w2next, ok := claim(t, st, "r9", t0)
	if !ok || w2next.WebhookID != "w2" || w2next.EventSequence != 4 {
		t.Fatalf("after w2's head succeeded claimed %+v, want its sequence 4", w2next)
	}
	w2next.Status = store.DeliverySucceeded
	wantErr(t, "FinishWebhookDelivery w2", st.FinishWebhookDelivery(ctx(t), w2next, "r9", false), nil)
	// A failed attempt, retried later: the same delivery again, not the next.
	d := heads["w1"]
	d.Attempts, d.FirstAttemptAt, d.LastAttemptAt = 1, t0, t0
	d.LastStatusCode, d.LastLatency, d.LastError = 500, 1234*time.Microsecond, "HTTP 500"
	d.NextAttemptAt = t0.Add(time.Minute)
	wantErr(t, "FinishWebhookDelivery stranger", st.FinishWebhookDelivery(ctx(t), d, "r2", false), store.ErrConflict)
	wantErr(t, "FinishWebhookDelivery", st.FinishWebhookDelivery(ctx(t), d, "r1", false), nil)
	if _, ok := claim(t, st, "r2", t0.Add(29*time.Second)); ok {
		t.Fatalf("claimed before the retry is due or past the head of the queue")
	}
	again, ok := claim(t, st, "r2", t0.Add(time.Minute))
	if !ok || again.ID != d.ID || again.Attempts != 1 || again.LastStatusCode != 500 || again.LastLatency != d.LastLatency {
		t.Fatalf("retry claim = %+v, %v; want %+v", again, ok, d)
	}
	again.Status, again.Attempts = store.DeliverySucceeded, 2
	wantErr(t, "FinishWebhookDelivery", st.FinishWebhookDelivery(ctx(t), again, "r2", false), nil)
	next, ok := claim(t, st, "r2", t0.Add(time.Minute))
	if !ok || next.WebhookID != "w1" || next.EventSequence != 3 {
		t.Fatalf("after success claimed %+v, want w1's sequence 3", next)
	}
	// Giving up marks the endpoint failing: nothing more of it is claimed.
	next.Status = store.DeliveryFailed
	wantErr(t, "FinishWebhookDelivery fail", st.FinishWebhookDelivery(ctx(t), next, "r2", true), nil)
	if w, _ := st.GetWebhook(ctx(t), "w1"); w.State != store.WebhookFailing {
		t.Fatalf("state after giving up = %q", w.State)
	}
	if d, ok := claim(t, st, "r3", t0.Add(time.Hour)); ok {
		t.Fatalf("claimed %+v of a failing endpoint", d)
	}
	// A manual retry revives both.
	r, err := st.RetryWebhookDelivery(ctx(t), next.ID, t0.Add(time.Hour))
	wantErr(t, "RetryWebhookDelivery", err, nil)
	if r.Status != store.DeliveryPending || !r.FirstAttemptAt.IsZero() {
		t.Fatalf("retried delivery = %+v", r)
	}
	if d, ok := claim(t, st, "r3", t0.Add(time.Hour)); !ok || d.ID != next.ID {
		t.Fatalf("claim after retry = %+v, %v", d, ok)
	}
	_, err = st.RetryWebhookDelivery(ctx(t), "nope", t0)
	wantErr(t, "RetryWebhookDelivery unknown", err, store.ErrNotFound)

	log, err := st.ListWebhookDeliveries(ctx(t), "w1", 0)
	wantErr(t, "ListWebhookDeliveries", err, nil)
	if len(log) != 3 || log[0].EventSequence != 4 || log[2].Status != store.DeliverySucceeded || log[2].Attempts != 2 {
		t.Fatalf("delivery log = %+v", log)
	}

	// Rotation keeps both secrets.
	w, _ := st.GetWebhook(ctx(t), "w2")
	w.PreviousSecretSealed, w.PreviousUntil, w.SecretSealed = w.SecretSealed, t0.Add(24*time.Hour), []byte("new")
	wantErr(t, "UpdateWebhook", st.UpdateWebhook(ctx(t), w), nil)
	w, _ = st.GetWebhook(ctx(t), "w2")
	if string(w.SecretSealed) != "new" || string(w.PreviousSecretSealed) != "sealed-w2" || !w.PreviousUntil.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("after rotation = %+v", w)
	}
	hooks, err := st.ListWebhooks(ctx(t))
	wantErr(t, "ListWebhooks", err, nil)
	if len(hooks) != 2 {
		t.Fatalf("ListWebhooks = %d", len(hooks))
	}
	wantErr(t, "DeleteWebhook", st.DeleteWebhook(ctx(t), "w1"), nil)
	wantErr(t, "DeleteWebhook again", st.DeleteWebhook(ctx(t), "w1"), store.ErrNotFound)
	if log, _ := st.ListWebhookDeliveries(ctx(t), "w1", 0); len(log) != 0 {
		t.Fatalf("deliveries of a deleted webhook: %d", len(log))
	}
}

// raceClaimWebhookDelivery: many claimers on both stores, each delivery
// leased to exactly one of them.
func raceClaimWebhookDelivery(t *testing.T, a, b store.Store) {
	for i := range 3 {
		wantErr(t, "CreateWebhook", a.CreateWebhook(ctx(t), webhook(fmt.Sprintf("w%d", i), 0)), nil)
	}
	wantErr(t, "AppendAudit", a.AppendAudit(ctx(t), store.AuditEvent{Type: "x"}), nil)
	var wg sync.WaitGroup
	for i := range 4 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() { _, _ = st.EnqueueWebhookDeliveries(ctx(t), t0) })
	}
	wg.Wait()
	var mu sync.Mutex
	won := map[string]int{}
	got := race(t, a, b, func(i int, st store.Store) error {
		d, err := st.ClaimWebhookDelivery(ctx(t), fmt.Sprint(i), t0, t0.Add(time.Minute))
		if err != nil {
			if isNotFound(err) {
				return store.ErrConsumed
			}
			return err
		}
		mu.Lock()
		won[d.ID]++
		mu.Unlock()
		return nil
	})
	if got["ok"] != 3 || len(won) != 3 {
		t.Fatalf("claims: %v over deliveries %v, want 3 deliveries claimed once each", got, won)
	}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
