package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/store"
)

// storeProbeEvery is how often the store is pinged to decide health; a
// request that meets an unavailable store flips health at once, and the
// next successful ping flips it back.
const storeProbeEvery = 2 * time.Second

// ValidateTokenHealthName is a health entry of its own: ValidateToken
// answers from memory (keys and revocations are held by every replica), so
// it stays SERVING while the store is down, unlike the rest of
// LoginService.
const ValidateTokenHealthName = "ssogate.v1.LoginService/ValidateToken"

// storeDependent are the health entries that go NOT_SERVING while the
// store is unavailable: every RPC of these services except ValidateToken
// reads or writes the store.
var storeDependent = append([]string{""}, serviceNames...)

// storeHealth remembers whether the store answered its last probe.
type storeHealth struct {
	mu    sync.Mutex
	down  bool
	cause error // the driver's error, for the log and the operator's detail page
	since time.Time
}

// unavailableMessage is what a caller learns when the store is down: it
// names the store, never the driver's text.
const unavailableMessage = "the store (database) is unavailable; nothing was changed, retry shortly"

// isUnavailable reports whether err is the store being unavailable. The
// handlers' INTERNAL errors keep their cause (internalError), so the chain
// tells, never the text.
func isUnavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable)
}

// storeFailure maps a store-unavailable error, wherever a handler produced
// it, to UNAVAILABLE with a message that names the store and nothing of
// the driver, and marks the store down for health. Other errors pass.
func (s *Server) storeFailure(ctx context.Context, err error) error {
	if err == nil || !isUnavailable(err) {
		return err
	}
	var ue *store.UnavailableError
	cause := err
	if errors.As(err, &ue) {
		cause = ue.Cause
	}
	s.markStore(ctx, cause)
	return status.Error(codes.Unavailable, unavailableMessage)
}

// markStore records the store's state after a probe or a failed request
// (cause nil: it answered) and moves the health entries on a change.
func (s *Server) markStore(ctx context.Context, cause error) {
	h := &s.storeState
	h.mu.Lock()
	changed := h.down != (cause != nil)
	h.down, h.cause = cause != nil, cause
	if changed {
		h.since = s.now()
	}
	h.mu.Unlock()
	if !changed {
		return
	}
	if cause != nil {
		s.log.ErrorContext(ctx, "store unavailable; store-dependent services NOT_SERVING", "error", cause)
	} else {
		s.log.InfoContext(ctx, "store available again; services SERVING")
	}
	s.applyHealth()
}

// applyHealth sets every health entry from draining and the store state.
func (s *Server) applyHealth() {
	s.storeState.mu.Lock()
	down := s.storeState.down
	s.storeState.mu.Unlock()
	serving := !s.draining.Load()
	set := func(name string, up bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if up {
			st = healthpb.HealthCheckResponse_SERVING
		}
		s.health.SetServingStatus(name, st)
	}
	for _, name := range storeDependent {
		set(name, serving && !down)
	}
	set(ValidateTokenHealthName, serving)
}

// watchStore probes the store until ctx ends.
func (s *Server) watchStore(ctx context.Context) error {
	return s.periodically(ctx, "store probe", storeProbeEvery, func(ctx context.Context) error {
		s.probeStore(ctx)
		return nil
	})
}

// probeStore pings the store once and records the outcome.
func (s *Server) probeStore(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, storeProbeEvery)
	defer cancel()
	err := s.store.Ping(pctx)
	if ctx.Err() != nil {
		return
	}
	var ue *store.UnavailableError
	if errors.As(err, &ue) {
		err = ue.Cause
	}
	s.markStore(ctx, err)
}

// readinessDetail answers what /readyz hides: which check fails and why,
// driver text included. It belongs on the operator listener only, never on
// the public one.
func (s *Server) readinessDetail(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		msg := err.Error()
		if ue := (*store.UnavailableError)(nil); errors.As(err, &ue) {
			msg += " (" + ue.Cause.Error() + ")"
		}
		writeText(w, http.StatusServiceUnavailable, "not ready: "+msg+"\n"+s.pending.detail(time.Now()))
		return
	}
	writeText(w, http.StatusOK, "ready\n"+s.pending.detail(time.Now()))
}
