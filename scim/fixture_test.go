package scim_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/scim"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/postgres"
	"github.com/ssogate/ssogate/store/sqlite"
	"github.com/ssogate/ssogate/store/storetest"
)

// backends are the real stores every SCIM test runs on.
var backends = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"sqlite", func(t testing.TB) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "scim.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(t testing.TB) store.Store {
		st, err := postgres.Open(context.Background(), storetest.PostgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// hooks records what the service provider asked of the rest of ssogate.
type hooks struct {
	mu       sync.Mutex
	deprov   []string            // directory user ids, in call order
	left     map[string][]string // user id -> groups left
	events   []scim.Event
	failNext bool // the next Deprovisioned call fails
}

func (h *hooks) ConnectionExists(_ context.Context, id string) error {
	if id == "acme" || id == "globex" {
		return nil
	}
	return store.ErrNotFound
}

func (h *hooks) Deprovisioned(_ context.Context, _ string, u store.DirectoryUser) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failNext {
		h.failNext = false
		return errors.New("revocation store unavailable")
	}
	h.deprov = append(h.deprov, u.ID)
	return nil
}

func (h *hooks) MembershipChanged(_ context.Context, _ string, left map[string][]string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for u, g := range left {
		h.left[u] = append(h.left[u], g...)
	}
	return nil
}

func (h *hooks) Audit(_ context.Context, e scim.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

// WithEvent records e at once (the server appends it with the write).
func (h *hooks) WithEvent(ctx context.Context, e scim.Event) context.Context {
	h.Audit(ctx, e)
	return ctx
}

func (h *hooks) eventTypes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.Type)
	}
	return out
}

type limiter struct{ deny bool }

func (l *limiter) Allow(*http.Request, string) (bool, time.Duration) { return !l.deny, 3 * time.Second }

// fixture is a SCIM service provider on a real HTTP server and store,
// with a token for connection "acme".
type fixture struct {
	st      store.Store
	hooks   *hooks
	limiter *limiter
	srv     *httptest.Server
	token   string
	ids     map[string]string // names saved by steps
}

func newFixture(t testing.TB, st store.Store) *fixture {
	t.Helper()
	f := &fixture{st: st, hooks: &hooks{left: map[string][]string{}}, limiter: &limiter{}, ids: map[string]string{}}
	h, err := scim.New(scim.Config{Store: st, Hooks: f.hooks, Limiter: f.limiter, MaxBody: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	_, f.token, err = scim.CreateToken(context.Background(), st, rand.Reader, "acme", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends one request to /scim/v2/acme with the fixture's token unless
// headers set Authorization.
func (f *fixture) do(t testing.TB, method, path, body string, headers ...string) response {
	t.Helper()
	url := f.srv.URL + "/scim/v2/acme" + f.subst(path)
	if strings.HasPrefix(path, "/scim/") {
		url = f.srv.URL + f.subst(path)
	}
	req, err := http.NewRequest(method, url, strings.NewReader(f.subst(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Set("Authorization", "Bearer "+f.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, path, raw)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/scim+json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return r
}

// subst replaces {name} with ids saved by earlier steps.
func (f *fixture) subst(s string) string {
	for k, v := range f.ids {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

// step is one request of a client's sequence.
type step struct {
	method, path, body string
	headers            []string
	status             int
	scimType           string // for errors
	save               string // remember the answer's id under this name
	check              func(t *testing.T, f *fixture, r response)
}

func (f *fixture) run(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		r := f.do(t, s.method, s.path, s.body, s.headers...)
		if r.status != s.status {
			t.Fatalf("step %d %s %s: status %d, want %d: %s", i, s.method, f.subst(s.path), r.status, s.status, r.raw)
		}
		if s.status >= 400 {
			if got, _ := r.body["scimType"].(string); got != s.scimType {
				t.Fatalf("step %d %s %s: scimType %q, want %q: %s", i, s.method, s.path, got, s.scimType, r.raw)
			}
			if schemas, _ := r.body["schemas"].([]any); len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
				t.Fatalf("step %d: not a SCIM error body: %s", i, r.raw)
			}
			if st, _ := r.body["status"].(string); st != strconv.Itoa(s.status) {
				t.Fatalf("step %d: error status %q, want %d", i, st, s.status)
			}
		}
		if s.save != "" {
			id, _ := r.body["id"].(string)
			if id == "" {
				t.Fatalf("step %d: no id to save: %s", i, r.raw)
			}
			f.ids[s.save] = id
		}
		if s.check != nil {
			s.check(t, f, r)
		}
	}
}

// total checks a ListResponse's totalResults and the ids it holds.
func total(n int, ids ...string) func(t *testing.T, f *fixture, r response) {
	return func(t *testing.T, f *fixture, r response) {
		t.Helper()
		if got, _ := r.body["totalResults"].(float64); int(got) != n {
			t.Fatalf("totalResults = %v, want %d: %s", r.body["totalResults"], n, r.raw)
		}
		var got []string
		res, _ := r.body["Resources"].([]any)
		for _, e := range res {
			got = append(got, e.(map[string]any)["id"].(string))
		}
		var want []string
		for _, id := range ids {
			want = append(want, f.subst(id))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Resources ids = %v, want %v", got, want)
		}
	}
}

// field checks one attribute of a resource answer by a dotted path.
func field(path string, want any) func(t *testing.T, f *fixture, r response) {
	return func(t *testing.T, f *fixture, r response) {
		t.Helper()
		if got := lookup(r.body, path); !equalJSON(got, want) {
			t.Fatalf("%s = %#v, want %#v: %s", path, got, want, r.raw)
		}
	}
}

func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range splitPath(path) {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[part]
	}
	return cur
}

// splitPath splits on "." but keeps a URN (with its dots) whole.
func splitPath(p string) []string {
	if strings.HasPrefix(p, scim.SchemaEnterprise+".") {
		return append([]string{scim.SchemaEnterprise}, strings.Split(strings.TrimPrefix(p, scim.SchemaEnterprise+"."), ".")...)
	}
	return strings.Split(p, ".")
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func all(checks ...func(t *testing.T, f *fixture, r response)) func(t *testing.T, f *fixture, r response) {
	return func(t *testing.T, f *fixture, r response) {
		t.Helper()
		for _, c := range checks {
			c(t, f, r)
		}
	}
}

// members checks a group answer's member ids.
func members(ids ...string) func(t *testing.T, f *fixture, r response) {
	return func(t *testing.T, f *fixture, r response) {
		t.Helper()
		var got []string
		list, _ := r.body["members"].([]any)
		for _, m := range list {
			got = append(got, m.(map[string]any)["value"].(string))
		}
		var want []string
		for _, id := range ids {
			want = append(want, f.subst(id))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("members = %v, want %v", got, want)
		}
	}
}

// deprovisioned checks which users the Deprovisioned hook saw so far.
func deprovisioned(names ...string) func(t *testing.T, f *fixture, r response) {
	return func(t *testing.T, f *fixture, r response) {
		t.Helper()
		f.hooks.mu.Lock()
		defer f.hooks.mu.Unlock()
		var want []string
		for _, n := range names {
			want = append(want, f.ids[n])
		}
		if !slices.Equal(f.hooks.deprov, want) {
			t.Fatalf("Deprovisioned calls = %v, want %v (%v)", f.hooks.deprov, want, names)
		}
	}
}
