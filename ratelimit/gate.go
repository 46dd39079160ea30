package ratelimit

import (
	"context"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"
)

// Gate bounds expensive work whatever arrives: at most Slots requests run
// at once, and the bodies admitted together declare at most Bytes. A
// request is weighed before its body is read (by Content-Length, or the
// route's body bound when none is declared), so a flood waits in the
// kernel's socket buffers, not in the heap. Excess is refused with 503 and
// Retry-After, never queued without bound.
type Gate struct {
	slots *semaphore.Weighted
	bytes *semaphore.Weighted
	max   int64
	wait  time.Duration
}

// NewGate makes a gate of slots concurrent requests and a budget of bytes.
// A request waits at most wait for a slot (it holds its byte share while
// it waits).
func NewGate(slots int, bytes int64, wait time.Duration) *Gate {
	if slots < 1 {
		slots = 1
	}
	return &Gate{slots: semaphore.NewWeighted(int64(slots)), bytes: semaphore.NewWeighted(bytes), max: bytes, wait: wait}
}

// Admit weighs r (bounded by maxBody) and takes a byte share and a slot.
// On success the caller must call release when the work is done.
func (g *Gate) Admit(ctx context.Context, r *http.Request, maxBody int64) (release func(), ok bool) {
	n := r.ContentLength
	if n < 0 || n > maxBody {
		n = maxBody // undeclared or over the bound (the body reader refuses the rest)
	}
	n = max(n, 1)
	n = min(n, g.max)
	if !g.bytes.TryAcquire(n) {
		return nil, false
	}
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	if err := g.slots.Acquire(wctx, 1); err != nil {
		g.bytes.Release(n)
		return nil, false
	}
	return func() { g.slots.Release(1); g.bytes.Release(n) }, true
}

// Middleware runs next through the gate; refused requests get 503 with
// Retry-After: 1 and onRefused (metrics) is called.
func (g *Gate) Middleware(maxBody int64, onRefused func(r *http.Request), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := g.Admit(r.Context(), r, maxBody)
		if !ok {
			if onRefused != nil {
				onRefused(r)
			}
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			// The unread body is not drained: close the connection.
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("The service is busy. Please try again in a moment.\n"))
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}
