package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func testSessions(t *testing.T, st store.Store) {
	s := session("s1", "acme", "alice")
	mustCreateSession(t, st, s)
	wantErr(t, "CreateSession duplicate", st.CreateSession(ctx(t), s), store.ErrConflict)
	got, err := st.GetSession(ctx(t), "s1")
	wantErr(t, "GetSession", err, nil)
	equal(t, "GetSession", got, s, eqSession)
	if !got.Live(t0) || got.Live(s.ExpiresAt) {
		t.Fatalf("Live: want live at t0, dead at ExpiresAt")
	}
	_, err = st.GetSession(ctx(t), "nope")
	wantErr(t, "GetSession unknown", err, store.ErrNotFound)

	// FindSessions, for SLO.
	s2 := session("s2", "acme", "alice")
	s2.CreatedAt = t0.Add(time.Minute)
	mustCreateSession(t, st, s2)
	mustCreateSession(t, st, session("s3", "acme", "bob"))
	mustCreateSession(t, st, session("s4", "other", "alice"))
	tests := []struct {
		name, conn, nameID, index string
		want                      string
	}{
		{"every session of a NameID, oldest first", "acme", "alice@idp", "", "[s1 s2]"},
		{"one SessionIndex", "acme", "alice@idp", "idx-s2", "[s2]"},
		{"unknown SessionIndex", "acme", "alice@idp", "idx-s3", "[]"},
		{"other connection", "other", "alice@idp", "", "[s4]"},
		{"unknown NameID", "acme", "carol@idp", "", "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss, err := st.FindSessions(ctx(t), tc.conn, tc.nameID, tc.index)
			wantErr(t, "FindSessions", err, nil)
			if got := sessionIDs(ss); got != tc.want {
				t.Fatalf("FindSessions = %s, want %s", got, tc.want)
			}
		})
	}
	// Revoked sessions are still found (SLO of a revoked session is fine).
	wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), "s1", "test", t0), nil)
	ss, err := st.FindSessions(ctx(t), "acme", "alice@idp", "idx-s1")
	wantErr(t, "FindSessions revoked", err, nil)
	if len(ss) != 1 || ss[0].RevokedAt.IsZero() {
		t.Fatalf("FindSessions revoked = %+v", ss)
	}
}

func sessionIDs(ss []store.Session) string {
	ids := []string{}
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return fmt.Sprint(ids)
}

// revocations reads every revocation after seq.
func revocations(t *testing.T, st store.Store, after int64) []store.Revocation {
	t.Helper()
	rs, err := st.Revocations(ctx(t), after, 0)
	wantErr(t, "Revocations", err, nil)
	return rs
}

func testRevokeSession(t *testing.T, st store.Store) {
	s := session("s1", "acme", "alice")
	mustCreateSession(t, st, s)
	at := t0.Add(time.Hour)
	wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), "s1", "logout", at), nil)
	got, err := st.GetSession(ctx(t), "s1")
	wantErr(t, "GetSession", err, nil)
	want := s
	want.RevokedAt, want.RevokeReason = at, "logout"
	equal(t, "revoked session", got, want, eqSession)
	if got.Live(at) {
		t.Fatal("revoked session is live")
	}

	rs := revocations(t, st, 0)
	if len(rs) != 1 {
		t.Fatalf("Revocations = %+v, want one", rs)
	}
	r := rs[0]
	if r.Seq <= 0 || r.SessionID != "s1" || r.ConnectionID != "acme" || r.Subject != "alice" || r.Reason != "logout" ||
		!r.At.Equal(at) || !r.ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("Revocation = %+v", r)
	}

	// Idempotent: no second entry, the first reason stays.
	wantErr(t, "RevokeSession again", st.RevokeSession(ctx(t), "s1", "admin", at.Add(time.Minute)), nil)
	if rs := revocations(t, st, 0); len(rs) != 1 {
		t.Fatalf("Revocations after second revoke = %+v, want one", rs)
	}
	got, _ = st.GetSession(ctx(t), "s1")
	if got.RevokeReason != "logout" || !got.RevokedAt.Equal(at) {
		t.Fatalf("second revoke changed the session: %+v", got)
	}
	wantErr(t, "RevokeSession unknown", st.RevokeSession(ctx(t), "nope", "x", at), store.ErrNotFound)
}

