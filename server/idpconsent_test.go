package server

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ssogate/ssogate/consent"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/testenv"
)

// consentFixture: an IdP that sends unsolicited responses, a connection
// that accepts them (consent on, the default), and the product's app on a
// local server that records the codes it receives.
type consentFixture struct {
	*wireFixture
	idp   *unsolicitedIdP
	app   *httptest.Server
	mu    sync.Mutex
	codes []string
}

func newConsentFixture(t *testing.T) *consentFixture {
	t.Helper()
	cf := &consentFixture{idp: newUnsolicitedIdP(t)}
	cf.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := r.URL.Query().Get("code"); c != "" {
			cf.mu.Lock()
			cf.codes = append(cf.codes, c)
			cf.mu.Unlock()
		}
		fmt.Fprint(w, "<!doctype html><title>app</title><p id=app>app home</p>")
	}))
	t.Cleanup(cf.app.Close)
	cf.wireFixture = newWireFixture(t, []wireConn{{id: "portal", set: map[string]any{
		"identity_provider": cf.idp.identityProvider(), "allow_idp_initiated": true,
		"allowed_return_urls": []any{cf.app.URL + "/cb"}, "default_return_url": cf.app.URL + "/cb/home",
	}}})
	return cf
}

func (cf *consentFixture) received() []string {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	return append([]string(nil), cf.codes...)
}

var tokenField = regexp.MustCompile(`name="` + consent.FormField + `" value="([^"]+)"`)

