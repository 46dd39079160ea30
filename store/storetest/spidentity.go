package storetest

import (
	"fmt"
	"testing"

	"github.com/ssogate/ssogate/store"
)

// testConnectionSPIdentity: an SP entity ID and an ACS key are each held by
// one connection at most; "" is held by none (any number of connections
// derive theirs); an update moves or frees them; a delete frees them.
func testConnectionSPIdentity(t *testing.T, st store.Store) {
	a := connection("acme", "t1")
	a.SPEntityID, a.ACSKey = "urn:auth0:old:acme", "sso.example.com/login/callback?connection=acme"
	mustCreateConnection(t, st, a)
	mustCreateConnection(t, st, connection("plain-1", "t1"))
	mustCreateConnection(t, st, connection("plain-2", "t1")) // two with none: no conflict

	got, err := st.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection", err, nil)
	if got.SPEntityID != a.SPEntityID || got.ACSKey != a.ACSKey {
		t.Fatalf("GetConnection = entity %q, acs %q; want %q, %q", got.SPEntityID, got.ACSKey, a.SPEntityID, a.ACSKey)
	}
	plain, err := st.GetConnection(ctx(t), "plain-1")
	wantErr(t, "GetConnection plain", err, nil)
	if plain.SPEntityID != "" || plain.ACSKey != "" {
		t.Fatalf("derived connection reads back entity %q, acs %q; want empty", plain.SPEntityID, plain.ACSKey)
	}
	byEntity, err := st.ConnectionBySPEntityID(ctx(t), a.SPEntityID)
	wantErr(t, "ConnectionBySPEntityID", err, nil)
	equal(t, "ConnectionBySPEntityID", byEntity.ID, "acme", eqString)
	byACS, err := st.ConnectionByACSKey(ctx(t), a.ACSKey)
	wantErr(t, "ConnectionByACSKey", err, nil)
	equal(t, "ConnectionByACSKey", byACS.ID, "acme", eqString)
	_, err = st.ConnectionBySPEntityID(ctx(t), "")
	wantErr(t, "ConnectionBySPEntityID empty", err, store.ErrNotFound)
	_, err = st.ConnectionByACSKey(ctx(t), "")
	wantErr(t, "ConnectionByACSKey empty", err, store.ErrNotFound)
	_, err = st.ConnectionByACSKey(ctx(t), "sso.example.com/login/callback?connection=other")
	wantErr(t, "ConnectionByACSKey unknown", err, store.ErrNotFound)

	// Taken on create: the entity ID alone, the ACS key alone.
	dupEntity := connection("dup-entity", "t2")
	dupEntity.SPEntityID = a.SPEntityID
	wantErr(t, "CreateConnection same entity ID", st.CreateConnection(ctx(t), dupEntity), store.ErrConflict)
	dupACS := connection("dup-acs", "t2")
	dupACS.SPEntityID, dupACS.ACSKey = "urn:other", a.ACSKey
	wantErr(t, "CreateConnection same ACS key", st.CreateConnection(ctx(t), dupACS), store.ErrConflict)
	for _, id := range []string{"dup-entity", "dup-acs"} {
		_, err := st.GetConnection(ctx(t), id)
		wantErr(t, "GetConnection of a refused create", err, store.ErrNotFound)
	}
	if _, err := st.ConnectionBySPEntityID(ctx(t), "urn:other"); err == nil {
		t.Fatal("a refused create left its entity ID claimed")
	}

	// Taken on update; the refused update changes nothing.
	p, err := st.GetConnection(ctx(t), "plain-1")
	wantErr(t, "GetConnection", err, nil)
	p.SPEntityID = a.SPEntityID
	_, err = st.UpdateConnection(ctx(t), p, p.Version)
	wantErr(t, "UpdateConnection to a taken entity ID", err, store.ErrConflict)
	p.SPEntityID, p.ACSKey = "", a.ACSKey
	_, err = st.UpdateConnection(ctx(t), p, p.Version)
	wantErr(t, "UpdateConnection to a taken ACS key", err, store.ErrConflict)
	after, err := st.GetConnection(ctx(t), "plain-1")
	wantErr(t, "GetConnection", err, nil)
	if after.Version != p.Version || after.SPEntityID != "" || after.ACSKey != "" {
		t.Fatalf("refused update changed the row: version %d, entity %q, acs %q", after.Version, after.SPEntityID, after.ACSKey)
	}

	// Moving: acme drops both, then plain-1 may take them.
	cur, err := st.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection", err, nil)
	cur.SPEntityID, cur.ACSKey = "", ""
	_, err = st.UpdateConnection(ctx(t), cur, cur.Version)
	wantErr(t, "UpdateConnection freeing", err, nil)
	_, err = st.ConnectionBySPEntityID(ctx(t), a.SPEntityID)
	wantErr(t, "ConnectionBySPEntityID after freeing", err, store.ErrNotFound)
	p.SPEntityID, p.ACSKey = a.SPEntityID, a.ACSKey
	_, err = st.UpdateConnection(ctx(t), p, p.Version)
	wantErr(t, "UpdateConnection taking freed values", err, nil)
	byACS, err = st.ConnectionByACSKey(ctx(t), a.ACSKey)
	wantErr(t, "ConnectionByACSKey after move", err, nil)
	equal(t, "ConnectionByACSKey after move", byACS.ID, "plain-1", eqString)

	// Delete frees them.
	wantErr(t, "DeleteConnection", st.DeleteConnection(ctx(t), "plain-1"), nil)
	_, err = st.ConnectionByACSKey(ctx(t), a.ACSKey)
	wantErr(t, "ConnectionByACSKey after delete", err, store.ErrNotFound)
	mustCreateConnection(t, st, a2(a))
}

func eqString(a, b string) bool { return a == b }

func a2(a store.Connection) store.Connection {
	a.ID = "acme-again"
	return a
}

// raceClaimSPIdentity: connections created at once on two stores claim one
// SP entity ID (and, separately, one ACS key): exactly one wins each.
func raceClaimSPIdentity(t *testing.T, a, b store.Store) {
	got := race(t, a, b, func(i int, st store.Store) error {
		c := connection(fmt.Sprintf("e%d", i), "t")
		c.SPEntityID = "urn:auth0:old:contested"
		c.ACSKey = fmt.Sprintf("sso.example.com/acs/%d", i)
		return st.CreateConnection(ctx(t), c)
	})
	wantOutcome(t, got, "conflict")
	got = race(t, a, b, func(i int, st store.Store) error {
		c := connection(fmt.Sprintf("k%d", i), "t")
		c.ACSKey = "sso.example.com/login/callback?connection=contested"
		return st.CreateConnection(ctx(t), c)
	})
	wantOutcome(t, got, "conflict")
	cs, _, err := a.ListConnections(ctx(t), store.ListConnectionsQuery{PageSize: 2 * racers})
	wantErr(t, "ListConnections", err, nil)
	if len(cs) != 2 {
		t.Fatalf("%d connections after the races, want 2 (the losers roll back)", len(cs))
	}
}