func testRevokeSubjectAndConnection(t *testing.T, st store.Store) {
	for _, s := range []store.Session{
		session("a1", "acme", "alice"),
		session("a2", "acme", "alice"),
		session("a3", "acme", "alice"), // expired below
		session("a4", "acme", "alice"), // revoked below
		session("b1", "acme", "bob"),
		session("o1", "other", "alice"),
	} {
		if s.ID == "a3" {
			s.ExpiresAt = t0.Add(time.Minute)
		}
		mustCreateSession(t, st, s)
	}
	now := t0.Add(time.Hour)
	wantErr(t, "RevokeSession a4", st.RevokeSession(ctx(t), "a4", "logout", now), nil)
	seq := revocations(t, st, 0)[0].Seq

	ids, err := st.RevokeSubject(ctx(t), "acme", "alice", "offboarding", now)
	wantErr(t, "RevokeSubject", err, nil)
	if fmt.Sprint(ids) != "[a1 a2]" {
		t.Fatalf("RevokeSubject = %v, want [a1 a2] (live sessions of alice at acme only)", ids)
	}
	rs := revocations(t, st, seq)
	if len(rs) != 2 || rs[0].SessionID != "a1" || rs[1].SessionID != "a2" || rs[0].Reason != "offboarding" ||
		rs[0].Subject != "alice" || rs[0].Seq <= seq || rs[1].Seq <= rs[0].Seq {
		t.Fatalf("revocations after RevokeSubject = %+v", rs)
	}
	for id, live := range map[string]bool{"a1": false, "a2": false, "b1": true, "o1": true} {
		s, err := st.GetSession(ctx(t), id)
		wantErr(t, "GetSession", err, nil)
		if s.Live(now) != live {
			t.Fatalf("session %s live = %v, want %v", id, !live, live)
		}
	}
	ids, err = st.RevokeSubject(ctx(t), "acme", "alice", "offboarding", now)
	wantErr(t, "RevokeSubject again", err, nil)
	if len(ids) != 0 {
		t.Fatalf("RevokeSubject again = %v, want none", ids)
	}

	ids, err = st.RevokeConnection(ctx(t), "acme", "connection_disabled", now)
	wantErr(t, "RevokeConnection", err, nil)
	if fmt.Sprint(ids) != "[b1]" {
		t.Fatalf("RevokeConnection = %v, want [b1]", ids)
	}
	ids, err = st.RevokeConnection(ctx(t), "nope", "x", now)
	wantErr(t, "RevokeConnection unknown", err, nil)
	if len(ids) != 0 {
		t.Fatalf("RevokeConnection unknown = %v", ids)
	}
	o1, _ := st.GetSession(ctx(t), "o1")
	if !o1.Live(now) {
		t.Fatal("RevokeConnection(acme) revoked a session of another connection")
	}
}

func testRevocationsPaging(t *testing.T, st store.Store) {
	for i := range 7 {
		id := fmt.Sprintf("s%d", i)
		mustCreateSession(t, st, session(id, "acme", "u"+id))
		wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), id, "r", t0), nil)
	}
	var all []string
	var after int64
	for page := 0; ; page++ {
		rs, err := st.Revocations(ctx(t), after, 3)
		wantErr(t, "Revocations", err, nil)
		if len(rs) > 3 {
			t.Fatalf("Revocations returned %d > limit 3", len(rs))
		}
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			if r.Seq <= after {
				t.Fatalf("Seq %d not after %d", r.Seq, after)
			}
			after = r.Seq
			all = append(all, r.SessionID)
		}
		if page > 5 {
			t.Fatal("Revocations does not end")
		}
	}
	if fmt.Sprint(all) != "[s0 s1 s2 s3 s4 s5 s6]" {
		t.Fatalf("revocations = %v", all)
	}
}

func refresh(value, sessionID string, expires time.Time) store.RefreshToken {
	return store.RefreshToken{Hash: hash(value), SessionID: sessionID, CreatedAt: t0, ExpiresAt: expires}
}

