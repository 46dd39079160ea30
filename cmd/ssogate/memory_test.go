package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// procStatusKB reads a "VmRSS:"-style field of /proc/<pid>/status in KiB.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read memory from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse %s: %v", field, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// nearLimitForm is an ACS form body just under the default 512 KiB bound:
// a well-formed, unsigned Response of thousands of attribute values, inside
// every per-document XML bound, so it is parsed in full before the missing
// signature refuses it.
func nearLimitForm(issuer string) string {
	head := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_load" Version="2.0" IssueInstant="` +
		time.Now().UTC().Format(time.RFC3339) + `"><saml:Issuer>` + issuer + `</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
		`<saml:Assertion ID="_a" Version="2.0" IssueInstant="` + time.Now().UTC().Format(time.RFC3339) + `"><saml:Issuer>` + issuer + `</saml:Issuer><saml:AttributeStatement><saml:Attribute Name="groups">`
	tail := `</saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>`
	// 4,000 values: inside the per-document element bound, so the whole
	// document is parsed; their length fills the body bound.
	const values = 4000
	form := func(pad int) string {
		var b strings.Builder
		b.WriteString(head)
		for i := range values {
			fmt.Fprintf(&b, "<saml:AttributeValue>group-%d-%s</saml:AttributeValue>", i, strings.Repeat("x", pad))
		}
		b.WriteString(tail)
		return url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(b.String()))}}.Encode()
	}
	lo, hi := 0, 200
	for lo < hi { // the longest values whose form fits 512 KiB
		mid := (lo + hi + 1) / 2
		if len(form(mid)) <= 512<<10 {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return form(lo)
}

// TestMemoryBoundedUnderACSFlood runs `ssogate serve` as a child process
// and posts 200 near-limit (512 KiB) ACS bodies at once: its resident set
// stays within 256 MiB of idle, and /healthz and ValidateToken (with a
// real token) keep answering meanwhile. Excess posts get 503 with
// Retry-After.
func TestMemoryBoundedUnderACSFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary under load")
	}
	bin := buildBinary(t)
	mux := http.NewServeMux()
	idpServer := httptest.NewServer(mux)
	t.Cleanup(idpServer.Close)
	idp, err := devidp.New(idpServer.URL+"/idp", devidp.DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/idp/", http.StripPrefix("/idp", idp.Handler()))
	apiKey := "memory-test-key-" + hex.EncodeToString(randomBytes(t, 8))
	sum := sha256.Sum256([]byte(apiKey))
	cfgYAML, err := yaml.Marshal(map[string]any{
		"external_url": "http://sso.example.test",
		"connections": []any{map[string]any{
			"id": "acme", "tenant_id": "acme-inc", "state": "CONNECTION_STATE_ACTIVE",
			"identity_provider": map[string]any{
				"entity_id": idpServer.URL + "/idp/metadata", "sso_url": idpServer.URL + "/idp/sso",
				"certificates": []any{map[string]any{"pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate.Raw}))}},
			},
			"allowed_return_urls": []string{"https://app.example.test/"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "ssogate.yaml")
	if err := os.WriteFile(cfgFile, cfgYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"SSOGATE_API_KEYS=backend:" + hex.EncodeToString(sum[:]) + ":login",
		"SSOGATE_KEK=" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"SSOGATE_SHUTDOWN_TIMEOUT=2s",
	}
	p := startProcess(t, bin, []string{"--config", cfgFile, "--store", "sqlite://" + filepath.Join(t.TempDir(), "ssogate.db")}, env)
	pid := p.cmd.Process.Pid
	r := dialReplica(t, p, apiKey)
	md, err := http.Get("http://" + p.httpAddr + "/saml/acme/metadata")
	if err != nil {
		t.Fatal(err)
	}
	spMD, _ := io.ReadAll(md.Body)
	md.Body.Close()
	if err := idp.RegisterServiceProvider("acme", spMD); err != nil {
		t.Fatal(err)
	}
	// A real login, for a real token to validate under load.
	ctx := context.Background()
	start, err := r.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar}, start.RedirectUrl, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	code, loc := postACS(t, r, "acme", posted)
	u, _ := url.Parse(loc)
	if code != http.StatusSeeOther || u == nil {
		t.Fatalf("login: ACS %d %q", code, loc)
	}
	ex, err := r.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: u.Query().Get("code")})
	if err != nil {
		t.Fatal(err)
	}
	access := ex.TokenSet.AccessToken

	body := nearLimitForm(idpServer.URL + "/idp/metadata")
	post := func() (int, string) {
		resp, err := http.Post("http://"+p.httpAddr+"/saml/acme/acs", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			return 0, ""
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	// Warm up: one post of the same shape, then measure idle.
	if code, _ := post(); code != http.StatusBadRequest {
		t.Fatalf("warm-up post: %d, want 400", code)
	}
	time.Sleep(500 * time.Millisecond)
	idle := procStatusKB(t, pid, "VmRSS")

	var peak atomic.Int64
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			if v := procStatusKB(t, pid, "VmRSS"); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	// Probes: /healthz and ValidateToken, each within 2 s, all along.
	var probes, probeFailures atomic.Int64
	var worst atomic.Int64
	bg.Go(func() {
		hc := &http.Client{Timeout: 2 * time.Second}
		for {
			t0 := time.Now()
			ok := true
			if resp, err := hc.Get("http://" + p.httpAddr + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
				ok = false
			} else {
				resp.Body.Close()
			}
			vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			v, err := r.login.ValidateToken(vctx, &ssogatev1.ValidateTokenRequest{AccessToken: access})
			cancel()
			if err != nil || !v.Valid {
				ok = false
			}
			probes.Add(1)
			if !ok {
				probeFailures.Add(1)
			}
			if d := time.Since(t0).Milliseconds(); d > worst.Load() {
				worst.Store(d)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	var mu sync.Mutex
	counts := map[int]int{}
	missingRetry := 0
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 200 {
		wg.Go(func() {
			code, retry := post()
			mu.Lock()
			counts[code]++
			if code == http.StatusServiceUnavailable && retry == "" {
				missingRetry++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	bg.Wait()
	hwm := procStatusKB(t, pid, "VmHWM")

	t.Logf("200 posts of %d KiB in %s: %v; RSS idle %d MiB, peak %d MiB (+%d MiB), VmHWM %d MiB; %d probes, %d failed, slowest %d ms",
		len(body)>>10, elapsed.Round(time.Millisecond), counts, idle>>10, peak.Load()>>10, (peak.Load()-idle)>>10, hwm>>10,
		probes.Load(), probeFailures.Load(), worst.Load())
	if counts[http.StatusBadRequest]+counts[http.StatusServiceUnavailable] != 200 {
		t.Errorf("answers %v, want only 400 (refused) and 503 (shed)", counts)
	}
	if missingRetry > 0 {
		t.Errorf("%d answers 503 without Retry-After", missingRetry)
	}
	if grew := peak.Load() - idle; grew > 256<<10 {
		t.Errorf("RSS grew by %d MiB under the flood, bound 256 MiB", grew>>10)
	}
	if grew := hwm - idle; grew > 256<<10 {
		t.Errorf("VmHWM is %d MiB above idle, bound 256 MiB", grew>>10)
	}
	if probes.Load() == 0 || probeFailures.Load() > 0 {
		t.Errorf("%d of %d health/ValidateToken probes failed during the flood", probeFailures.Load(), probes.Load())
	}
}
