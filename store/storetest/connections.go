package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func connection(id, tenant string, domains ...string) store.Connection {
	return store.Connection{
		ID: id, TenantID: tenant, State: "ACTIVE", Domains: domains,
		Config:    []byte(`{"idp_entity_id":"https://idp.example/` + id + `"}`),
		CreatedAt: t0, UpdatedAt: t0,
	}
}

func mustCreateConnection(t *testing.T, st store.Store, c store.Connection) {
	t.Helper()
	if err := st.CreateConnection(ctx(t), c); err != nil {
		t.Fatalf("CreateConnection(%q): %v", c.ID, err)
	}
}

func testConnectionCRUD(t *testing.T, st store.Store) {
	c := connection("acme", "tenant-1", "Acme.COM", " acme.io ", "acme.com")
	mustCreateConnection(t, st, c)

	want := c
	want.Domains = []string{"acme.com", "acme.io"}
	want.Version = 1
	got, err := st.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection", err, nil)
	equal(t, "GetConnection", got, want, eqConnection)

	wantErr(t, "CreateConnection duplicate id", st.CreateConnection(ctx(t), connection("acme", "tenant-2")), store.ErrConflict)
	_, err = st.GetConnection(ctx(t), "nope")
	wantErr(t, "GetConnection unknown", err, store.ErrNotFound)

	wantErr(t, "DeleteConnection", st.DeleteConnection(ctx(t), "acme"), nil)
	_, err = st.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection after delete", err, store.ErrNotFound)
	_, err = st.ConnectionByDomain(ctx(t), "acme.com")
	wantErr(t, "ConnectionByDomain after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteConnection again", st.DeleteConnection(ctx(t), "acme"), store.ErrNotFound)

	// The id and domains are free again.
	mustCreateConnection(t, st, connection("acme", "tenant-1", "acme.com"))

	// Zero timestamps are filled in; no domains and no config round-trip.
	bare := store.Connection{ID: "bare", TenantID: "t", State: "DRAFT"}
	mustCreateConnection(t, st, bare)
	got, err = st.GetConnection(ctx(t), "bare")
	wantErr(t, "GetConnection bare", err, nil)
	if got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) || got.Domains != nil || got.Config != nil {
		t.Fatalf("bare connection = %+v, want set CreatedAt = UpdatedAt, nil Domains and Config", got)
	}
}

func testConnectionDomains(t *testing.T, st store.Store) {
	mustCreateConnection(t, st, connection("acme", "t1", "acme.com", "acme.io"))

	tests := []struct {
		name    string
		domain  string
		wantID  string
		wantErr error
	}{
		{"exact", "acme.com", "acme", nil},
		{"upper case", "ACME.Com", "acme", nil},
		{"surrounding space", " acme.io ", "acme", nil},
		{"unknown", "example.com", "", store.ErrNotFound},
		{"subdomain is another domain", "eu.acme.com", "", store.ErrNotFound},
		{"empty", "", "", store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ConnectionByDomain(ctx(t), tc.domain)
			wantErr(t, "ConnectionByDomain", err, tc.wantErr)
			if got.ID != tc.wantID {
				t.Fatalf("ConnectionByDomain(%q) = %q, want %q", tc.domain, got.ID, tc.wantID)
			}
		})
	}

	// A domain owned by another connection is a conflict, whatever its
	// case, and the failed create leaves nothing behind.
	err := st.CreateConnection(ctx(t), connection("evil", "t2", "evil.com", "ACME.com"))
	wantErr(t, "CreateConnection with a taken domain", err, store.ErrConflict)
	_, err = st.GetConnection(ctx(t), "evil")
	wantErr(t, "GetConnection after failed create", err, store.ErrNotFound)
	_, err = st.ConnectionByDomain(ctx(t), "evil.com")
	wantErr(t, "ConnectionByDomain after failed create", err, store.ErrNotFound)
	got, err := st.ConnectionByDomain(ctx(t), "acme.com")
	wantErr(t, "ConnectionByDomain owner", err, nil)
	if got.ID != "acme" {
		t.Fatalf("acme.com owned by %q after failed create, want acme", got.ID)
	}
}