func testRefreshTokens(t *testing.T, st store.Store) {
	s := session("s1", "acme", "alice")
	mustCreateSession(t, st, s)
	day := t0.Add(24 * time.Hour)

	wantErr(t, "PutRefreshToken unknown session", st.PutRefreshToken(ctx(t), refresh("r0", "nope", day)), store.ErrNotFound)
	wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("r1", "s1", day)), nil)
	wantErr(t, "PutRefreshToken duplicate", st.PutRefreshToken(ctx(t), refresh("r1", "s1", day)), store.ErrConflict)

	now := t0.Add(time.Minute)
	// r1 was capped at the session's expiry.
	old, err := st.RotateRefreshToken(ctx(t), hash("r1"), refresh("r2", "ignored", day), now, 0)
	wantErr(t, "RotateRefreshToken", err, nil)
	want := refresh("r1", "s1", s.ExpiresAt)
	want.SpentAt = now
	equal(t, "RotateRefreshToken old", old.Old, want, eqRefresh)
	if old.Retry || !bytes.Equal(old.Next.Hash, hash("r2")) || old.Next.SessionID != "s1" {
		t.Fatalf("RotateRefreshToken next = %+v, want r2 of s1, no retry", old)
	}

	// A next token with a taken hash rolls the rotation back.
	_, err = st.RotateRefreshToken(ctx(t), hash("r2"), refresh("r1", "", day), now, 0)
	wantErr(t, "RotateRefreshToken to a taken hash", err, store.ErrConflict)
	old, err = st.RotateRefreshToken(ctx(t), hash("r2"), refresh("r3", "", t0.Add(time.Hour)), now, 0)
	wantErr(t, "RotateRefreshToken after rollback", err, nil)
	if old.Old.SessionID != "s1" || !old.Old.ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("r2 = %+v: want session s1, capped expiry", old)
	}

	tests := []struct {
		name    string
		setup   func(t *testing.T)
		token   string
		now     time.Time
		wantErr error
	}{
		{"unknown", nil, "nope", now, store.ErrNotFound},
		{"expired token", nil, "r3", t0.Add(time.Hour), store.ErrExpired},
		{"expired session", func(t *testing.T) {
			ss := session("short", "acme", "bob")
			ss.ExpiresAt = t0.Add(2 * time.Minute)
			mustCreateSession(t, st, ss)
			// Asked for a day, the token ends with its session.
			wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("r-short", "short", day)), nil)
		}, "r-short", t0.Add(2 * time.Minute), store.ErrExpired},
		{"revoked session", func(t *testing.T) {
			mustCreateSession(t, st, session("gone", "acme", "carol"))
			wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("r-gone", "gone", day)), nil)
			wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), "gone", "logout", now), nil)
		}, "r-gone", now, store.ErrRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := st.RotateRefreshToken(ctx(t), hash(tc.token), refresh("next-"+tc.name, "", day), tc.now, 0)
			wantErr(t, "RotateRefreshToken", err, tc.wantErr)
			// A failed rotation stores no next token.
			_, err = st.RotateRefreshToken(ctx(t), hash("next-"+tc.name), refresh("next2-"+tc.name, "", day), t0, 0)
			wantErr(t, "RotateRefreshToken of a next token that must not exist", err, store.ErrNotFound)
		})
	}
	// The token of a revoked session stayed unspent: presenting it again is
	// still ErrRevoked, not reuse.
	_, err = st.RotateRefreshToken(ctx(t), hash("r-gone"), refresh("x", "", day), now, 0)
	wantErr(t, "RotateRefreshToken revoked again", err, store.ErrRevoked)
}

func testRefreshTokenReuse(t *testing.T, st store.Store) {
	mustCreateSession(t, st, session("s1", "acme", "alice"))
	day := t0.Add(24 * time.Hour)
	wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("r1", "s1", day)), nil)
	now := t0.Add(time.Minute)
	_, err := st.RotateRefreshToken(ctx(t), hash("r1"), refresh("r2", "", day), now, 0)
	wantErr(t, "RotateRefreshToken", err, nil)

	// r1 is presented again: reuse. The session is revoked in the same
	// transaction and stays revoked.
	reusedTok, err := st.RotateRefreshToken(ctx(t), hash("r1"), refresh("r3", "", day), now.Add(time.Second), 0)
	wantErr(t, "RotateRefreshToken reuse", err, store.ErrReused)
	if reusedTok.Old.SessionID != "s1" {
		t.Fatalf("reuse names session %q, want s1 (for the audit log)", reusedTok.Old.SessionID)
	}
	got, err := st.GetSession(ctx(t), "s1")
	wantErr(t, "GetSession", err, nil)
	if got.RevokedAt.IsZero() || got.RevokeReason != store.ReasonRefreshTokenReuse {
		t.Fatalf("session after reuse = %+v, want revoked with %q", got, store.ReasonRefreshTokenReuse)
	}
	rs := revocations(t, st, 0)
	if len(rs) != 1 || rs[0].SessionID != "s1" || rs[0].Reason != store.ReasonRefreshTokenReuse {
		t.Fatalf("revocations after reuse = %+v", rs)
	}
	// The legitimate successor dies with the session; r3 was never stored.
	_, err = st.RotateRefreshToken(ctx(t), hash("r2"), refresh("r4", "", day), now.Add(2*time.Second), 0)
	wantErr(t, "RotateRefreshToken successor", err, store.ErrRevoked)
	_, err = st.RotateRefreshToken(ctx(t), hash("r3"), refresh("r5", "", day), now.Add(2*time.Second), 0)
	wantErr(t, "RotateRefreshToken of the reuse attempt's next", err, store.ErrNotFound)
	// Reuse again: still ErrReused, no second revocation entry.
	_, err = st.RotateRefreshToken(ctx(t), hash("r1"), refresh("r6", "", day), now.Add(3*time.Second), 0)
	wantErr(t, "RotateRefreshToken reuse again", err, store.ErrReused)
	if rs := revocations(t, st, 0); len(rs) != 1 {
		t.Fatalf("revocations after second reuse = %+v, want one", rs)
	}
}

