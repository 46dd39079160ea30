package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func testSigningKeys(t *testing.T, st store.Store) {
	k1 := store.SigningKey{
		ID: "k1", Algorithm: "ES256", PublicJWK: []byte(`{"kty":"EC"}`), PrivateSealed: []byte{1, 2, 3},
		CreatedAt: t0, PublishAt: t0, ActivateAt: t0.Add(time.Hour),
	}
	k2 := store.SigningKey{ID: "k2", Algorithm: "EdDSA", PublicJWK: []byte(`{"kty":"OKP"}`), PrivateSealed: []byte{4},
		CreatedAt: t0.Add(-time.Hour)}
	wantErr(t, "PutSigningKey k1", st.PutSigningKey(ctx(t), k1), nil)
	wantErr(t, "PutSigningKey k2", st.PutSigningKey(ctx(t), k2), nil)
	wantErr(t, "PutSigningKey duplicate", st.PutSigningKey(ctx(t), k1), store.ErrConflict)

	list := func(want ...store.SigningKey) {
		t.Helper()
		got, err := st.ListSigningKeys(ctx(t))
		wantErr(t, "ListSigningKeys", err, nil)
		if len(got) != len(want) {
			t.Fatalf("ListSigningKeys = %d keys, want %d", len(got), len(want))
		}
		for i := range got {
			equal(t, fmt.Sprintf("key %d", i), got[i], want[i], eqKey)
		}
	}
	list(k2, k1) // oldest first

	k1.RetireAt, k1.ExpireAt = t0.Add(48*time.Hour), t0.Add(72*time.Hour)
	k1.PrivateSealed = nil // dropped once retired
	wantErr(t, "UpdateSigningKey", st.UpdateSigningKey(ctx(t), k1), nil)
	wantErr(t, "UpdateSigningKey unknown", st.UpdateSigningKey(ctx(t), store.SigningKey{ID: "nope", CreatedAt: t0}), store.ErrNotFound)
	list(k2, k1)

	wantErr(t, "DeleteSigningKey", st.DeleteSigningKey(ctx(t), "k2"), nil)
	wantErr(t, "DeleteSigningKey again", st.DeleteSigningKey(ctx(t), "k2"), store.ErrNotFound)
	list(k1)
}

func testAudit(t *testing.T, st store.Store) {
	// Times out of insertion order, with a tie (e3, e4) that insertion
	// order breaks.
	events := []store.AuditEvent{
		{ID: "e1", Time: t0.Add(1 * time.Second), Type: "login", ConnectionID: "acme"},
		{ID: "e2", Time: t0.Add(5 * time.Second), Type: "login_rejected", ConnectionID: "acme", Reason: "AUDIENCE",
			Message: "Audience was https://a, expected https://b", CorrelationID: "corr", TenantID: "t1",
			Subject: "alice", Detail: []byte(`{"k":"v"}`)},
		{ID: "e3", Time: t0.Add(3 * time.Second), Type: "login", ConnectionID: "other"},
		{ID: "e4", Time: t0.Add(3 * time.Second), Type: "login", ConnectionID: "acme"},
		{ID: "e5", Time: t0.Add(2 * time.Second), Type: "logout", ConnectionID: "acme"},
		{ID: "e6", Time: t0.Add(4 * time.Second), Type: "login", ConnectionID: "other"},
		{ID: "e7", Time: t0, Type: "key_rotated"},
	}
	for _, e := range events {
		wantErr(t, "AppendAudit "+e.ID, st.AppendAudit(ctx(t), e), nil)
	}
	wantErr(t, "AppendAudit duplicate", st.AppendAudit(ctx(t), events[0]), store.ErrConflict)

	tests := []struct {
		name string
		q    store.AuditQuery
		want []string // ids, page by page
	}{
		{"all, newest first", store.AuditQuery{}, []string{"[e2 e6 e4 e3 e5 e1 e7]"}},
		{"pages of two", store.AuditQuery{PageSize: 2}, []string{"[e2 e6]", "[e4 e3]", "[e5 e1]", "[e7]"}},
		{"pages split a tie", store.AuditQuery{PageSize: 3}, []string{"[e2 e6 e4]", "[e3 e5 e1]", "[e7]"}},
		{"by connection", store.AuditQuery{ConnectionID: "acme", PageSize: 2}, []string{"[e2 e4]", "[e5 e1]"}},
		{"by type", store.AuditQuery{Type: "login"}, []string{"[e6 e4 e3 e1]"}},
		{"by correlation id", store.AuditQuery{CorrelationID: "corr"}, []string{"[e2]"}},
		{"since inclusive, until exclusive", store.AuditQuery{Since: t0.Add(2 * time.Second), Until: t0.Add(4 * time.Second)},
			[]string{"[e4 e3 e5]"}},
		{"everything at once", store.AuditQuery{ConnectionID: "acme", Type: "login", Since: t0.Add(time.Second), PageSize: 1},
			[]string{"[e4]", "[e1]"}},
		{"nothing", store.AuditQuery{Type: "nope"}, []string{"[]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pages []string
			q := tc.q
			for {
				es, next, err := st.ListAudit(ctx(t), q)
				wantErr(t, "ListAudit", err, nil)
				ids := []string{}
				for _, e := range es {
					ids = append(ids, e.ID)
				}
				pages = append(pages, fmt.Sprint(ids))
				if next == "" || len(pages) > 10 {
					break
				}
				q.PageToken = next
			}
			if fmt.Sprint(pages) != fmt.Sprint(tc.want) {
				t.Fatalf("pages = %v, want %v", pages, tc.want)
			}
		})
	}

	es, _, err := st.ListAudit(ctx(t), store.AuditQuery{Type: "login_rejected"})
	wantErr(t, "ListAudit", err, nil)
	if len(es) != 1 {
		t.Fatalf("ListAudit login_rejected = %d events", len(es))
	}
	equal(t, "audit event round trip", es[0], events[1], eqAudit)

	_, _, err = st.ListAudit(ctx(t), store.AuditQuery{PageToken: "garbage!"})
	wantErr(t, "ListAudit bad token", err, store.ErrInvalidArgument)

	// Missing ID and Time are filled in.
	wantErr(t, "AppendAudit bare", st.AppendAudit(ctx(t), store.AuditEvent{Type: "bare"}), nil)
	wantErr(t, "AppendAudit bare again", st.AppendAudit(ctx(t), store.AuditEvent{Type: "bare"}), nil)
	es, _, err = st.ListAudit(ctx(t), store.AuditQuery{Type: "bare"})
	wantErr(t, "ListAudit bare", err, nil)
	if len(es) != 2 || es[0].ID == "" || es[0].ID == es[1].ID || es[0].Time.IsZero() {
		t.Fatalf("bare events = %+v, want two with distinct ids and a time", es)
	}
}
