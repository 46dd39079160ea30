package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func testDirectoryUsers(t *testing.T, st store.Store) {
	alice := store.DirectoryUser{ConnectionID: "acme", ID: "u1", UserName: "Alice@Acme.example", ExternalID: "ext-1",
		Email: "Alice@Acme.example", DisplayName: "Alice", Active: true, Resource: []byte(`{"userName":"Alice@Acme.example"}`),
		CreatedAt: t0}
	wantErr(t, "create alice", st.CreateDirectoryUser(ctx(t), alice), nil)
	wantErr(t, "duplicate id", st.CreateDirectoryUser(ctx(t), alice), store.ErrConflict)
	dup := alice
	dup.ID, dup.UserName, dup.ExternalID = "u2", "alice@acme.EXAMPLE", ""
	wantErr(t, "userName taken, other case", st.CreateDirectoryUser(ctx(t), dup), store.ErrConflict)
	dup.UserName, dup.ExternalID = "other", "ext-1"
	wantErr(t, "externalId taken", st.CreateDirectoryUser(ctx(t), dup), store.ErrConflict)
	// The same userName in another connection is another user.
	elsewhere := alice
	elsewhere.ConnectionID = "globex"
	wantErr(t, "same name, other connection", st.CreateDirectoryUser(ctx(t), elsewhere), nil)
	bob := store.DirectoryUser{ConnectionID: "acme", ID: "u3", UserName: "bob", Active: true, CreatedAt: t0.Add(time.Second)}
	wantErr(t, "create bob (no externalId)", st.CreateDirectoryUser(ctx(t), bob), nil)
	carol := store.DirectoryUser{ConnectionID: "acme", ID: "u4", UserName: "carol", CreatedAt: t0.Add(2 * time.Second)}
	wantErr(t, "create carol (no externalId either)", st.CreateDirectoryUser(ctx(t), carol), nil)

	got, err := st.GetDirectoryUser(ctx(t), "acme", "u1")
	wantErr(t, "get alice", err, nil)
	if got.UserName != alice.UserName || got.Email != "alice@acme.example" || !got.Active || got.Version != 1 ||
		string(got.Resource) != string(alice.Resource) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("get alice = %+v", got)
	}
	_, err = st.GetDirectoryUser(ctx(t), "globex", "u3")
	wantErr(t, "bob through another connection", err, store.ErrNotFound)

	for _, tc := range []struct {
		name string
		q    store.DirectoryUserQuery
		want []string
		n    int
	}{
		{"all", store.DirectoryUserQuery{ConnectionID: "acme"}, []string{"u1", "u3", "u4"}, 3},
		{"userName any case", store.DirectoryUserQuery{ConnectionID: "acme", UserName: "ALICE@acme.example"}, []string{"u1"}, 1},
		{"externalId", store.DirectoryUserQuery{ConnectionID: "acme", ExternalID: "ext-1"}, []string{"u1"}, 1},
		{"email", store.DirectoryUserQuery{ConnectionID: "acme", Email: "alice@ACME.example"}, []string{"u1"}, 1},
		{"page", store.DirectoryUserQuery{ConnectionID: "acme", Offset: 1, Limit: 1}, []string{"u3"}, 3},
		{"past the end", store.DirectoryUserQuery{ConnectionID: "acme", Offset: 5}, nil, 3},
		{"none", store.DirectoryUserQuery{ConnectionID: "acme", UserName: "nobody"}, nil, 0},
		{"without the total", store.DirectoryUserQuery{ConnectionID: "acme", Limit: 2, SkipTotal: true}, []string{"u1", "u3"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, n, err := st.ListDirectoryUsers(ctx(t), tc.q)
			wantErr(t, "list", err, nil)
			var ids []string
			for _, u := range users {
				ids = append(ids, u.ID)
			}
			if !slices.Equal(ids, tc.want) || n != tc.n {
				t.Fatalf("list = %v (total %d), want %v (total %d)", ids, n, tc.want, tc.n)
			}
		})
	}

	got.Active, got.UserName = false, "alice.renamed@acme.example"
	upd, err := st.UpdateDirectoryUser(ctx(t), got, 1)
	wantErr(t, "update alice", err, nil)
	if upd.Version != 2 || upd.Active || upd.UserName != "alice.renamed@acme.example" {
		t.Fatalf("updated = %+v", upd)
	}
	_, err = st.UpdateDirectoryUser(ctx(t), got, 1)
	wantErr(t, "stale version", err, store.ErrConflict)
	b, _ := st.GetDirectoryUser(ctx(t), "acme", "u3")
	b.UserName = "ALICE.renamed@acme.example"
	_, err = st.UpdateDirectoryUser(ctx(t), b, b.Version)
	wantErr(t, "rename onto a taken userName", err, store.ErrConflict)

	before, err := st.DeleteDirectoryUser(ctx(t), "acme", "u1", t0.Add(time.Hour))
	wantErr(t, "delete alice", err, nil)
	if before.UserName != "alice.renamed@acme.example" {
		t.Fatalf("delete returned %+v", before)
	}
	_, err = st.DeleteDirectoryUser(ctx(t), "acme", "u1", t0.Add(time.Hour))
	wantErr(t, "delete again", err, store.ErrNotFound)
	_, err = st.GetDirectoryUser(ctx(t), "acme", "u1")
	wantErr(t, "get tombstone", err, store.ErrNotFound)
	// A late full sync naming the deleted id does not revive it.
	upd.Active = true
	_, err = st.UpdateDirectoryUser(ctx(t), upd, upd.Version)
	wantErr(t, "update tombstone", err, store.ErrNotFound)
	// The tombstone is still found for login linking, after live users.
	users, _, err := st.ListDirectoryUsers(ctx(t), store.DirectoryUserQuery{ConnectionID: "acme",
		UserName: "alice.renamed@acme.example", IncludeDeleted: true})
	wantErr(t, "list with tombstones", err, nil)
	if len(users) != 1 || users[0].DeletedAt.IsZero() || users[0].Active || users[0].Resource != nil {
		t.Fatalf("tombstone = %+v", users)
	}
	// A new user of that name is a new provisioning decision: allowed, and
	// listed before the tombstone.
	again := store.DirectoryUser{ConnectionID: "acme", ID: "u5", UserName: "alice.renamed@acme.example", ExternalID: "ext-1",
		Active: true, CreatedAt: t0.Add(2 * time.Hour)}
	wantErr(t, "re-create over a tombstone", st.CreateDirectoryUser(ctx(t), again), nil)
	users, _, _ = st.ListDirectoryUsers(ctx(t), store.DirectoryUserQuery{ConnectionID: "acme",
		UserName: "alice.renamed@acme.example", IncludeDeleted: true})
	if len(users) != 2 || users[0].ID != "u5" || users[1].ID != "u1" {
		t.Fatalf("live user first, then tombstone: %+v", users)
	}
}

