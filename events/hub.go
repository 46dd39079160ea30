// Package events serves the event log (the audit log) to the product: the
// EventService gRPC API (WatchEvents streaming from a cursor, and the
// webhook endpoints' management) and the Hub that tells watchers and the
// webhook dispatcher when new events commit.
//
// What it guarantees: a watcher receives every event after its cursor that
// matches its filter, in sequence order, each once, for as long as it stays
// connected; reconnecting with the last sequence received resumes exactly
// after it. New events reach watchers on every replica moments after
// commit: on PostgreSQL through LISTEN/NOTIFY, elsewhere (and as a
// fallback) by polling the log's newest sequence.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ssogate/ssogate/store"
)

// Log is what the hub and the watchers read.
type Log interface {
	EventsAfter(ctx context.Context, q store.EventsQuery) ([]store.AuditEvent, error)
	LastEventSequence(ctx context.Context) (int64, error)
}

// Listener is a log that announces commits (PostgreSQL).
type Listener interface {
	ListenEvents(ctx context.Context, notify func()) error
}

// Hub follows the newest sequence of the log and wakes whoever waits for
// one beyond what they have seen.
type Hub struct {
	log  Log
	poll time.Duration
	lg   *slog.Logger

	done chan struct{} // closed when Run returns: watchers end (server shutdown)

	mu   sync.Mutex
	last int64
	wake chan struct{} // closed when last grows
	subs []func()
}

// NewHub follows log. poll is the polling period: with a Listener it is
// only the fallback; without one it bounds the delay to new events.
func NewHub(log Log, poll time.Duration, lg *slog.Logger) *Hub {
	return &Hub{log: log, poll: poll, lg: lg, wake: make(chan struct{}), done: make(chan struct{})}
}

// OnEvents registers fn to be called (from the hub's goroutine) each time
// new events are seen. Call before Run.
func (h *Hub) OnEvents(fn func()) { h.subs = append(h.subs, fn) }

// Run follows the log until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	defer close(h.done)
	if l, ok := h.log.(Listener); ok {
		go func() {
			for ctx.Err() == nil {
				err := l.ListenEvents(ctx, func() { h.check(ctx) })
				if err != nil && ctx.Err() == nil {
					h.lg.Warn("event listener failed; polling meanwhile", "error", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
	}
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		h.check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// check reads the newest sequence and wakes waiters if it grew.
func (h *Hub) check(ctx context.Context) {
	last, err := h.log.LastEventSequence(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.lg.Warn("event log check failed", "error", err)
		}
		return
	}
	h.mu.Lock()
	if last <= h.last {
		h.mu.Unlock()
		return
	}
	h.last = last
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
	for _, fn := range h.subs {
		fn()
	}
}

// state returns the newest sequence seen and a channel closed when it
// grows.
func (h *Hub) state() (int64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last, h.wake
}

// Watch sends every event after the cursor that matches q's filters, in
// order, then waits for more, until ctx ends, the hub stops, or send
// fails. q.After is the
// cursor; q.Limit the batch size.
func (h *Hub) Watch(ctx context.Context, q store.EventsQuery, send func(store.AuditEvent) error) error {
	q.Limit = store.MaxPageSize
	for {
		// Taken before reading: an event committed after the read grows the
		// hub's sequence past what it was here, which closes wake.
		_, wake := h.state()
		for {
			batch, err := h.log.EventsAfter(ctx, q)
			if err != nil {
				return err
			}
			for _, e := range batch {
				if err := send(e); err != nil {
					return err
				}
				q.After = e.Sequence
			}
			if len(batch) < q.Limit {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.done:
			return nil
		case <-wake:
		}
	}
}
