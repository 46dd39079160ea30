package storetest

import (
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func testSweep(t *testing.T, st store.Store) {
	now := t0.Add(time.Hour)
	old, fresh := now.Add(-time.Second), now.Add(time.Hour)

	// One expired and one live value of every kind Sweep cleans.
	for _, p := range []struct {
		id  string
		exp time.Time
	}{{"old", old}, {"fresh", fresh}} {
		r := pending("acme", p.id)
		r.ExpiresAt = p.exp
		wantErr(t, "PutPendingRequest", st.PutPendingRequest(ctx(t), r), nil)
		wantErr(t, "RecordAssertion", st.RecordAssertion(ctx(t), "acme", p.id, p.exp), nil)
		c := code(p.id)
		c.ExpiresAt = p.exp
		wantErr(t, "PutCode", st.PutCode(ctx(t), c), nil)
		s := session(p.id, "acme", p.id)
		s.ExpiresAt = p.exp
		mustCreateSession(t, st, s)
		wantErr(t, "PutRefreshToken", st.PutRefreshToken(ctx(t), refresh(p.id, p.id, p.exp)), nil)
		wantErr(t, "RevokeSession", st.RevokeSession(ctx(t), p.id, "r", t0), nil)
	}
	mustCreateConnection(t, st, connection("acme", "t", "acme.com"))
	wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), store.AuditEvent{ID: "a", Time: t0.Add(-time.Hour)}), nil)

	n, err := st.Sweep(ctx(t), now)
	wantErr(t, "Sweep", err, nil)
	if n != 6 {
		t.Fatalf("Sweep deleted %d rows, want 6 (one of each kind)", n)
	}
	n, err = st.Sweep(ctx(t), now)
	wantErr(t, "Sweep again", err, nil)
	if n != 0 {
		t.Fatalf("second Sweep deleted %d rows, want 0", n)
	}

	_, err = st.GetPendingRequest(ctx(t), "acme", "old")
	wantErr(t, "expired pending request", err, store.ErrNotFound)
	_, err = st.GetPendingRequest(ctx(t), "acme", "fresh")
	wantErr(t, "live pending request", err, nil)
	// A swept assertion ID is past its expiry, so the ACS rejects the
	// assertion on time before it gets here; the slot is free again.
	wantErr(t, "expired assertion", st.RecordAssertion(ctx(t), "acme", "old", fresh), nil)
	wantErr(t, "live assertion", st.RecordAssertion(ctx(t), "acme", "fresh", fresh), store.ErrConsumed)
	_, err = st.ConsumeCode(ctx(t), hash("old"), t0)
	wantErr(t, "expired code", err, store.ErrNotFound)
	_, err = st.ConsumeCode(ctx(t), hash("fresh"), t0)
	wantErr(t, "live code", err, nil)
	_, err = st.GetSession(ctx(t), "old")
	wantErr(t, "expired session", err, store.ErrNotFound)
	_, err = st.GetSession(ctx(t), "fresh")
	wantErr(t, "live session", err, nil)
	_, err = st.RotateRefreshToken(ctx(t), hash("old"), refresh("x", "", fresh), t0, 0)
	wantErr(t, "expired refresh token", err, store.ErrNotFound)
	rs := revocations(t, st, 0)
	if len(rs) != 1 || rs[0].SessionID != "fresh" {
		t.Fatalf("revocations after sweep = %+v, want only the live session's", rs)
	}
	// Connections and audit events are not Sweep's business.
	_, err = st.GetConnection(ctx(t), "acme")
	wantErr(t, "connection", err, nil)
	es, _, err := st.ListAudit(ctx(t), store.AuditQuery{})
	wantErr(t, "ListAudit", err, nil)
	if len(es) != 1 {
		t.Fatalf("audit events after sweep = %d", len(es))
	}
}