// sealedRefresh is a next token carrying its sealed value, as the token
// package stores it.
func sealedRefresh(value string, expires time.Time) store.RefreshToken {
	r := refresh(value, "", expires)
	r.Sealed = []byte("sealed:" + value)
	return r
}

// testRefreshTokenRetry: a spent token presented again within the retry
// window, while its successor is unused, gets that successor back and
// nothing is stored; every other reuse still revokes.
func testRefreshTokenRetry(t *testing.T, st store.Store) {
	day := t0.Add(24 * time.Hour)
	const window = 30 * time.Second
	mustCreateSession(t, st, session("s1", "acme", "alice"))
	wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("r1", "s1", day)), nil)
	now := t0.Add(time.Minute)
	first, err := st.RotateRefreshToken(ctx(t), hash("r1"), sealedRefresh("r2", day), now, window)
	wantErr(t, "RotateRefreshToken", err, nil)
	if first.Retry {
		t.Fatal("first rotation reported as a retry")
	}

	// The answer was lost; the client presents r1 again 10 s later.
	again, err := st.RotateRefreshToken(ctx(t), hash("r1"), sealedRefresh("r2-bis", day), now.Add(10*time.Second), window)
	wantErr(t, "RotateRefreshToken retry", err, nil)
	if !again.Retry || !bytes.Equal(again.Next.Hash, hash("r2")) || string(again.Next.Sealed) != "sealed:r2" ||
		again.Next.SessionID != "s1" || !sameTime(again.Next.ExpiresAt, first.Next.ExpiresAt) || !again.Next.SpentAt.IsZero() {
		t.Fatalf("retry = %+v, want r2 (as first stored, sealed value included)", again)
	}
	// Nothing new was minted: r2-bis does not exist.
	_, err = st.RotateRefreshToken(ctx(t), hash("r2-bis"), refresh("x", "", day), now, 0)
	wantErr(t, "RotateRefreshToken of the retry's unused next", err, store.ErrNotFound)
	if s, _ := st.GetSession(ctx(t), "s1"); !s.RevokedAt.IsZero() {
		t.Fatal("a retry revoked the session")
	}

	// Once r2 is used, r1 again is reuse even inside the window.
	_, err = st.RotateRefreshToken(ctx(t), hash("r2"), sealedRefresh("r3", day), now.Add(11*time.Second), window)
	wantErr(t, "RotateRefreshToken r2", err, nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("r1"), sealedRefresh("r4", day), now.Add(12*time.Second), window)
	wantErr(t, "RotateRefreshToken r1 after r2 was used", err, store.ErrReused)
	if s, _ := st.GetSession(ctx(t), "s1"); s.RevokeReason != store.ReasonRefreshTokenReuse {
		t.Fatalf("session after reuse = %+v, want revoked", s)
	}

	// Past the window, a retry is reuse.
	mustCreateSession(t, st, session("s2", "acme", "bob"))
	wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("q1", "s2", day)), nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("q1"), sealedRefresh("q2", day), now, window)
	wantErr(t, "RotateRefreshToken q1", err, nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("q1"), sealedRefresh("q3", day), now.Add(window), window)
	wantErr(t, "RotateRefreshToken q1 at the end of the window", err, store.ErrReused)

	// A revoked session's spent token within the window: not a retry.
	mustCreateSession(t, st, session("s3", "acme", "carol"))
	wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("p1", "s3", day)), nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("p1"), sealedRefresh("p2", day), now, window)
	wantErr(t, "RotateRefreshToken p1", err, nil)
	wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), "s3", "logout", now), nil)
	r, err := st.RotateRefreshToken(ctx(t), hash("p1"), sealedRefresh("p3", day), now.Add(time.Second), window)
	if r.Retry || err == nil {
		t.Fatalf("retry on a revoked session = %+v, %v; want a refusal", r, err)
	}

	// Window 0: the strict behaviour.
	mustCreateSession(t, st, session("s4", "acme", "dave"))
	wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh("o1", "s4", day)), nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("o1"), sealedRefresh("o2", day), now, 0)
	wantErr(t, "RotateRefreshToken o1", err, nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("o1"), sealedRefresh("o3", day), now, 0)
	wantErr(t, "RotateRefreshToken o1 without a window", err, store.ErrReused)
}
