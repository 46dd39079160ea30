package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// replica is one `ssogate serve` process of a multi-replica deployment.
type replica struct {
	*process
	login ssogatev1.LoginServiceClient
	audit ssogatev1.AuditServiceClient
	cc    *grpc.ClientConn // for the other services
}

func dialReplica(t testing.TB, p *process, key string) replica {
	t.Helper()
	cc, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerKey(key)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return replica{process: p, login: ssogatev1.NewLoginServiceClient(cc), audit: ssogatev1.NewAuditServiceClient(cc), cc: cc}
}

// postACS posts an IdP's form to one replica's ACS and returns the status
// and Location.
func postACS(t testing.TB, r replica, connectionID string, posted devidp.Posted) (int, string) {
	t.Helper()
	form := url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm("http://"+r.httpAddr+"/saml/"+connectionID+"/acs", form)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

func TestReplicasBehaveAsOneService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	r, _ := startReplicas(t, map[string]any{
		"email_domains":     []string{"example.com"},
		"attribute_mapping": map[string]any{"groups": map[string]any{"names": []string{devidp.GroupsAttribute}}},
	})
	ctx := context.Background()

	// A login started on replica 1 ...
	start, err := r[0].login.StartLogin(ctx, &ssogatev1.StartLoginRequest{Email: "alice@example.com", ReturnTo: "https://app.example.test/cb", State: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar}, start.RedirectUrl, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if posted.ACSURL != replicaExternalURL+"/saml/acme/acs" {
		t.Fatalf("IdP posts to %s", posted.ACSURL)
	}
	// ... completes its ACS on replica 2 ...
	code, loc := postACS(t, r[1], "acme", posted)
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "https://app.example.test/cb?") {
		t.Fatalf("ACS on replica 2: %d %q", code, loc)
	}
	u, _ := url.Parse(loc)
	// ... and its exchange on replica 3.
	ex, err := r[2].login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: u.Query().Get("code")})
	if err != nil {
		t.Fatalf("ExchangeCode on replica 3: %v", err)
	}
	access := ex.TokenSet.AccessToken
	for i := range r {
		v, err := r[i].login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: access})
		if err != nil || !v.Valid {
			t.Fatalf("replica %d: token not valid: %v %v", i+1, v, err)
		}
	}

	// The same SAMLResponse replayed on any replica is rejected.
	for i := range r {
		if code, _ := postACS(t, r[i], "acme", posted); code != http.StatusBadRequest {
			t.Errorf("replay on replica %d: status %d, want 400", i+1, code)
		}
	}
	ev, err := r[0].audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", Type: "login.failed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 3 {
		t.Errorf("audit has %d login.failed events, want 3 replays", len(ev.Events))
	}
	for _, e := range ev.Events {
		if e.Reason != ssogatev1.RejectionReason_REJECTION_REASON_ASSERTION_REPLAYED {
			t.Errorf("replay rejected as %v (%s)", e.Reason, e.Message)
		}
	}

	// RevokeSubject on replica 1: the others refuse the token at once.
	if _, err := r[0].login.RevokeSubject(ctx, &ssogatev1.RevokeSubjectRequest{ConnectionId: "acme", NameId: "alice@example.com", Reason: "offboarded"}); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for i := 1; i < 3; i++ {
		for {
			v, err := r[i].login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: access})
			if err != nil {
				t.Fatal(err)
			}
			if !v.Valid && v.Reason == "revoked" {
				t.Logf("replica %d refuses the token %s after RevokeSubject on replica 1", i+1, time.Since(revokedAt).Round(time.Millisecond))
				break
			}
			if time.Since(revokedAt) > 3*time.Second {
				t.Fatalf("replica %d still accepts the token 3s after RevokeSubject", i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, err := r[2].login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: ex.TokenSet.RefreshToken}); err == nil {
		t.Error("refresh token of a revoked subject still works")
	}
}

// replicaExternalURL is the external URL every replica shares (a load
// balancer would sit there).
const replicaExternalURL = "http://sso.example.test"

