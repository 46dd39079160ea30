package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// completion is a whole login: the assertion, the pending request, a
// session and its code.
func completion(n string) store.LoginCompletion {
	s := session("s-"+n, "acme", "alice")
	c := code(n)
	c.SessionID = s.ID
	return store.LoginCompletion{ConnectionID: "acme", AssertionID: "_a-" + n, AssertionExpiresAt: t0.Add(time.Hour),
		RequestID: "r-" + n, Now: t0, Session: &s, Code: &c}
}

// wantPart fails unless err is a *store.CompletionError of part wrapping
// want.
func wantPart(t *testing.T, err error, part string, want error) {
	t.Helper()
	var ce *store.CompletionError
	if !errors.As(err, &ce) || ce.Part != part || !errors.Is(err, want) {
		t.Fatalf("CompleteLogin: error = %v, want the %s part failing with %v", err, part, want)
	}
}

func lastSeq(t *testing.T, st store.Store) int64 {
	t.Helper()
	n, err := st.LastEventSequence(ctx(t))
	wantErr(t, "LastEventSequence", err, nil)
	return n
}

// leftNothing checks that a failed CompleteLogin of l wrote none of its
// parts: the request is unconsumed, the assertion unrecorded, no session,
// no code, no event after seq. Parts listed in kept existed before and are
// not checked.
func leftNothing(t *testing.T, st store.Store, l store.LoginCompletion, seq int64, kept ...string) {
	t.Helper()
	keep := map[string]bool{}
	for _, k := range kept {
		keep[k] = true
	}
	if !keep[store.PartRequest] {
		p, err := st.GetPendingRequest(ctx(t), l.ConnectionID, l.RequestID)
		if err == nil && !p.ConsumedAt.IsZero() {
			t.Errorf("the failed login consumed its pending request")
		}
	}
	if !keep[store.PartSession] {
		if _, err := st.GetSession(ctx(t), l.Session.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the failed login left its session: %v", err)
		}
	}
	if !keep[store.PartCode] {
		if _, err := st.ConsumeCode(ctx(t), l.Code.Hash, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the failed login left its code: %v", err)
		}
	}
	if got := seqs(eventsAfter(t, st, store.EventsQuery{After: seq})); got != "[]" {
		t.Errorf("the failed login appended events %s", got)
	}
	if !keep[store.PartAssertion] {
		// Recording it now succeeds only if the failed login did not.
		if err := st.RecordAssertion(ctx(t), l.ConnectionID, l.AssertionID, l.AssertionExpiresAt); err != nil {
			t.Errorf("the failed login recorded its assertion: %v", err)
		}
	}
}

