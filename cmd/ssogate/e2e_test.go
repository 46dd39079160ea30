package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/testenv"
)

// lockedBuffer collects output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type devServer struct {
	base, grpcAddr, apiKey string
	dir                    string // --dir: its SQLite store is dir/ssogate.db
	logs                   *lockedBuffer
}

// startDev runs `ssogate dev` in-process on kernel-chosen loopback ports.
func startDev(t *testing.T, args ...string) *devServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan struct{})
	var runErr error
	dir := t.TempDir()
	go func() {
		defer close(done)
		runErr = run(ctx, append([]string{"dev", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--dir", dir}, args...),
			func(string) (string, bool) { return "", false }, stdout, stderr)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ssogate dev output:\n%s\n%s", stdout.String(), stderr.String())
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("ssogate dev did not stop within 10s")
		}
	})
	field := func(label string) string {
		m := regexp.MustCompile(label + `:\s+(\S+)`).FindStringSubmatch(stdout.String())
		if m == nil {
			return ""
		}
		return m[1]
	}
	for deadline := time.Now().Add(30 * time.Second); field("Dev API key") == ""; {
		select {
		case <-done:
			t.Fatalf("ssogate dev exited: %v\n%s", runErr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssogate dev did not come up:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &devServer{base: strings.TrimSuffix(field("Demo backend"), "/"), grpcAddr: field("gRPC"), apiKey: field("Dev API key"), dir: dir, logs: stderr}
}

func (d *devServer) login(t *testing.T) ssogatev1.LoginServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerKey(d.apiKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return ssogatev1.NewLoginServiceClient(cc)
}

// browser starts headless Chromium, or skips (fails under
// SSOGATE_TEST_REQUIRE=chromium) when there is none.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium", "no chromium on PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// signInAtIdP fills the test IdP's login form.
func signInAtIdP(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(step,
		chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), user),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
	); err != nil {
		t.Fatalf("sign in at the IdP: %v", err)
	}
}

// waitLocation waits until the browser is on a URL with the prefix.
func waitLocation(t *testing.T, ctx context.Context, prefix string) *url.URL {
	t.Helper()
	var loc string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err == nil && strings.HasPrefix(loc, prefix) {
			u, _ := url.Parse(loc)
			return u
		}
	}
	t.Fatalf("browser at %q, want a URL starting %q", loc, prefix)
	return nil
}