// startReplicas starts three `ssogate serve` processes at once on one fresh
// PostgreSQL schema, with one configuration: same store, KEK, keys,
// external URL and connection "acme" (extra put over its defaults) to a
// devidp IdP that trusts their SP metadata. Starting them together makes
// migrations, key bootstrap and connection seeding race, as they do in a
// rolling deploy.
func startReplicas(t testing.TB, extra map[string]any) ([3]replica, *devidp.IdP) {
	t.Helper()
	reps, idp := startServeProcesses(t, buildBinary(t), storetest.PostgresDSN(t), 3, extra, nil)
	return [3]replica(reps), idp
}

// startServeProcesses starts n `ssogate serve` processes of bin at once on
// storeURL, configured alike (KEK, an API key with the login, admin and
// directory scopes, replicaExternalURL, connection "acme" with extra put
// over its defaults, to a devidp IdP in this process that is then given
// their SP metadata), each with env added to its environment.
func startServeProcesses(tb testing.TB, bin, storeURL string, n int, extra map[string]any, env []string) ([]replica, *devidp.IdP) {
	tb.Helper()
	mux := http.NewServeMux()
	idpServer := httptest.NewServer(mux)
	tb.Cleanup(idpServer.Close)
	idp, err := devidp.New(idpServer.URL+"/idp", devidp.DefaultUsers, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	mux.Handle("/idp/", http.StripPrefix("/idp", idp.Handler()))

	apiKey := "replica-test-key-" + hex.EncodeToString(randomBytes(tb, 8))
	sum := sha256.Sum256([]byte(apiKey))
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate.Raw}))
	conn := map[string]any{
		"id": "acme", "tenant_id": "acme-inc", "state": "CONNECTION_STATE_ACTIVE",
		"identity_provider": map[string]any{
			"entity_id": idpServer.URL + "/idp/metadata", "sso_url": idpServer.URL + "/idp/sso",
			"certificates": []any{map[string]any{"pem": certPEM}},
		},
		"allowed_return_urls": []string{"https://app.example.test/"},
	}
	maps.Copy(conn, extra)
	cfgYAML, err := yaml.Marshal(map[string]any{"external_url": replicaExternalURL, "connections": []any{conn}})
	if err != nil {
		tb.Fatal(err)
	}
	cfgFile := filepath.Join(tb.TempDir(), "ssogate.yaml")
	if err := os.WriteFile(cfgFile, cfgYAML, 0o600); err != nil {
		tb.Fatal(err)
	}
	env = append([]string{
		"SSOGATE_STORE=" + storeURL,
		"SSOGATE_KEK=" + base64.StdEncoding.EncodeToString(randomBytes(tb, 32)),
		"SSOGATE_API_KEYS=backend:" + hex.EncodeToString(sum[:]) + ":login+admin+directory",
		"SSOGATE_SHUTDOWN_TIMEOUT=2s",
	}, env...)
	procs := make([]*process, n)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() { procs[i] = startProcess(tb, bin, []string{"--config", cfgFile}, env) })
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	reps := make([]replica, n)
	for i, p := range procs {
		reps[i] = dialReplica(tb, p, apiKey)
	}
	resp, err := http.Get("http://" + reps[0].httpAddr + "/saml/acme/metadata")
	if err != nil {
		tb.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := idp.RegisterServiceProvider("acme", md); err != nil {
		tb.Fatal(err)
	}
	return reps, idp
}

// loginOn signs user in through connection acme end to end on one replica
// (StartLogin, the devidp IdP, the ACS, ExchangeCode) and returns the access
// token.
func loginOn(t testing.TB, r replica, user string) string {
	t.Helper()
	ctx := context.Background()
	start, err := r.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar}, start.RedirectUrl, user, user)
	if err != nil {
		t.Fatal(err)
	}
	code, loc := postACS(t, r, "acme", posted)
	if code != http.StatusSeeOther {
		t.Fatalf("ACS: %d", code)
	}
	u, _ := url.Parse(loc)
	ex, err := r.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: u.Query().Get("code")})
	if err != nil {
		t.Fatal(err)
	}
	return ex.TokenSet.AccessToken
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
