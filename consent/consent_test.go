package consent

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// mapStore is a single-use Store in memory; the server's store-backed one
// is tested over the wire in package server.
type mapStore struct {
	mu   sync.Mutex
	rows map[string]row
}

type row struct {
	binding, payload []byte
	expires          time.Time
	used             bool
}

func (m *mapStore) PutConsent(_ context.Context, conn, id string, binding, payload []byte, expiresAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[conn+"/"+id] = row{binding: binding, payload: payload, expires: expiresAt}
	return nil
}

func (m *mapStore) ConsumeConsent(_ context.Context, conn, id string, now time.Time) ([]byte, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[conn+"/"+id]
	if !ok || r.used || !now.Before(r.expires) {
		return nil, nil, fmt.Errorf("%w: unknown, used or expired", ErrRefused)
	}
	r.used = true
	m.rows[conn+"/"+id] = r
	return r.binding, r.payload, nil
}

var tokenRE = regexp.MustCompile(`name="consent_token" value="([^"]+)"`)

func TestAskConfirm(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c, err := New(Config{Store: &mapStore{rows: map[string]row{}}, Now: func() time.Time { return now }, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(t *testing.T) (token string, cookie *http.Cookie) {
		t.Helper()
		w := httptest.NewRecorder()
		p := Prompt{ConnectionID: "acme", App: "app.example.com", User: "alice@acme.com", Action: "/saml/acme/continue",
			Then: "https://app.example.com", Payload: []byte("login")}
		if err := c.Ask(context.Background(), w, p, "/saml/acme/"); err != nil {
			t.Fatal(err)
		}
		body := w.Body.String()
		if !strings.Contains(body, "Continue to app.example.com?") || strings.Contains(body, "<script") {
			t.Fatalf("page:\n%s", body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://app.example.com;") {
			t.Fatalf("CSP %q: the button's redirect target must be admitted", csp)
		}
		return tokenRE.FindStringSubmatch(body)[1], w.Result().Cookies()[0]
	}
	confirm := func(token string, cookie *http.Cookie) ([]byte, error) {
		r := httptest.NewRequest("POST", "/saml/acme/continue", strings.NewReader(url.Values{FormField: {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != nil {
			r.AddCookie(cookie)
		}
		return c.Confirm(context.Background(), httptest.NewRecorder(), r, "acme", "/saml/acme/")
	}

	token, cookie := ask(t)
	if cookie.Name != CookieName || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", cookie)
	}
	if got, err := confirm(token, cookie); err != nil || string(got) != "login" {
		t.Fatalf("Confirm = %q, %v", got, err)
	}
	if _, err := confirm(token, cookie); err == nil {
		t.Fatal("a token worked twice")
	}

	token, cookie = ask(t)
	now = now.Add(DefaultTTL)
	if _, err := confirm(token, cookie); err == nil {
		t.Fatal("an expired token worked")
	}

	token, _ = ask(t)
	_, other := ask(t)
	if _, err := confirm(token, other); err == nil {
		t.Fatal("a token worked with another browser's cookie")
	}
}
