package server

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/ssogate/ssogate/ratelimit"
)

// refusalWindow is how long identical unauthenticated events of one client
// are folded into one count.
const (
	refusalWindow  = time.Minute
	maxRefusalKeys = 10_000
)

// refusalLog bounds what unauthenticated browser traffic writes to the
// audit log: the first event of a kind (type, reason, connection, client)
// in a minute is written at once, in full; the rest of that minute are
// counted and written as one event carrying the count. The counts of the
// rows sum to the events seen. At most maxRefusalKeys kinds are held; past
// that, clients are folded into one "other" client.
type refusalLog struct {
	s       *Server
	mu      sync.Mutex
	pending map[refusalKey]*refusalCount
}

type refusalKey struct{ typ, reason, connectionID, client string }

type refusalCount struct {
	start      time.Time
	suppressed int
	event      auditEvent
}

func newRefusalLog(s *Server) *refusalLog {
	return &refusalLog{s: s, pending: map[refusalKey]*refusalCount{}}
}

// audit records e for the browser request in ctx, aggregated; an event
// without a browser client (a gRPC call, authenticated) is written as is.
func (l *refusalLog) audit(ctx context.Context, e auditEvent) {
	ip := clientAddr(ctx)
	if !ip.IsValid() {
		l.s.audit(ctx, e)
		return
	}
	now := l.s.now()
	k := refusalKey{typ: e.Type, reason: string(e.Reason), connectionID: e.ConnectionID, client: ratelimit.ClientKey(ip)}
	l.mu.Lock()
	if _, ok := l.pending[k]; !ok && len(l.pending) >= maxRefusalKeys {
		k.client = "other"
	}
	var expired *refusalCount
	c, ok := l.pending[k]
	if ok && now.Sub(c.start) < refusalWindow {
		c.suppressed++
		l.mu.Unlock()
		if e.Reason != "" {
			noteReason(ctx, string(e.Reason))
		}
		return
	}
	if ok {
		expired = c
	}
	l.pending[k] = &refusalCount{start: now, event: e}
	l.mu.Unlock()
	if expired != nil {
		l.writeSummary(context.WithoutCancel(ctx), k, expired)
	}
	e.Detail = withDetail(e.Detail, map[string]any{"client": k.client, "count": 1})
	l.s.audit(ctx, e)
}

func withDetail(d map[string]any, extra map[string]any) map[string]any {
	out := make(map[string]any, len(d)+len(extra))
	maps.Copy(out, d)
	maps.Copy(out, extra)
	return out
}

// flush writes the counts of windows that have ended (all of them when
// all is set: at shutdown).
func (l *refusalLog) flush(ctx context.Context, all bool) {
	now := l.s.now()
	done := map[refusalKey]*refusalCount{}
	l.mu.Lock()
	for k, c := range l.pending {
		if all || now.Sub(c.start) >= refusalWindow {
			done[k] = c
			delete(l.pending, k)
		}
	}
	l.mu.Unlock()
	for k, c := range done {
		l.writeSummary(ctx, k, c)
	}
}

func (l *refusalLog) writeSummary(ctx context.Context, k refusalKey, c *refusalCount) {
	if c.suppressed == 0 {
		return
	}
	e := c.event
	e.Message = fmt.Sprintf("%d more like this from client %s within %s of the first (%s); the first: %s",
		c.suppressed, k.client, refusalWindow, c.start.UTC().Format(time.RFC3339), e.Message)
	e.Detail = withDetail(e.Detail, map[string]any{"client": k.client, "count": c.suppressed, "aggregated": true,
		"window_start": c.start.UTC().Format(time.RFC3339)})
	delete(e.Detail, "request_id")
	l.s.audit(ctx, e)
}

// run flushes ended windows until ctx ends, then flushes the rest.
func (l *refusalLog) run(ctx context.Context) error {
	t := time.NewTicker(refusalWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush(context.WithoutCancel(ctx), true)
			return nil
		case <-t.C:
			l.flush(ctx, false)
		}
	}
}
