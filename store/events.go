package store

import (
	"context"
	"sync"
)

// The outbox: an audit event is written in the same transaction as the
// change it records. A caller attaches the events to the context of the one
// store write that makes the change:
//
//	err := st.CreateSession(store.WithEvents(ctx, loginSucceeded), sess)
//
// Every write method of a Store appends the events carried by its context
// in its own transaction, after its change and before its commit: if the
// write fails, no event is written; if the event cannot be written, the
// change is rolled back. The events are appended once: a later write with
// the same context does not repeat them. Reads ignore them. AppendAudit is
// the write for an event that records no other change (a refused login).

type outboxKey struct{}

// outbox holds the events of one change until a write commits them.
type outbox struct {
	mu     sync.Mutex
	events []AuditEvent
	done   bool
}

// WithEvents returns a context whose next store write also appends events,
// atomically with its change (see the outbox comment above).
func WithEvents(ctx context.Context, events ...AuditEvent) context.Context {
	if len(events) == 0 {
		return ctx
	}
	return context.WithValue(ctx, outboxKey{}, &outbox{events: events})
}

// PendingEvents is for backends: the events ctx carries that no write has
// committed yet, and a func to call once the transaction that appended them
// has committed. It returns nil events when there are none.
func PendingEvents(ctx context.Context) (events []AuditEvent, committed func()) {
	o, _ := ctx.Value(outboxKey{}).(*outbox)
	if o == nil {
		return nil, func() {}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return nil, func() {}
	}
	return append([]AuditEvent(nil), o.events...), func() {
		o.mu.Lock()
		o.done = true
		o.mu.Unlock()
	}
}

// EventsQuery reads the event log forward from a cursor. Empty fields do
// not filter.
type EventsQuery struct {
	// After is the cursor: only events with a larger Sequence are returned.
	After        int64
	Types        []string
	ConnectionID string
	// Limit <= 0 means DefaultPageSize; capped at MaxPageSize.
	Limit int
	// Newest returns the newest Limit matching events, newest first,
	// instead of the oldest after the cursor (a status page's "recent").
	Newest bool
}