func testCompleteLogin(t *testing.T, st store.Store) {
	ev := func() []store.AuditEvent {
		return []store.AuditEvent{{Type: "login.succeeded", ConnectionID: "acme"}, {Type: "login.second"}}
	}
	t.Run("Whole", func(t *testing.T) {
		l := completion("ok")
		wantErr(t, "PutPendingRequest", st.PutPendingRequest(ctx(t), pending("acme", l.RequestID)), nil)
		seq := lastSeq(t, st)
		got, err := st.CompleteLogin(store.WithEvents(ctx(t), ev()...), l)
		wantErr(t, "CompleteLogin", err, nil)
		want := pending("acme", l.RequestID)
		want.ConsumedAt = t0
		equal(t, "consumed request", got, want, eqPending)
		s, err := st.GetSession(ctx(t), l.Session.ID)
		wantErr(t, "GetSession", err, nil)
		equal(t, "session", s, *l.Session, eqSession)
		c, err := st.ConsumeCode(ctx(t), l.Code.Hash, t0)
		wantErr(t, "ConsumeCode", err, nil)
		equal(t, "code", c, *l.Code, eqCode)
		wantErr(t, "RecordAssertion after", st.RecordAssertion(ctx(t), "acme", l.AssertionID, t0.Add(time.Hour)), store.ErrConsumed)
		_, err = st.ConsumePendingRequest(ctx(t), "acme", l.RequestID, t0)
		wantErr(t, "ConsumePendingRequest after", err, store.ErrConsumed)
		if got, want := seqs(eventsAfter(t, st, store.EventsQuery{After: seq})),
			fmt.Sprintf("[%d:login.succeeded %d:login.second]", seq+1, seq+2); got != want {
			t.Fatalf("events %s, want %s", got, want)
		}
	})
	t.Run("PartsOptional", func(t *testing.T) {
		// A login resumed after the consent page: its assertion was used
		// up already, there is no request.
		l := completion("resumed")
		l.AssertionID, l.RequestID = "", ""
		got, err := st.CompleteLogin(ctx(t), l)
		wantErr(t, "CompleteLogin session and code", err, nil)
		equal(t, "no request", got, store.PendingRequest{}, eqPending)
		_, err = st.GetSession(ctx(t), l.Session.ID)
		wantErr(t, "GetSession", err, nil)
		// A refused login: only its assertion and request are used up.
		l = completion("refused")
		l.Session, l.Code = nil, nil
		wantErr(t, "PutPendingRequest", st.PutPendingRequest(ctx(t), pending("acme", l.RequestID)), nil)
		_, err = st.CompleteLogin(ctx(t), l)
		wantErr(t, "CompleteLogin use up", err, nil)
		_, err = st.CompleteLogin(ctx(t), l)
		wantPart(t, err, store.PartAssertion, store.ErrConsumed)
	})

	// Each failure in the middle leaves nothing behind.
	failures := []struct {
		name  string
		setup func(t *testing.T, l *store.LoginCompletion)
		part  string
		want  error
	}{
		{"AssertionReplayed", func(t *testing.T, l *store.LoginCompletion) {
			wantErr(t, "RecordAssertion", st.RecordAssertion(ctx(t), "acme", l.AssertionID, t0.Add(time.Hour)), nil)
		}, store.PartAssertion, store.ErrConsumed},
		{"RequestUsed", func(t *testing.T, l *store.LoginCompletion) {
			_, err := st.ConsumePendingRequest(ctx(t), "acme", l.RequestID, t0)
			wantErr(t, "ConsumePendingRequest", err, nil)
		}, store.PartRequest, store.ErrConsumed},
		{"RequestExpired", func(t *testing.T, l *store.LoginCompletion) {
			l.Now = t0.Add(10 * time.Minute)
		}, store.PartRequest, store.ErrExpired},
		{"RequestUnknown", func(t *testing.T, l *store.LoginCompletion) {
			l.RequestID = "r-nobody-sent"
		}, store.PartRequest, store.ErrNotFound},
		{"SessionConflict", func(t *testing.T, l *store.LoginCompletion) {
			mustCreateSession(t, st, session(l.Session.ID, "acme", "mallory"))
		}, store.PartSession, store.ErrConflict},
		{"CodeConflict", func(t *testing.T, l *store.LoginCompletion) {
			wantErr(t, "PutCode", st.PutCode(ctx(t), *l.Code), nil)
		}, store.PartCode, store.ErrConflict},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			l := completion(f.name)
			wantErr(t, "PutPendingRequest", st.PutPendingRequest(ctx(t), pending("acme", l.RequestID)), nil)
			f.setup(t, &l)
			seq := lastSeq(t, st)
			_, err := st.CompleteLogin(store.WithEvents(ctx(t), ev()...), l)
			wantPart(t, err, f.part, f.want)
			leftNothing(t, st, l, seq, f.part)
			if f.part == store.PartSession {
				s, err := st.GetSession(ctx(t), l.Session.ID)
				if err != nil || s.Subject != "mallory" {
					t.Fatalf("the session that was there: %+v, %v", s, err)
				}
			}
		})
	}
}

