package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ssogate/ssogate/store"
)

// EventFailing is the type of the event that says an endpoint was given up
// on after the retry window.
const EventFailing = "webhook.failing"

// Store is what the dispatcher needs of the store.
type Store interface {
	EnqueueWebhookDeliveries(ctx context.Context, now time.Time) (int, error)
	ClaimWebhookDelivery(ctx context.Context, owner string, now, leaseUntil time.Time) (store.WebhookDelivery, error)
	FinishWebhookDelivery(ctx context.Context, d store.WebhookDelivery, owner string, failWebhook bool) error
	GetWebhook(ctx context.Context, id string) (store.Webhook, error)
	EventsAfter(ctx context.Context, q store.EventsQuery) ([]store.AuditEvent, error)
}

// Config configures a Dispatcher. Zero durations take the defaults.
type Config struct {
	Store   Store
	Secrets *Secrets
	// Client sends the requests; its redirects are not followed. Default:
	// a plain client (ssogate injects one with a guarded dialer).
	Client *http.Client
	// Owner names this replica in delivery leases.
	Owner string
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Lease is how long a claimed delivery is this replica's (default 30 s;
	// at least twice Timeout).
	Lease time.Duration
	// RetryWindow is how long a delivery is retried before the endpoint is
	// marked failing (default 24 h).
	RetryWindow time.Duration
	// BackoffBase and BackoffMax shape the retry delays: attempt n waits a
	// random time up to min(BackoffMax, BackoffBase·2^(n-1)) (defaults 5 s
	// and 1 h).
	BackoffBase, BackoffMax time.Duration
	// Poll is how often it looks for due deliveries without being woken
	// (default 1 s).
	Poll time.Duration
	// Workers is how many deliveries it sends at once (default 4).
	Workers int
	Now     func() time.Time
	Rand    io.Reader
	Log     *slog.Logger
	// Delivered, if set, is called after each attempt (metrics).
	Delivered func(d store.WebhookDelivery)
}

// Dispatcher sends due deliveries until its context ends.
type Dispatcher struct {
	cfg    Config
	client *http.Client
	wake   chan struct{}
	kick   chan struct{}
	randMu sync.Mutex
}

// New validates cfg and fills its defaults.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Store == nil || cfg.Secrets == nil || cfg.Owner == "" {
		return nil, errors.New("webhook: Store, Secrets and Owner are required")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Second)
	cfg.Lease = cmp.Or(cfg.Lease, 30*time.Second)
	if cfg.Lease < 2*cfg.Timeout {
		return nil, fmt.Errorf("webhook: Lease %s must be at least twice Timeout %s", cfg.Lease, cfg.Timeout)
	}
	cfg.RetryWindow = cmp.Or(cfg.RetryWindow, 24*time.Hour)
	cfg.BackoffBase = cmp.Or(cfg.BackoffBase, 5*time.Second)
	cfg.BackoffMax = cmp.Or(cfg.BackoffMax, time.Hour)
	cfg.Poll = cmp.Or(cfg.Poll, time.Second)
	cfg.Workers = cmp.Or(cfg.Workers, 4)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	client := http.Client{}
	if cfg.Client != nil {
		client = *cfg.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client.Timeout = cfg.Timeout
	return &Dispatcher{cfg: cfg, client: &client, wake: make(chan struct{}, 1), kick: make(chan struct{}, 1)}, nil
}

// Wake tells the dispatcher that new events were committed: it enqueues
// them now, and its workers look for deliveries only when that added some.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Kick tells the dispatcher that a delivery was made due (a manual retry):
// its workers look for due deliveries now.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run enqueues and sends deliveries until ctx ends. Every replica runs it;
// the store's leases keep them from sending the same attempt twice.
//
// Claiming costs a store round trip, so it is asked for only where there
// may be something to claim: after an enqueue that added deliveries (as
// many workers as it added), on Kick, and once per Poll for retries that
// came due and work other replicas left behind. A worker that sent a
// delivery calls one more worker, so a backlog is drained by all of them;
// a replica with no webhook endpoints never claims on an event.
func (d *Dispatcher) Run(ctx context.Context) error {
	work := make(chan struct{}, d.cfg.Workers)
	call := func(n int) {
		for range min(n, d.cfg.Workers) {
			select {
			case work <- struct{}{}:
			default:
			}
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for range d.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-work:
				}
				for ctx.Err() == nil && d.sendOne(ctx) {
					call(1)
				}
			}
		})
	}
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	look := 1 // at start: what an earlier run left due
	for {
		added, err := d.cfg.Store.EnqueueWebhookDeliveries(ctx, d.cfg.Now())
		if err != nil && ctx.Err() == nil {
			d.cfg.Log.Warn("webhook enqueue failed", "error", err)
		}
		call(max(added, look))
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			look = 0
		case <-d.kick:
			look = 1
		case <-t.C:
			look = 1
		}
	}
}