func testDirectoryGroups(t *testing.T, st store.Store) {
	for i, id := range []string{"u1", "u2", "u3"} {
		wantErr(t, "create user", st.CreateDirectoryUser(ctx(t), store.DirectoryUser{ConnectionID: "acme", ID: id,
			UserName: "user" + id, Active: true, CreatedAt: t0.Add(time.Duration(i) * time.Second)}), nil)
	}
	g := store.DirectoryGroup{ConnectionID: "acme", ID: "g1", DisplayName: "Engineering", ExternalID: "e-g1", CreatedAt: t0}
	wantErr(t, "create group (one unknown member)", st.CreateDirectoryGroup(ctx(t), g, []string{"u1", "nobody"}), nil)
	wantErr(t, "duplicate group", st.CreateDirectoryGroup(ctx(t), g, nil), store.ErrConflict)
	wantErr(t, "create group 2", st.CreateDirectoryGroup(ctx(t), store.DirectoryGroup{ConnectionID: "acme", ID: "g2",
		DisplayName: "Sales", CreatedAt: t0.Add(time.Second)}, []string{"u2"}), nil)
	members := func(group string, want ...string) {
		t.Helper()
		got, err := st.GroupMembers(ctx(t), "acme", group)
		wantErr(t, "members", err, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("members of %s = %v, want %v", group, got, want)
		}
	}
	members("g1", "u1")

	changed, err := st.ChangeGroupMembers(ctx(t), "acme", "g1", store.MemberChange{Add: []string{"u2", "u3", "u1"}})
	wantErr(t, "add", err, nil)
	if !slices.Equal(changed, []string{"u2", "u3"}) {
		t.Fatalf("add changed %v, want the two new members", changed)
	}
	members("g1", "u1", "u2", "u3")
	changed, _ = st.ChangeGroupMembers(ctx(t), "acme", "g1", store.MemberChange{Remove: []string{"u1", "nobody"}})
	if !slices.Equal(changed, []string{"u1"}) {
		t.Fatalf("remove changed %v", changed)
	}
	changed, _ = st.ChangeGroupMembers(ctx(t), "acme", "g1", store.MemberChange{Replace: true, Add: []string{"u3", "u1"}})
	if !slices.Equal(changed, []string{"u1", "u2"}) {
		t.Fatalf("replace changed %v, want u1 added and u2 removed", changed)
	}
	members("g1", "u1", "u3")
	_, err = st.ChangeGroupMembers(ctx(t), "acme", "nope", store.MemberChange{Add: []string{"u1"}})
	wantErr(t, "change members of unknown group", err, store.ErrNotFound)

	for _, tc := range []struct {
		name string
		q    store.DirectoryGroupQuery
		want []string
	}{
		{"all", store.DirectoryGroupQuery{ConnectionID: "acme"}, []string{"g1", "g2"}},
		{"displayName", store.DirectoryGroupQuery{ConnectionID: "acme", DisplayName: "Sales"}, []string{"g2"}},
		{"externalId", store.DirectoryGroupQuery{ConnectionID: "acme", ExternalID: "e-g1"}, []string{"g1"}},
		{"member u1", store.DirectoryGroupQuery{ConnectionID: "acme", MemberID: "u1"}, []string{"g1"}},
		{"member u2", store.DirectoryGroupQuery{ConnectionID: "acme", MemberID: "u2"}, []string{"g2"}},
		{"other connection", store.DirectoryGroupQuery{ConnectionID: "globex"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups, n, err := st.ListDirectoryGroups(ctx(t), tc.q)
			wantErr(t, "list", err, nil)
			var ids []string
			for _, g := range groups {
				ids = append(ids, g.ID)
			}
			if !slices.Equal(ids, tc.want) || n != len(tc.want) {
				t.Fatalf("list = %v (total %d), want %v", ids, n, tc.want)
			}
		})
	}

	got, err := st.GetDirectoryGroup(ctx(t), "acme", "g1")
	wantErr(t, "get", err, nil)
	got.DisplayName = "Platform"
	upd, err := st.UpdateDirectoryGroup(ctx(t), got, got.Version)
	wantErr(t, "update", err, nil)
	if upd.DisplayName != "Platform" || upd.Version != got.Version+1 {
		t.Fatalf("updated = %+v", upd)
	}
	_, err = st.UpdateDirectoryGroup(ctx(t), got, got.Version)
	wantErr(t, "stale version", err, store.ErrConflict)

	// Deleting a user drops its memberships; adding it later is skipped.
	_, err = st.DeleteDirectoryUser(ctx(t), "acme", "u1", t0.Add(time.Hour))
	wantErr(t, "delete u1", err, nil)
	members("g1", "u3")
	changed, _ = st.ChangeGroupMembers(ctx(t), "acme", "g1", store.MemberChange{Add: []string{"u1"}})
	if len(changed) != 0 {
		t.Fatalf("a deleted user was added back: %v", changed)
	}
	was, err := st.DeleteDirectoryGroup(ctx(t), "acme", "g1", t0.Add(time.Hour))
	wantErr(t, "delete group", err, nil)
	if !slices.Equal(was, []string{"u3"}) {
		t.Fatalf("delete group returned members %v", was)
	}
	_, err = st.GetDirectoryGroup(ctx(t), "acme", "g1")
	wantErr(t, "get deleted group", err, store.ErrNotFound)
	_, err = st.UpdateDirectoryGroup(ctx(t), upd, upd.Version)
	wantErr(t, "update deleted group", err, store.ErrNotFound)
	_, err = st.DeleteDirectoryGroup(ctx(t), "acme", "g1", t0.Add(time.Hour))
	wantErr(t, "delete group again", err, store.ErrNotFound)
}