func testRedeemCode(t *testing.T, st store.Store) {
	s := session("s1", "acme", "alice")
	mustCreateSession(t, st, s)
	put := func(v string, sessionID string) {
		t.Helper()
		c := code(v)
		c.SessionID = sessionID
		wantErr(t, "PutCode", st.PutCode(ctx(t), c), nil)
	}
	rt := func(v string) store.RefreshToken {
		return store.RefreshToken{Hash: hash(v), CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	}
	put("c1", "s1")
	seq := lastSeq(t, st)
	red, err := st.RedeemCode(store.WithEvents(ctx(t), store.AuditEvent{Type: "code.redeemed"}), hash("c1"), t0, rt("rt1"))
	wantErr(t, "RedeemCode", err, nil)
	want := code("c1")
	want.SessionID = "s1"
	equal(t, "code", red.Code, want, eqCode)
	equal(t, "session", red.Session, s, eqSession)
	// Capped at the session's end, like PutRefreshToken.
	equal(t, "refresh token", red.Refresh, store.RefreshToken{Hash: hash("rt1"), SessionID: "s1", CreatedAt: t0, ExpiresAt: s.ExpiresAt}, eqRefresh)
	if got := seqs(eventsAfter(t, st, store.EventsQuery{After: seq})); got != fmt.Sprintf("[%d:code.redeemed]", seq+1) {
		t.Fatalf("events %s", got)
	}
	// The token is stored: it rotates.
	_, err = st.RotateRefreshToken(ctx(t), hash("rt1"), rt("rt1-next"), t0, 0)
	wantErr(t, "RotateRefreshToken of the redeemed token", err, nil)

	_, err = st.RedeemCode(ctx(t), hash("c1"), t0, rt("rt2"))
	wantErr(t, "RedeemCode twice", err, store.ErrConsumed)
	_, err = st.RedeemCode(ctx(t), hash("nope"), t0, rt("rt2"))
	wantErr(t, "RedeemCode unknown", err, store.ErrNotFound)
	put("c-late", "s1")
	_, err = st.RedeemCode(ctx(t), hash("c-late"), t0.Add(time.Minute), rt("rt2"))
	wantErr(t, "RedeemCode expired", err, store.ErrExpired)
	// None of these stored its refresh token.
	_, err = st.RotateRefreshToken(ctx(t), hash("rt2"), rt("rt2-next"), t0, 0)
	wantErr(t, "RotateRefreshToken of a refused redemption's token", err, store.ErrNotFound)

	// A revoked session: the code is spent, no token is stored.
	mustCreateSession(t, st, session("s2", "acme", "bob"))
	put("c2", "s2")
	wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), "s2", "test", t0), nil)
	red, err = st.RedeemCode(ctx(t), hash("c2"), t0, rt("rt3"))
	wantErr(t, "RedeemCode of a revoked session", err, nil)
	if red.Session.RevokedAt.IsZero() || len(red.Refresh.Hash) != 0 {
		t.Fatalf("redeemed for a revoked session: %+v", red)
	}
	_, err = st.RotateRefreshToken(ctx(t), hash("rt3"), rt("rt3-next"), t0, 0)
	wantErr(t, "RotateRefreshToken for a revoked session", err, store.ErrNotFound)

	// A failure in the middle (the token's hash is taken) leaves the code
	// unspent and no event.
	put("c3", "s1")
	seq = lastSeq(t, st)
	_, err = st.RedeemCode(store.WithEvents(ctx(t), store.AuditEvent{Type: "code.redeemed"}), hash("c3"), t0, rt("rt1"))
	wantErr(t, "RedeemCode with a taken token hash", err, store.ErrConflict)
	if got := seqs(eventsAfter(t, st, store.EventsQuery{After: seq})); got != "[]" {
		t.Fatalf("a failed redemption appended events %s", got)
	}
	_, err = st.ConsumeCode(ctx(t), hash("c3"), t0)
	wantErr(t, "ConsumeCode after a failed redemption", err, nil)
}

func testConnectionChanges(t *testing.T, st store.Store) {
	n := func() int64 {
		t.Helper()
		v, err := st.ConnectionChanges(ctx(t))
		wantErr(t, "ConnectionChanges", err, nil)
		return v
	}
	last := n()
	moved := func(what string, want bool) {
		t.Helper()
		now := n()
		if (now != last) != want {
			t.Fatalf("after %s: ConnectionChanges %d -> %d, want moved=%v", what, last, now, want)
		}
		last = now
	}
	moved("nothing", false)
	wantErr(t, "CreateConnection", st.CreateConnection(ctx(t), connection("acme", "t1", "acme.com")), nil)
	moved("CreateConnection", true)
	mustCreateSession(t, st, session("s1", "acme", "alice"))
	moved("CreateSession", false)
	_, err := st.UpdateConnection(ctx(t), connection("acme", "t2"), 1)
	wantErr(t, "UpdateConnection", err, nil)
	moved("UpdateConnection", true)
	_, err = st.UpdateConnection(ctx(t), connection("acme", "t3"), 1)
	wantErr(t, "UpdateConnection stale", err, store.ErrConflict)
	moved("a refused UpdateConnection", false)
	wantErr(t, "CreateConnection duplicate", st.CreateConnection(ctx(t), connection("acme", "t1")), store.ErrConflict)
	moved("a refused CreateConnection", false)
	wantErr(t, "DeleteConnection", st.DeleteConnection(ctx(t), "acme"), nil)
	moved("DeleteConnection", true)
	wantErr(t, "DeleteConnection again", st.DeleteConnection(ctx(t), "acme"), store.ErrNotFound)
	moved("a refused DeleteConnection", false)
}