// sendOne claims and sends one due delivery; false when none was due.
func (d *Dispatcher) sendOne(ctx context.Context) bool {
	now := d.cfg.Now()
	del, err := d.cfg.Store.ClaimWebhookDelivery(ctx, d.cfg.Owner, now, now.Add(d.cfg.Lease))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			d.cfg.Log.Warn("webhook claim failed", "error", err)
		}
		return false
	}
	d.attempt(ctx, del)
	return true
}

// attempt sends one claimed delivery and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, del store.WebhookDelivery) {
	start := d.cfg.Now()
	code, err := d.send(ctx, del, start)
	if ctx.Err() != nil {
		return // shutting down: the lease expires and someone sends it again
	}
	del.Attempts++
	del.LastAttemptAt = start
	if del.FirstAttemptAt.IsZero() {
		del.FirstAttemptAt = start
	}
	del.LastStatusCode, del.LastLatency, del.LastError = code, d.cfg.Now().Sub(start), ""
	fail := false
	var events []store.AuditEvent
	switch {
	case err == nil:
		del.Status = store.DeliverySucceeded
	case d.cfg.Now().Sub(del.FirstAttemptAt) >= d.cfg.RetryWindow:
		del.Status, del.LastError, fail = store.DeliveryFailed, err.Error(), true
		events = append(events, store.AuditEvent{Type: EventFailing,
			Message: fmt.Sprintf("webhook %s failed for %s; its deliveries wait for a retry", del.WebhookID, d.cfg.RetryWindow),
			Detail:  fmt.Appendf(nil, `{"webhook_id":%q,"delivery_id":%q,"last_error":%q}`, del.WebhookID, del.ID, err.Error())})
	default:
		del.Status, del.LastError = store.DeliveryPending, err.Error()
		del.NextAttemptAt = d.cfg.Now().Add(d.backoff(del.Attempts))
	}
	if ferr := d.cfg.Store.FinishWebhookDelivery(store.WithEvents(ctx, events...), del, d.cfg.Owner, fail); ferr != nil {
		d.cfg.Log.Warn("webhook delivery outcome not recorded", "delivery_id", del.ID, "error", ferr)
	}
	if d.cfg.Delivered != nil {
		d.cfg.Delivered(del)
	}
}

// errStatus is a non-2xx answer.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("receiver answered HTTP %d", int(e)) }

// send makes one HTTP attempt and returns the status code (0 when no
// answer came back).
func (d *Dispatcher) send(ctx context.Context, del store.WebhookDelivery, at time.Time) (int, error) {
	w, err := d.cfg.Store.GetWebhook(ctx, del.WebhookID)
	if err != nil {
		return 0, fmt.Errorf("load webhook: %w", err)
	}
	events, err := d.cfg.Store.EventsAfter(ctx, store.EventsQuery{After: del.EventSequence - 1, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("load event: %w", err)
	}
	if len(events) == 0 || events[0].Sequence != del.EventSequence {
		return 0, fmt.Errorf("event %d is no longer in the log (retention)", del.EventSequence)
	}
	body, err := Payload(events[0])
	if err != nil {
		return 0, err
	}
	keys, err := d.signingKeys(w, at)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	for k, v := range Headers(keys, del.ID, at, body) {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ssogate-webhook/1")
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, errStatus(resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// signingKeys are the endpoint's live secrets: the current one, and the
// previous one during a rotation's overlap.
func (d *Dispatcher) signingKeys(w store.Webhook, at time.Time) ([][]byte, error) {
	cur, err := d.cfg.Secrets.Open(w.ID, w.SecretSealed)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{cur}
	if len(w.PreviousSecretSealed) > 0 && at.Before(w.PreviousUntil) {
		prev, err := d.cfg.Secrets.Open(w.ID, w.PreviousSecretSealed)
		if err != nil {
			return nil, err
		}
		keys = append(keys, prev)
	}
	return keys, nil
}

// backoff is the wait before attempt n+1: full jitter over an exponential
// ceiling.
func (d *Dispatcher) backoff(n int) time.Duration {
	ceil := d.cfg.BackoffMax
	if n < 40 {
		ceil = min(d.cfg.BackoffMax, d.cfg.BackoffBase<<(n-1))
	}
	var b [8]byte
	d.randMu.Lock()
	_, err := io.ReadFull(d.cfg.Rand, b[:])
	d.randMu.Unlock()
	if err != nil || ceil <= 0 {
		return ceil
	}
	// At least a tenth of the ceiling, so that a retry never spins.
	return ceil/10 + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(ceil-ceil/10+1))
}
