package main

// The example backends in examples/ run against `ssogate dev` as a user
// would run them: their own process, the REST API, the JWKS. A login goes
// through the dev IdP's form without a browser.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/testenv"
)

// startExample runs an example backend and waits until it listens.
func startExample(t *testing.T, appURL string, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if l := <-logs; t.Failed() {
			t.Logf("%s output:\n%s", cmd.Path, l)
		}
	})
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(appURL + "/api/me"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 90s", cmd.Path, appURL)
		}
	}
}

// loginThroughExample plays the browser: the example's /login, the dev
// IdP's form, the ACS, the example's /callback; it returns the access
// token the example set as a cookie.
func loginThroughExample(t *testing.T, appURL, user string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(appURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("/login = %d, want 303 to the IdP", resp.StatusCode)
	}
	posted, err := devidp.SignIn(context.Background(), &http.Client{Jar: jar, Timeout: 10 * time.Second}, resp.Header.Get("Location"), user, user)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = noFollow.PostForm(posted.ACSURL, url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(callback, appURL+"/callback?") {
		t.Fatalf("ACS = %d to %q, want 303 to the example's callback", resp.StatusCode, callback)
	}
	resp, err = noFollow.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var shown struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &shown) == nil && shown.AccessToken != "" {
		return shown.AccessToken // the Go example shows it
	}
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback = %d: %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(appURL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "token" {
			return c.Value
		}
	}
	t.Fatal("the example set no token cookie")
	return ""
}

func getMe(t *testing.T, appURL, token string) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, appURL+"/api/me", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body
}

// esmDir copies ESM scripts into a folder whose node_modules is the test
// tools' (ESM resolution ignores NODE_PATH).
func esmDir(t *testing.T, nm string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(nm, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const discoverScript = `import * as oidc from "openid-client";
import { createRemoteJWKSet, jwtVerify } from "jose";
const [issuer, key, token, audience] = process.argv.slice(2);
const config = await oidc.discovery(new URL(issuer), "backend", undefined, oidc.ClientSecretBasic(key), { execute: [oidc.allowInsecureRequests] });
const md = config.serverMetadata();
const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(md.jwks_uri)),
  { issuer: md.issuer, audience, typ: "at+jwt", algorithms: md.id_token_signing_alg_values_supported });
const intro = await oidc.tokenIntrospection(config, token);
console.log(JSON.stringify({ sub: payload.sub, active: intro.active, introspectedSub: intro.sub }));
`

func TestExamplesAgainstDev(t *testing.T) {
	nm := testenv.NodeModules(t)
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import jwt, cryptography").Run(); err != nil {
		testenv.Missing(t, "python", "no /usr/bin/python3 with PyJWT and cryptography (apt-get install python3-jwt)")
	}
	nodeApp := "http://" + freePort(t)
	pyApp := "http://" + freePort(t)
	goAddr := freePort(t)
	goApp := "http://" + goAddr
	_, goPort, _ := net.SplitHostPort(goAddr)
	goBin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", goBin, "../../examples/go").CombinedOutput(); err != nil {
		t.Fatalf("build the Go example: %v\n%s", err, out)
	}
	d := startDev(t, "--allow-return-url", nodeApp+"/callback", "--allow-return-url", pyApp+"/callback", "--allow-return-url", goApp+"/callback")
	login := d.login(t)
	env := append(os.Environ(), "SSOGATE_URL="+d.base, "SSOGATE_API_KEY="+d.apiKey, "NO_COLOR=1")

	src, err := os.ReadFile("../../examples/node/server.mjs")
	if err != nil {
		t.Fatal(err)
	}
	nodeDir := esmDir(t, nm, map[string]string{"server.mjs": string(src), "discover.mjs": discoverScript})
	nodeCmd := exec.Command("node", "server.mjs")
	nodeCmd.Dir, nodeCmd.Env = nodeDir, append(env, "APP_URL="+nodeApp)
	startExample(t, nodeApp, nodeCmd)

	pyPath, _ := filepath.Abs("../../examples/python/app.py")
	pyCmd := exec.Command(python, pyPath)
	pyCmd.Env = append(env, "APP_URL="+pyApp)
	startExample(t, pyApp, pyCmd)

	goCmd := exec.Command(goBin)
	goCmd.Env = append(env, "APP_URL="+goApp, "PORT="+goPort, "SSOGATE_GRPC="+d.grpcAddr)
	startExample(t, goApp, goCmd)

	for _, ex := range []struct{ name, app, user string }{{"node", nodeApp, "alice"}, {"python", pyApp, "bob"}, {"go", goApp, "alice"}} {
		t.Run(ex.name, func(t *testing.T) {
			token := loginThroughExample(t, ex.app, ex.user)
			code, _, me := getMe(t, ex.app, token)
			sub, _ := me["sub"].(string)
			if code != http.StatusOK || sub == "" || me["tenant"] != "example" {
				t.Fatalf("/api/me with the token = %d %v, want 200 with the identity", code, me)
			}
			if code, challenge, _ := getMe(t, ex.app, ""); code != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer") {
				t.Errorf("/api/me without a token = %d %q, want 401 with a Bearer challenge", code, challenge)
			}
			if ex.name == "node" {
				// An off-the-shelf client finds everything from the issuer.
				cmd := exec.Command("node", "discover.mjs", d.base, d.apiKey, token, d.base)
				cmd.Dir = nodeDir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("openid-client discovery: %v\n%s", err, out)
				}
				var got map[string]any
				if err := json.Unmarshal(out, &got); err != nil || got["sub"] != sub || got["active"] != true || got["introspectedSub"] != sub {
					t.Errorf("openid-client: %s, want sub %s, active", out, sub)
				}
			}
			if _, err := login.RevokeSubject(context.Background(), &ssogatev1.RevokeSubjectRequest{ConnectionId: "dev", Subject: sub}); err != nil {
				t.Fatal(err)
			}
			if ex.name == "go" {
				time.Sleep(1100 * time.Millisecond) // client's OnlineCacheTTL
			}
			code, challenge, body := getMe(t, ex.app, token)
			reason, _ := body["reason"].(string)
			if code != http.StatusUnauthorized || !strings.Contains(challenge+reason, "revoked") {
				t.Errorf("/api/me after RevokeSubject = %d %q %v, want 401 naming the revocation", code, challenge, body)
			}
		})
	}
}