func testScimTokens(t *testing.T, st store.Store) {
	a := store.ScimToken{ID: "t1", ConnectionID: "acme", Hash: hash("s1"), CreatedAt: t0}
	b := store.ScimToken{ID: "t2", ConnectionID: "acme", Hash: hash("s2"), CreatedAt: t0.Add(time.Second)}
	wantErr(t, "create t1", st.CreateScimToken(ctx(t), a), nil)
	wantErr(t, "create t2", st.CreateScimToken(ctx(t), b), nil)
	wantErr(t, "duplicate", st.CreateScimToken(ctx(t), a), store.ErrConflict)
	wantErr(t, "no hash", st.CreateScimToken(ctx(t), store.ScimToken{ID: "t3", ConnectionID: "acme"}), store.ErrInvalidArgument)
	got, err := st.GetScimToken(ctx(t), "t1")
	wantErr(t, "get", err, nil)
	if string(got.Hash) != string(a.Hash) || got.ConnectionID != "acme" || !got.RevokedAt.IsZero() {
		t.Fatalf("get = %+v", got)
	}
	wantErr(t, "revoke through another connection", st.RevokeScimToken(ctx(t), "globex", "t1", t0), store.ErrNotFound)
	wantErr(t, "revoke", st.RevokeScimToken(ctx(t), "acme", "t1", t0.Add(time.Minute)), nil)
	wantErr(t, "revoke again", st.RevokeScimToken(ctx(t), "acme", "t1", t0.Add(time.Hour)), nil)
	got, _ = st.GetScimToken(ctx(t), "t1")
	if !got.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("revoked at %v, want the first revocation's time", got.RevokedAt)
	}
	list, err := st.ListScimTokens(ctx(t), "acme")
	wantErr(t, "list", err, nil)
	if len(list) != 2 || list[0].ID != "t1" || list[1].ID != "t2" {
		t.Fatalf("list = %+v", list)
	}
	_, err = st.GetScimToken(ctx(t), "nope")
	wantErr(t, "get unknown", err, store.ErrNotFound)
}

