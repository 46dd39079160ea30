package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// A connection declared in the config file whose IdP metadata URL cannot be
// reached at first start (and of which no earlier copy is stored) does not
// stop the service: it waits here, unserved, and is retried with backoff
// until its IdP answers. The others start. Each replica retries on its own;
// whichever stores it first wins, the rest find the stored copy.

const (
	pendingRetryMin   = time.Second
	pendingRetryMax   = 5 * time.Minute
	pendingCheckEvery = 250 * time.Millisecond
	auditConnPending  = "connection.pending"
)

// errMetadataUnreachable marks a seeding failure that waiting may cure.
var errMetadataUnreachable = errors.New("IdP metadata unreachable")

type pendingSeed struct {
	index    int
	decl     map[string]any
	tenantID string
	attempts int
	next     time.Time
	err      error
}

// pendingConnections are the declared connections waiting for their IdP.
type pendingConnections struct {
	mu sync.Mutex
	m  map[string]*pendingSeed
}

// pendingError is what a lookup of a pending connection returns.
type pendingError struct {
	id  string
	err error
}

func (e *pendingError) Error() string {
	return fmt.Sprintf("connection %q is pending: its IdP metadata could not be fetched yet (%v); ssogate retries with backoff", e.id, e.err)
}

func (e *pendingError) Unwrap() error { return errConnectionNotFound }

// lookup returns a *pendingError when id is pending, else nil.
func (p *pendingConnections) lookup(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps, ok := p.m[id]; ok {
		return &pendingError{id: id, err: ps.err}
	}
	return nil
}

// detail describes the pending connections for /readyz, "" when none.
func (p *pendingConnections) detail(now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m) == 0 {
		return ""
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range p.m {
			if !yield(id) {
				return
			}
		}
	})
	var b strings.Builder
	b.WriteString("pending connections (not served until their IdP answers):\n")
	for _, id := range ids {
		ps := p.m[id]
		fmt.Fprintf(&b, "  %s: %v (attempt %d, next retry in %s)\n", id, ps.err, ps.attempts, ps.next.Sub(now).Round(time.Second))
	}
	return b.String()
}

// addPending records a declared connection whose IdP is unreachable, and
// says so in the log, the audit log and the metrics.
func (s *Server) addPending(ctx context.Context, index int, decl map[string]any, id, tenantID string, err error) {
	s.pending.mu.Lock()
	if s.pending.m == nil {
		s.pending.m = map[string]*pendingSeed{}
	}
	s.pending.m[id] = &pendingSeed{index: index, decl: decl, tenantID: tenantID, attempts: 1, next: time.Now().Add(pendingRetryMin), err: err}
	s.pending.mu.Unlock()
	s.metrics.connPending.WithLabelValues(id).Set(1)
	s.log.Warn("connection pending: IdP metadata unreachable at start; not served, retried with backoff", "connection_id", id, "error", err)
	s.audit(ctx, auditEvent{Type: auditConnPending, ConnectionID: id, TenantID: tenantID,
		Message: "the IdP metadata URL could not be reached at start: " + err.Error() + "; the connection is not served until it answers",
		Detail:  map[string]any{"caller": "config file"}})
}

// retryPending seeds pending connections once their backoff is due, until
// ctx ends.
func (s *Server) retryPending(ctx context.Context) error {
	return s.periodically(ctx, "pending connections", pendingCheckEvery, func(ctx context.Context) error {
		s.retryDuePending(ctx)
		return nil
	})
}

func (s *Server) retryDuePending(ctx context.Context) {
	now := time.Now()
	s.pending.mu.Lock()
	var due []string
	for id, ps := range s.pending.m {
		if !now.Before(ps.next) {
			due = append(due, id)
		}
	}
	s.pending.mu.Unlock()
	for _, id := range due {
		s.pending.mu.Lock()
		ps := s.pending.m[id]
		s.pending.mu.Unlock()
		err := s.seedConnection(ctx, ps.index, ps.decl)
		if ctx.Err() != nil {
			return
		}
		s.pending.mu.Lock()
		if err == nil {
			delete(s.pending.m, id)
		} else {
			ps.attempts++
			ps.err = err
			ps.next = time.Now().Add(min(pendingRetryMin<<min(ps.attempts-1, 20), pendingRetryMax))
		}
		s.pending.mu.Unlock()
		if err == nil {
			s.metrics.connPending.DeleteLabelValues(id)
			s.log.Info("pending connection now served: its IdP answered", "connection_id", id, "attempts", ps.attempts+1)
		} else {
			s.log.Debug("pending connection: IdP still unreachable", "connection_id", id, "attempts", ps.attempts, "error", err)
		}
	}
}