// raceCompleteLogin: one response posted to many replicas at once (same
// assertion, same request): one login; the others are replays, and
// nothing of theirs is stored.
func raceCompleteLogin(t *testing.T, a, b store.Store) {
	wantErr(t, "PutPendingRequest", a.PutPendingRequest(ctx(t), pending("acme", "hot")), nil)
	got := race(t, a, b, func(i int, st store.Store) error {
		l := completion(fmt.Sprint(i))
		l.AssertionID, l.RequestID = "_hot", "hot"
		_, err := st.CompleteLogin(ctx(t), l)
		if err != nil {
			var ce *store.CompletionError
			if !errors.As(err, &ce) || ce.Part != store.PartAssertion {
				return fmt.Errorf("racer %d: %w (want the assertion part to lose)", i, err)
			}
		}
		return err
	})
	wantOutcome(t, got, "consumed")
	wantOneLogin(t, a)

	// Two different responses to one request (an IdP that answered
	// twice): one login; the others find the request used.
	wantErr(t, "PutPendingRequest", a.PutPendingRequest(ctx(t), pending("acme", "hot2")), nil)
	got = race(t, a, b, func(i int, st store.Store) error {
		l := completion(fmt.Sprint("second-", i))
		l.RequestID = "hot2"
		_, err := st.CompleteLogin(ctx(t), l)
		if err != nil {
			var ce *store.CompletionError
			if !errors.As(err, &ce) || ce.Part != store.PartRequest {
				return fmt.Errorf("racer %d: %w (want the request part to lose)", i, err)
			}
		}
		return err
	})
	wantOutcome(t, got, "consumed")
}

// wantOneLogin: exactly one of the racers' sessions exists.
func wantOneLogin(t *testing.T, st store.Store) {
	t.Helper()
	found := 0
	for i := range racers {
		if _, err := st.GetSession(ctx(t), "s-"+fmt.Sprint(i)); err == nil {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("%d sessions after the race, want 1", found)
	}
}

// raceRedeemCode: one code redeemed at many replicas at once: one gets its
// tokens, the others ErrConsumed, and only the winner's refresh token is
// stored.
func raceRedeemCode(t *testing.T, a, b store.Store) {
	mustCreateSession(t, a, session("s1", "acme", "alice"))
	c := code("hot")
	c.SessionID = "s1"
	wantErr(t, "PutCode", a.PutCode(ctx(t), c), nil)
	var winner atomic.Int64
	winner.Store(-1)
	got := race(t, a, b, func(i int, st store.Store) error {
		_, err := st.RedeemCode(ctx(t), hash("hot"), t0, store.RefreshToken{Hash: hash(fmt.Sprint("rt-", i)), ExpiresAt: t0.Add(time.Hour)})
		if err == nil {
			winner.Store(int64(i))
		}
		return err
	})
	wantOutcome(t, got, "consumed")
	for i := range racers {
		_, err := a.RotateRefreshToken(ctx(t), hash(fmt.Sprint("rt-", i)), store.RefreshToken{Hash: hash(fmt.Sprint("next-", i)), ExpiresAt: t0.Add(time.Hour)}, t0, 0)
		switch {
		case int64(i) == winner.Load() && err != nil:
			t.Fatalf("the winner's refresh token: %v", err)
		case int64(i) != winner.Load() && !errors.Is(err, store.ErrNotFound):
			t.Fatalf("racer %d lost, yet its refresh token: %v", i, err)
		}
	}
}
