package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// seqs lists the events' sequences and types, for failure messages.
func seqs(es []store.AuditEvent) string {
	s := "["
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d:%s", e.Sequence, e.Type)
	}
	return s + "]"
}

func eventsAfter(t *testing.T, st store.Store, q store.EventsQuery) []store.AuditEvent {
	t.Helper()
	es, err := st.EventsAfter(ctx(t), q)
	wantErr(t, "EventsAfter", err, nil)
	return es
}

func testEventLog(t *testing.T, st store.Store) {
	last, err := st.LastEventSequence(ctx(t))
	wantErr(t, "LastEventSequence empty", err, nil)
	if last != 0 {
		t.Fatalf("LastEventSequence of an empty log = %d", last)
	}
	for i, e := range []store.AuditEvent{
		{Type: "login.succeeded", ConnectionID: "acme"},
		{Type: "login.failed", ConnectionID: "acme"},
		{Type: "login.succeeded", ConnectionID: "other"},
		{Type: "session.revoked", ConnectionID: "acme"},
	} {
		e.Time = t0.Add(time.Duration(i) * time.Second)
		wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), e), nil)
	}
	tests := []struct {
		name string
		q    store.EventsQuery
		want string
	}{
		{"everything, oldest first", store.EventsQuery{}, "[1:login.succeeded 2:login.failed 3:login.succeeded 4:session.revoked]"},
		{"after a cursor", store.EventsQuery{After: 2}, "[3:login.succeeded 4:session.revoked]"},
		{"after the end", store.EventsQuery{After: 4}, "[]"},
		{"limit", store.EventsQuery{After: 1, Limit: 2}, "[2:login.failed 3:login.succeeded]"},
		{"types", store.EventsQuery{Types: []string{"login.failed", "session.revoked"}}, "[2:login.failed 4:session.revoked]"},
		{"connection", store.EventsQuery{ConnectionID: "acme", After: 1}, "[2:login.failed 4:session.revoked]"},
		{"newest of a connection", store.EventsQuery{ConnectionID: "acme", Newest: true, Limit: 2}, "[4:session.revoked 2:login.failed]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqs(eventsAfter(t, st, tc.q)); got != tc.want {
				t.Fatalf("EventsAfter(%+v) = %s, want %s", tc.q, got, tc.want)
			}
		})
	}
	last, err = st.LastEventSequence(ctx(t))
	wantErr(t, "LastEventSequence", err, nil)
	if last != 4 {
		t.Fatalf("LastEventSequence = %d, want 4", last)
	}
	// A refused append takes no number: the next one is 5.
	first := eventsAfter(t, st, store.EventsQuery{Limit: 1})[0]
	wantErr(t, "AppendAudit duplicate", st.AppendAudit(ctx(t), store.AuditEvent{ID: first.ID, Type: "dup"}), store.ErrConflict)
	wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), store.AuditEvent{Type: "after.refusal"}), nil)
	if got := seqs(eventsAfter(t, st, store.EventsQuery{After: 4})); got != "[5:after.refusal]" {
		t.Fatalf("after a refused append: %s, want [5:after.refusal]", got)
	}
	// Pruning keeps the numbering.
	_, err = st.PruneAudit(ctx(t), t0.Add(time.Hour*24*365*10))
	wantErr(t, "PruneAudit", err, nil)
	wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), store.AuditEvent{Type: "after.prune"}), nil)
	if got := seqs(eventsAfter(t, st, store.EventsQuery{})); got != "[6:after.prune]" {
		t.Fatalf("after pruning: %s, want [6:after.prune]", got)
	}
}

