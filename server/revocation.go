package server

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// revocations is the in-memory set of revoked sessions that ValidateToken
// consults instead of the store. A poller keeps it current with the store's
// revocation sequence, so a revocation made on any replica is seen here
// within one poll interval; a revocation made here is applied at once.
type revocations struct {
	mu      sync.RWMutex
	revoked map[string]time.Time // session id -> revoked at
	lastSeq int64
}

func newRevocations() *revocations {
	return &revocations{revoked: map[string]time.Time{}}
}

// Revoked reports whether the session was revoked.
func (r *revocations) Revoked(sessionID string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.revoked[sessionID]
	return ok
}

func (r *revocations) add(sessionID string, at time.Time) {
	r.mu.Lock()
	r.revoked[sessionID] = at
	r.mu.Unlock()
}

// sync pulls every revocation after the last one seen.
func (s *Server) syncRevocations(ctx context.Context) error {
	for {
		s.revoked.mu.RLock()
		after := s.revoked.lastSeq
		s.revoked.mu.RUnlock()
		batch, err := s.store.Revocations(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("sync revocations: %w", err)
		}
		s.revoked.mu.Lock()
		for _, rv := range batch {
			s.revoked.revoked[rv.SessionID] = rv.At
			if rv.Seq > s.revoked.lastSeq {
				s.revoked.lastSeq = rv.Seq
			}
		}
		s.revoked.mu.Unlock()
		if len(batch) < 1000 {
			return nil
		}
	}
}

// revocationListener is a store that announces revocations as they commit
// (PostgreSQL LISTEN/NOTIFY), so replicas see them in milliseconds rather
// than at the next poll.
type revocationListener interface {
	ListenRevocations(ctx context.Context, notify func()) error
}

// listenRevocations syncs on every announcement until ctx ends, and
// reconnects after a failure (the poll covers the gap).
func (s *Server) listenRevocations(ctx context.Context) error {
	l, ok := baseStore(s.store).(revocationListener)
	if !ok {
		return nil
	}
	for ctx.Err() == nil {
		err := l.ListenRevocations(ctx, func() {
			if err := s.syncRevocations(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("revocation sync failed", "error", err)
			}
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("revocation listener failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// pollRevocations runs until ctx ends.
func (s *Server) pollRevocations(ctx context.Context, every time.Duration) error {
	return s.periodically(ctx, "revocation poll", every, s.syncRevocations)
}

// forgetBefore drops revocations made before cutoff: no access token that
// predates them is still valid, so the set stays bounded.
func (r *revocations) forgetBefore(cutoff time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.revoked {
		if at.Before(cutoff) {
			delete(r.revoked, id)
		}
	}
}