func testConnectionUpdate(t *testing.T, st store.Store) {
	mustCreateConnection(t, st, connection("acme", "t1", "acme.com", "acme.io"))
	mustCreateConnection(t, st, connection("other", "t2", "other.com"))
	before := time.Now().Add(-time.Second)

	c, err := st.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection", err, nil)
	c.State = "DISABLED"
	c.TenantID = "t9"
	c.Domains = []string{"acme.io", "ACME.net"}
	c.Config = []byte(`{"v":2}`)
	updated, err := st.UpdateConnection(ctx(t), c, 1)
	wantErr(t, "UpdateConnection", err, nil)
	if updated.Version != 2 || !updated.UpdatedAt.After(before) || !updated.CreatedAt.Equal(t0) {
		t.Fatalf("UpdateConnection = version %d, updated %v, created %v; want 2, after %v, %v",
			updated.Version, updated.UpdatedAt, updated.CreatedAt, before, t0)
	}
	got, err := st.GetConnection(ctx(t), "acme")
	wantErr(t, "GetConnection after update", err, nil)
	equal(t, "GetConnection after update", got, updated, eqConnection)
	if fmt.Sprint(got.Domains) != "[acme.io acme.net]" || got.State != "DISABLED" || got.TenantID != "t9" {
		t.Fatalf("after update: %+v", got)
	}

	// The released domain is free, the new one points here.
	_, err = st.ConnectionByDomain(ctx(t), "acme.com")
	wantErr(t, "released domain", err, store.ErrNotFound)
	byNew, err := st.ConnectionByDomain(ctx(t), "acme.net")
	wantErr(t, "claimed domain", err, nil)
	if byNew.ID != "acme" {
		t.Fatalf("acme.net -> %q", byNew.ID)
	}

	tests := []struct {
		name    string
		change  func(c *store.Connection)
		version int64
		wantErr error
	}{
		{"stale version", func(c *store.Connection) { c.State = "ACTIVE" }, 1, store.ErrConflict},
		{"future version", func(c *store.Connection) { c.State = "ACTIVE" }, 3, store.ErrConflict},
		{"domain of another connection", func(c *store.Connection) { c.Domains = []string{"Other.com"} }, 2, store.ErrConflict},
		{"unknown id", func(c *store.Connection) { c.ID = "ghost" }, 2, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := got
			tc.change(&c)
			_, err := st.UpdateConnection(ctx(t), c, tc.version)
			wantErr(t, "UpdateConnection", err, tc.wantErr)
			after, err := st.GetConnection(ctx(t), "acme")
			wantErr(t, "GetConnection", err, nil)
			equal(t, "connection after failed update", after, got, eqConnection)
		})
	}

	// A conflicting domain rolled back the release of the old ones too.
	byOld, err := st.ConnectionByDomain(ctx(t), "acme.io")
	wantErr(t, "domain after failed update", err, nil)
	if byOld.ID != "acme" {
		t.Fatalf("acme.io -> %q", byOld.ID)
	}
}

func testConnectionList(t *testing.T, st store.Store) {
	ids := []string{"g", "b", "e", "a", "f", "c", "d"}
	for i, id := range ids {
		mustCreateConnection(t, st, connection(id, fmt.Sprintf("t%d", i%2), id+".example"))
	}
	tests := []struct {
		name   string
		tenant string
		size   int
		want   []string // ids, page by page
	}{
		{"all in one default page", "", 0, []string{"[a b c d e f g]"}},
		{"pages of three", "", 3, []string{"[a b c]", "[d e f]", "[g]"}},
		{"exact fit", "", 7, []string{"[a b c d e f g]"}},
		{"tenant t0", "t0", 2, []string{"[d e]", "[f g]"}},
		{"tenant t1", "t1", 100, []string{"[a b c]"}},
		{"unknown tenant", "t7", 2, []string{"[]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pages []string
			token := ""
			for {
				cs, next, err := st.ListConnections(ctx(t), store.ListConnectionsQuery{TenantID: tc.tenant, PageSize: tc.size, PageToken: token})
				wantErr(t, "ListConnections", err, nil)
				got := []string{}
				for _, c := range cs {
					got = append(got, c.ID)
					if c.Version != 1 || len(c.Domains) != 1 {
						t.Fatalf("listed connection %+v incomplete", c)
					}
				}
				pages = append(pages, fmt.Sprint(got))
				if next == "" {
					break
				}
				if len(pages) > 10 {
					t.Fatal("ListConnections does not end")
				}
				token = next
			}
			if fmt.Sprint(pages) != fmt.Sprint(tc.want) {
				t.Fatalf("pages = %v, want %v", pages, tc.want)
			}
		})
	}
	_, _, err := st.ListConnections(ctx(t), store.ListConnectionsQuery{PageToken: "!!not a token"})
	wantErr(t, "ListConnections bad token", err, store.ErrInvalidArgument)
}
