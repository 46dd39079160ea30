package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func eqSetupLink(a, b store.SetupLink) bool {
	return a.ID == b.ID && a.ConnectionID == b.ConnectionID && bytes.Equal(a.Hash, b.Hash) &&
		fmt.Sprint(a.Features) == fmt.Sprint(b.Features) && a.Creator == b.Creator && sameTime(a.CreatedAt, b.CreatedAt) &&
		sameTime(a.ExpiresAt, b.ExpiresAt) && sameTime(a.RevokedAt, b.RevokedAt)
}

func testSetupLinks(t *testing.T, st store.Store) {
	for _, id := range []string{"acme", "beta"} {
		wantErr(t, "CreateConnection "+id, st.CreateConnection(ctx(t), store.Connection{ID: id, TenantID: "t-" + id, State: "DRAFT"}), nil)
	}
	l1 := store.SetupLink{ID: "l1", ConnectionID: "acme", Hash: hash("secret-1"), Features: []string{"SAML", "SCIM"},
		Creator: "admin", CreatedAt: t0, ExpiresAt: t0.Add(7 * 24 * time.Hour)}
	l2 := store.SetupLink{ID: "l2", ConnectionID: "acme", Hash: hash("secret-2"), Features: []string{"SAML"},
		Creator: "admin", CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour)}
	l3 := store.SetupLink{ID: "l3", ConnectionID: "beta", Hash: hash("secret-3"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	for _, l := range []store.SetupLink{l1, l2, l3} {
		wantErr(t, "PutSetupLink "+l.ID, st.PutSetupLink(ctx(t), l), nil)
	}
	wantErr(t, "PutSetupLink duplicate id", st.PutSetupLink(ctx(t), store.SetupLink{ID: "l1", ConnectionID: "acme",
		Hash: hash("other"), ExpiresAt: t0.Add(time.Hour)}), store.ErrConflict)
	wantErr(t, "PutSetupLink duplicate hash", st.PutSetupLink(ctx(t), store.SetupLink{ID: "l9", ConnectionID: "acme",
		Hash: hash("secret-1"), ExpiresAt: t0.Add(time.Hour)}), store.ErrConflict)
	wantErr(t, "PutSetupLink unknown connection", st.PutSetupLink(ctx(t), store.SetupLink{ID: "l8", ConnectionID: "nope",
		Hash: hash("secret-8"), ExpiresAt: t0.Add(time.Hour)}), store.ErrNotFound)
	wantErr(t, "PutSetupLink without hash", st.PutSetupLink(ctx(t), store.SetupLink{ID: "l7", ConnectionID: "acme",
		ExpiresAt: t0.Add(time.Hour)}), store.ErrInvalidArgument)

	got, err := st.SetupLinkByHash(ctx(t), hash("secret-1"))
	wantErr(t, "SetupLinkByHash", err, nil)
	equal(t, "setup link round trip", got, l1, eqSetupLink)
	_, err = st.SetupLinkByHash(ctx(t), hash("secret-x"))
	wantErr(t, "SetupLinkByHash unknown", err, store.ErrNotFound)

	list, err := st.ListSetupLinks(ctx(t), "acme")
	wantErr(t, "ListSetupLinks", err, nil)
	if len(list) != 2 || list[0].ID != "l2" || list[1].ID != "l1" {
		t.Fatalf("ListSetupLinks(acme) = %+v, want l2, l1", list)
	}

	// Another connection's link cannot be revoked through this one.
	_, err = st.RevokeSetupLink(ctx(t), "beta", "l1", t0.Add(time.Second))
	wantErr(t, "RevokeSetupLink across connections", err, store.ErrNotFound)
	revoked, err := st.RevokeSetupLink(ctx(t), "acme", "l1", t0.Add(time.Second))
	wantErr(t, "RevokeSetupLink", err, nil)
	if !sameTime(revoked.RevokedAt, t0.Add(time.Second)) || revoked.Usable(t0.Add(2*time.Second)) {
		t.Fatalf("revoked link = %+v", revoked)
	}
	again, err := st.RevokeSetupLink(ctx(t), "acme", "l1", t0.Add(time.Hour))
	wantErr(t, "RevokeSetupLink again", err, nil)
	if !sameTime(again.RevokedAt, t0.Add(time.Second)) {
		t.Fatalf("second revoke moved RevokedAt to %v", again.RevokedAt)
	}
	if got, _ := st.SetupLinkByHash(ctx(t), hash("secret-1")); got.RevokedAt.IsZero() {
		t.Fatal("revocation not visible through SetupLinkByHash")
	}
	if !l2.Usable(t0) || l2.Usable(t0.Add(time.Hour)) {
		t.Fatal("Usable ignores ExpiresAt")
	}

	// Sweep forgets expired links; deleting a connection drops its links.
	if _, err := st.Sweep(ctx(t), t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	_, err = st.SetupLinkByHash(ctx(t), hash("secret-2"))
	wantErr(t, "expired link after Sweep", err, store.ErrNotFound)
	wantErr(t, "DeleteConnection", st.DeleteConnection(ctx(t), "acme"), nil)
	_, err = st.SetupLinkByHash(ctx(t), hash("secret-1"))
	wantErr(t, "link of a deleted connection", err, store.ErrNotFound)
}