// testOutbox checks that every write method appends the events its context
// carries with its change, and none when the change fails.
func testOutbox(t *testing.T, st store.Store) {
	wantErr(t, "CreateConnection", st.CreateConnection(ctx(t), connection("acme", "t1")), nil)
	mustCreateSession(t, st, session("s0", "acme", "zed"))
	writes := []struct {
		name string
		ok   func(ev func() context.Context) error
		fail func(ev func() context.Context) error
	}{
		{"CreateSession",
			func(ev func() context.Context) error { return st.CreateSession(ev(), session("s1", "acme", "alice")) },
			func(ev func() context.Context) error { return st.CreateSession(ev(), session("s1", "acme", "alice")) }},
		{"PutCode",
			func(ev func() context.Context) error {
				return st.PutCode(ev(), store.Code{Hash: hash("c1"), SessionID: "s1", ExpiresAt: t0.Add(time.Minute)})
			},
			func(ev func() context.Context) error {
				return st.PutCode(ev(), store.Code{Hash: hash("c1"), SessionID: "s1", ExpiresAt: t0.Add(time.Minute)})
			}},
		{"ConsumeCode",
			func(ev func() context.Context) error { _, err := st.ConsumeCode(ev(), hash("c1"), t0); return err },
			func(ev func() context.Context) error { _, err := st.ConsumeCode(ev(), hash("c1"), t0); return err }},
		{"RecordAssertion",
			func(ev func() context.Context) error {
				return st.RecordAssertion(ev(), "acme", "a1", t0.Add(time.Hour))
			},
			func(ev func() context.Context) error {
				return st.RecordAssertion(ev(), "acme", "a1", t0.Add(time.Hour))
			}},
		{"RevokeSession",
			func(ev func() context.Context) error { return st.RevokeSession(ev(), "s1", "test", t0) },
			func(ev func() context.Context) error { return st.RevokeSession(ev(), "nope", "test", t0) }},
		{"RevokeSubject",
			func(ev func() context.Context) error {
				_, err := st.RevokeSubject(ev(), "acme", "zed", "test", t0)
				return err
			},
			nil},
		{"CreateConnection",
			func(ev func() context.Context) error { return st.CreateConnection(ev(), connection("beta", "t2")) },
			func(ev func() context.Context) error { return st.CreateConnection(ev(), connection("beta", "t2")) }},
		{"UpdateConnection",
			func(ev func() context.Context) error {
				_, err := st.UpdateConnection(ev(), connection("beta", "t3"), 1)
				return err
			},
			func(ev func() context.Context) error {
				_, err := st.UpdateConnection(ev(), connection("beta", "t3"), 1)
				return err
			}},
		{"DeleteConnection",
			func(ev func() context.Context) error { return st.DeleteConnection(ev(), "beta") },
			func(ev func() context.Context) error { return st.DeleteConnection(ev(), "beta") }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			before, err := st.LastEventSequence(ctx(t))
			wantErr(t, "LastEventSequence", err, nil)
			typ := "test." + w.name
			ev := func() context.Context {
				return store.WithEvents(ctx(t), store.AuditEvent{Type: typ, ConnectionID: "acme"},
					store.AuditEvent{Type: typ + ".second"})
			}
			if err := w.ok(ev); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			got := seqs(eventsAfter(t, st, store.EventsQuery{After: before}))
			want := fmt.Sprintf("[%d:%s %d:%s.second]", before+1, typ, before+2, typ)
			if got != want {
				t.Fatalf("after %s: events %s, want %s", w.name, got, want)
			}
			if w.fail == nil {
				return
			}
			if err := w.fail(ev); err == nil {
				t.Fatalf("%s again: no error; the test needs a failing write", w.name)
			}
			if got := seqs(eventsAfter(t, st, store.EventsQuery{After: before + 2})); got != "[]" {
				t.Fatalf("a failed %s appended events %s", w.name, got)
			}
		})
	}

	// Once: a second write with the same context does not repeat them.
	c := store.WithEvents(ctx(t), store.AuditEvent{Type: "once"})
	mustCreateSessionCtx(t, st, c, session("s2", "acme", "bob"))
	mustCreateSessionCtx(t, st, c, session("s3", "acme", "bob"))
	if es := eventsAfter(t, st, store.EventsQuery{Types: []string{"once"}}); len(es) != 1 {
		t.Fatalf("events appended by two writes with one context: %s, want one", seqs(es))
	}
	// A read does not consume them.
	c = store.WithEvents(ctx(t), store.AuditEvent{Type: "after.read"})
	if _, err := st.GetSession(c, "s2"); err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	wantErr(t, "RevokeSession", st.RevokeSession(c, "s2", "test", t0), nil)
	if es := eventsAfter(t, st, store.EventsQuery{Types: []string{"after.read"}}); len(es) != 1 {
		t.Fatalf("events after a read then a write: %s, want one", seqs(es))
	}
}

func mustCreateSessionCtx(t *testing.T, st store.Store, c context.Context, s store.Session) {
	t.Helper()
	if err := st.CreateSession(c, s); err != nil {
		t.Fatalf("CreateSession(%q): %v", s.ID, err)
	}
}

// raceEventSequence appends from many writers on both stores while a
// follower reads forward from its cursor: every batch it sees must continue
// its cursor without a gap (commit order is sequence order), and the
// follower ends with every event exactly once.
func raceEventSequence(t *testing.T, a, b store.Store) {
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			for j := range each {
				// Half of them with a change, as the outbox writes them.
				var err error
				if j%2 == 0 {
					err = st.AppendAudit(ctx(t), store.AuditEvent{Type: "race"})
				} else {
					err = st.CreateSession(store.WithEvents(ctx(t), store.AuditEvent{Type: "race"}),
						session(fmt.Sprintf("s-%d-%d", i, j), "acme", "u"))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var cursor int64
	seen := 0
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		es, err := b.EventsAfter(ctx(t), store.EventsQuery{After: cursor, Limit: 7})
		if err != nil {
			t.Fatalf("EventsAfter: %v", err)
		}
		for _, e := range es {
			if e.Sequence != cursor+1 {
				t.Fatalf("follower at %d saw %d next: a gap (out-of-order commit)", cursor, e.Sequence)
			}
			cursor = e.Sequence
			seen++
		}
		if finished && len(es) == 0 {
			break
		}
	}
	close(errs)
	if err := errors.Join(func() (all []error) {
		for e := range errs {
			all = append(all, e)
		}
		return
	}()...); err != nil {
		t.Fatalf("writers: %v", err)
	}
	if seen != writers*each {
		t.Fatalf("follower saw %d events, want %d", seen, writers*each)
	}
}