func TestBrowserLoginEndToEnd(t *testing.T) {
	ctx := browser(t)
	dev := startDev(t)
	login := dev.login(t)
	rpc := context.Background()

	// 1. The backend starts a login; the browser follows the redirect.
	start, err := login.StartLogin(rpc, &ssogatev1.StartLoginRequest{Email: "alice@example.com", ReturnTo: dev.base + "/app/landing", State: "st-123"})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(start.RedirectUrl)); err != nil {
		t.Fatal(err)
	}
	// 2. Sign in at the IdP; it posts to our ACS, which answers 303 to
	// return_to with a code.
	signInAtIdP(t, ctx, "alice")
	landing := waitLocation(t, ctx, dev.base+"/app/landing")
	code, state := landing.Query().Get("code"), landing.Query().Get("state")
	if code == "" || state != "st-123" {
		t.Fatalf("landed on %s, want code and state=st-123", landing)
	}
	// 3. The backend exchanges the code over gRPC.
	ex, err := login.ExchangeCode(rpc, &ssogatev1.ExchangeCodeRequest{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	set := ex.TokenSet
	if set.Identity.Email != "alice@example.com" || !strings.Contains(strings.Join(set.Identity.Groups, ","), "admins") {
		t.Errorf("identity = %+v", set.Identity)
	}
	// 4. The JWT verifies against the published JWKS with an independent
	// JOSE implementation.
	resp, err := http.Get(dev.base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(body, &jwks); err != nil {
		t.Fatalf("JWKS: %v\n%s", err, body)
	}
	tok, err := josejwt.ParseSigned(set.AccessToken, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := jwks.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", tok.Headers[0].KeyID)
	}
	var claims map[string]any
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("JWT does not verify with the JWKS: %v", err)
	}
	if claims["email"] != "alice@example.com" || claims["sid"] != set.Identity.SessionId || claims["conn"] != "dev" ||
		claims["uid"] != "alice" || claims["typ"] != nil {
		t.Errorf("claims = %v", claims)
	}
	if v, err := login.ValidateToken(rpc, &ssogatev1.ValidateTokenRequest{AccessToken: set.AccessToken}); err != nil || !v.Valid {
		t.Fatalf("ValidateToken before logout: %v %v", v, err)
	}
	// The code works once.
	if _, err := login.ExchangeCode(rpc, &ssogatev1.ExchangeCodeRequest{Code: code}); err == nil {
		t.Error("a code was exchanged twice")
	}

	// 5. SP-initiated Single Logout through the IdP and back.
	out, err := login.StartLogout(rpc, &ssogatev1.StartLogoutRequest{AccessToken: set.AccessToken, ReturnTo: dev.base + "/app/bye"})
	if err != nil {
		t.Fatal(err)
	}
	if out.RedirectUrl == "" {
		t.Fatal("StartLogout gave no IdP redirect")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(out.RedirectUrl)); err != nil {
		t.Fatal(err)
	}
	waitLocation(t, ctx, dev.base+"/app/bye")

	// 6. The session is gone: refresh and validation fail.
	if _, err := login.RefreshToken(rpc, &ssogatev1.RefreshTokenRequest{RefreshToken: set.RefreshToken}); err == nil {
		t.Error("refresh token still works after logout")
	}
	v, err := login.ValidateToken(rpc, &ssogatev1.ValidateTokenRequest{AccessToken: set.AccessToken})
	if err != nil || v.Valid || v.Reason != "revoked" {
		t.Errorf("ValidateToken after logout = %v %v, want invalid (revoked)", v, err)
	}

	// 7. Nothing secret reached the logs.
	logs := dev.logs.String()
	for name, secret := range map[string]string{"code": code, "access token": set.AccessToken,
		"refresh token": set.RefreshToken, "API key": dev.apiKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the %s", name)
		}
	}
	if strings.Contains(logs, "SAMLResponse") || strings.Contains(logs, "<saml") || strings.Contains(logs, "PHNhbWw") {
		t.Error("the logs hold SAML XML")
	}
}

// TestDemoPage clicks through the page a newcomer sees at / of `ssogate
// dev`: sign in, refresh, log out, and see the token refused.
func TestDemoPage(t *testing.T) {
	ctx := browser(t)
	dev := startDev(t)
	text := func(sel string) string {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		v, err := chromedp.Run(step, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}
	click := func(sel string) {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(step, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(dev.base+"/")); err != nil {
		t.Fatal(err)
	}
	click("#login")
	signInAtIdP(t, ctx, "alice")
	waitLocation(t, ctx, dev.base+"/")
	if got := text("#email"); got != "alice@example.com" {
		t.Fatalf("demo shows email %q", got)
	}
	if roles := text("#roles"); !strings.Contains(roles, "admin") || !strings.Contains(roles, "developer") {
		t.Errorf("roles = %q, want admin and developer (alice is in admins and eng)", roles)
	}
	if claims := text("#jwt-claims"); !strings.Contains(claims, `"sid"`) || !strings.Contains(claims, `"tenant": "example"`) {
		t.Errorf("decoded claims lack sid/tenant: %s", claims)
	}
	// waitMessage polls the result line, which changes after the post and
	// redirect that a click starts.
	waitMessage := func(want string) {
		t.Helper()
		var msg string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			step, cancel := context.WithTimeout(ctx, 2*time.Second)
			v, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("#message")))
			cancel()
			if err == nil { // errors while the page navigates are expected
				if msg = v; strings.HasPrefix(msg, want) {
					return
				}
			}
		}
		t.Fatalf("message %q, want %q", msg, want)
	}
	click("#refresh")
	waitMessage("Refreshed")
	click("#logout")
	waitMessage("Logged out")
	click("#validate")
	waitMessage("ValidateToken: not valid (revoked).")
}