func testScimRequests(t *testing.T, st store.Store) {
	for i := range 3 {
		wantErr(t, "append", st.AppendScimRequest(ctx(t), store.ScimRequest{ConnectionID: "acme", Time: t0.Add(time.Duration(i) * time.Second),
			Method: "PATCH", Path: fmt.Sprintf("/Users/u%d", i), Status: 400 + i, ScimType: "invalidPath"}), nil)
	}
	wantErr(t, "append other", st.AppendScimRequest(ctx(t), store.ScimRequest{ConnectionID: "globex", Method: "GET", Path: "/Users", Status: 200}), nil)
	got, err := st.ListScimRequests(ctx(t), "acme", 2)
	wantErr(t, "list", err, nil)
	if len(got) != 2 || got[0].Path != "/Users/u2" || got[0].Status != 402 || got[0].ScimType != "invalidPath" ||
		!got[0].Time.Equal(t0.Add(2*time.Second)) || got[1].Path != "/Users/u1" {
		t.Fatalf("list = %+v", got)
	}
	// A week later the sweep drops the log.
	if _, err := st.Sweep(ctx(t), t0.Add(8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = st.ListScimRequests(ctx(t), "acme", 0)
	if len(got) != 0 {
		t.Fatalf("after sweep: %+v", got)
	}
}

// raceGroupMembers: Entra sends members in batches, possibly in parallel
// to one group; every add lands.
func raceGroupMembers(t *testing.T, a, b store.Store) {
	const n = 40
	for i := range n {
		wantErr(t, "create user", a.CreateDirectoryUser(ctx(t), store.DirectoryUser{ConnectionID: "acme", ID: fmt.Sprintf("u%02d", i),
			UserName: fmt.Sprintf("user%02d", i), Active: true}), nil)
	}
	wantErr(t, "create group", a.CreateDirectoryGroup(ctx(t), store.DirectoryGroup{ConnectionID: "acme", ID: "g", DisplayName: "G"}, nil), nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.ChangeGroupMembers(ctx(t), "acme", "g", store.MemberChange{Add: []string{fmt.Sprintf("u%02d", i)}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent add: %v", err)
		}
	}
	got, _ := a.GroupMembers(ctx(t), "acme", "g")
	if len(got) != n {
		t.Fatalf("%d members after %d concurrent adds", len(got), n)
	}
}