func testTimes(t *testing.T, st store.Store) {
	loc := time.FixedZone("UTC+5", 5*3600)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"microseconds kept", t0, t0},
		{"nanoseconds truncated", t0.Add(789 * time.Nanosecond), t0},
		{"returned in UTC", t0.In(loc), t0},
		{"zero is zero", time.Time{}, time.Time{}},
		{"far future", time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := store.SigningKey{ID: "k" + string(rune('a'+i)), CreatedAt: t0, PublishAt: tc.in}
			wantErr(t, "PutSigningKey", st.PutSigningKey(ctx(t), k), nil)
			keys, err := st.ListSigningKeys(ctx(t))
			wantErr(t, "ListSigningKeys", err, nil)
			for _, got := range keys {
				if got.ID == k.ID && !sameTime(got.PublishAt, tc.want) {
					t.Fatalf("PublishAt = %v (%v), want %v", got.PublishAt, got.PublishAt.Location(), tc.want)
				}
			}
		})
	}
}

func testInvalidArguments(t *testing.T, st store.Store) {
	c := ctx(t)
	mustCreateSession(t, st, session("s", "acme", "alice"))
	tests := []struct {
		name string
		err  error
	}{
		{"connection without id", st.CreateConnection(c, store.Connection{})},
		{"connection with an empty domain", st.CreateConnection(c, connection("x", "t", "a.com", " "))},
		{"pending request without id", st.PutPendingRequest(c, store.PendingRequest{ConnectionID: "a", ExpiresAt: t0})},
		{"pending request without expiry", st.PutPendingRequest(c, store.PendingRequest{ConnectionID: "a", ID: "b"})},
		{"assertion without id", st.RecordAssertion(c, "a", "", t0)},
		{"assertion without expiry", st.RecordAssertion(c, "a", "b", time.Time{})},
		{"code without hash", st.PutCode(c, store.Code{ExpiresAt: t0})},
		{"session without expiry", st.CreateSession(c, store.Session{ID: "x", ConnectionID: "a"})},
		{"refresh token without hash", st.PutRefreshToken(c, store.RefreshToken{SessionID: "s", ExpiresAt: t0})},
		{"signing key without id", st.PutSigningKey(c, store.SigningKey{})},
		{"revoke without time", st.RevokeSession(c, "s", "r", time.Time{})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.err, store.ErrInvalidArgument)
		})
	}
	_, err := st.ConsumeCode(c, nil, t0)
	wantErr(t, "consume empty hash", err, store.ErrInvalidArgument)
	_, err = st.RotateRefreshToken(c, hash("a"), store.RefreshToken{}, t0, 0)
	wantErr(t, "rotate to nothing", err, store.ErrInvalidArgument)
	if s, _ := st.GetSession(c, "s"); !s.RevokedAt.IsZero() {
		t.Fatal("invalid revoke revoked")
	}
}

func testPruneAudit(t *testing.T, st store.Store) {
	for i, at := range []time.Time{t0.Add(-48 * time.Hour), t0.Add(-25 * time.Hour), t0.Add(-time.Hour)} {
		wantErr(t, "AppendAudit", st.AppendAudit(ctx(t), store.AuditEvent{ID: string(rune('a' + i)), Time: at, Type: "x"}), nil)
	}
	n, err := st.PruneAudit(ctx(t), t0.Add(-24*time.Hour))
	wantErr(t, "PruneAudit", err, nil)
	if n != 2 {
		t.Fatalf("PruneAudit deleted %d events, want the 2 older than a day", n)
	}
	left, _, err := st.ListAudit(ctx(t), store.AuditQuery{})
	wantErr(t, "ListAudit", err, nil)
	if len(left) != 1 || left[0].ID != "c" {
		t.Fatalf("after pruning: %+v, want only c", left)
	}
	_, err = st.PruneAudit(ctx(t), time.Time{})
	wantErr(t, "PruneAudit zero", err, store.ErrInvalidArgument)
}