// TestIdPInitiatedConsentOverHTTP: the ACS answers an unsolicited response
// with the consent page and no code; the button's token works once, only
// with the cookie set alongside it.
func TestIdPInitiatedConsentOverHTTP(t *testing.T) {
	cf := newConsentFixture(t)
	noRedirect := func(jar http.CookieJar) *http.Client {
		return &http.Client{Jar: jar, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	acs := cf.ts.httpURL + "/saml/portal/acs"
	cont := cf.ts.httpURL + "/saml/portal/continue"
	show := func(t *testing.T, jar http.CookieJar) (token string, page *http.Response, body string) {
		t.Helper()
		resp, err := noRedirect(jar).PostForm(acs, url.Values{"SAMLResponse": {cf.idp.respond(t, cf.spMetadata(t, "portal"), devAlice)}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := tokenField.FindStringSubmatch(string(b))
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("ACS = %d, want 200 with the consent page\n%s", resp.StatusCode, b)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Fatalf("ACS redirects to %q: a code without consent", loc)
		}
		return html.UnescapeString(m[1]), resp, string(b)
	}
	post := func(t *testing.T, client *http.Client, token string) *http.Response {
		t.Helper()
		resp, err := client.PostForm(cont, url.Values{consent.FormField: {token}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	t.Run("the page", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		_, resp, body := show(t, jar)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(body, "<script") {
			t.Errorf("the page has script or unsafe-inline: CSP %q", csp)
		}
		if !strings.Contains(body, "Continue to "+strings.TrimPrefix(cf.app.URL, "http://")) || !strings.Contains(body, devAlice.Email) {
			t.Errorf("the page does not name the app and the user:\n%s", body)
		}
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == consent.CookieName {
				cookie = c
			}
		}
		if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/saml/portal/" {
			t.Errorf("binding cookie %+v, want HttpOnly, SameSite=Strict, scoped to the connection", cookie)
		}
		if got := cf.received(); len(got) != 0 {
			t.Errorf("codes issued before consent: %d", len(got))
		}
	})

	t.Run("a token without its cookie fails, and is burnt", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		token, _, _ := show(t, jar)
		if resp := post(t, noRedirect(nil), token); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("continue without the cookie = %d, want 400", resp.StatusCode)
		}
		if resp := post(t, noRedirect(jar), token); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("continue with the cookie after a refused try = %d, want 400", resp.StatusCode)
		}
	})

	t.Run("another browser's cookie fails", func(t *testing.T) {
		victim, _ := cookiejar.New(nil)
		attacker, _ := cookiejar.New(nil)
		token, _, _ := show(t, attacker)
		show(t, victim) // the victim has a cookie of its own
		if resp := post(t, noRedirect(victim), token); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("continue with another browser's cookie = %d, want 400", resp.StatusCode)
		}
	})

	t.Run("the button works once", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		token, _, _ := show(t, jar)
		u, _ := url.Parse(cf.ts.httpURL + "/saml/portal/")
		saved := jar.Cookies(u)
		resp := post(t, noRedirect(jar), token)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("continue = %d %q, want 303 with a code", resp.StatusCode, resp.Header.Get("Location"))
		}
		ex, err := cf.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: loc.Query().Get("code")})
		if err != nil || ex.TokenSet.Identity.Email != devAlice.Email {
			t.Fatalf("ExchangeCode = %v, %v", ex, err)
		}
		// Replay: the same token with the same cookie again.
		jar.SetCookies(u, saved)
		if resp := post(t, noRedirect(jar), token); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("replayed continue = %d %q, want 400", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// browserCtx starts headless Chromium, or skips (fails under
// SSOGATE_TEST_REQUIRE=chromium).
func browserCtx(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium", "no chromium on PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-component-update", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 640))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestIdPInitiatedConsentInBrowser: a cross-site page auto-posting an
// attacker's valid unsolicited response lands the victim's browser on the
// consent page and issues nothing; pressing the button does issue a code.
// The page is screenshotted and checked with axe-core.
func TestIdPInitiatedConsentInBrowser(t *testing.T) {
	nodeModules := testenv.NodeModules(t)
	ctx := browserCtx(t)
	cf := newConsentFixture(t)
	response := cf.idp.respond(t, cf.spMetadata(t, "portal"), devAlice)
	// The attacker's page, on another site (localhost vs 127.0.0.1).
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>cute cats</title><form id=f method=post action="%s/saml/portal/acs">`+
			`<input type=hidden name=SAMLResponse value="%s"></form><script>document.getElementById("f").submit()</script>`,
			cf.ts.httpURL, html.EscapeString(response))
	}))
	t.Cleanup(evil.Close)
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(step, chromedp.Navigate(evilURL), chromedp.WaitVisible(chromedp.ID("continue"))); err != nil {
		t.Fatalf("cross-site post: %v", err)
	}
	heading, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(heading, "Continue to ") {
		t.Fatalf("heading %q", heading)
	}
	time.Sleep(300 * time.Millisecond)
	if got := cf.received(); len(got) != 0 {
		t.Fatalf("the cross-site post alone yielded %d codes", len(got))
	}

	png, err := chromedp.Run(step, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(os.TempDir(), "ssogate-consent.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	axe, err := os.ReadFile(filepath.Join(nodeModules, "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	type violation struct {
		ID, Impact, Help string
	}
	if _, err := chromedp.Run(step, chromedp.Evaluate[*runtime.RemoteObject](string(axe))); err != nil {
		t.Fatalf("inject axe-core: %v", err)
	}
	violations, err := chromedp.Run(step, chromedp.Evaluate[[]violation](
		`axe.run(document).then(r => r.violations.map(v => ({ID: v.id, Impact: v.impact, Help: v.help})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("axe %s (%s): %s", v.ID, v.Impact, v.Help)
		} else {
			t.Logf("axe %s (%s): %s", v.ID, v.Impact, v.Help)
		}
	}

	// The user presses the button: the app gets a code that exchanges.
	if err := chromedp.Do(step, chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("app"))); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		t.Fatalf("continue: %v\n%s", err, body)
	}
	got := cf.received()
	if len(got) != 1 {
		t.Fatalf("codes after the button: %d, want 1", len(got))
	}
	if _, err := cf.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: got[0]}); err != nil {
		t.Fatalf("ExchangeCode of the code from the button: %v", err)
	}
}
