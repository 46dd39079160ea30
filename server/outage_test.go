package server

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// cutProxy forwards TCP connections to a target until cut: then it closes
// every open connection and refuses new ones (closes them at once), as a
// database host that went away would look to its clients; restore lets
// connections through again.
type cutProxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis, target: target, conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { lis.Close(); p.setCut(true); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

// waitHealth polls the health service until name reports want.
func waitHealth(t *testing.T, h healthpb.HealthClient, name string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	var got healthpb.HealthCheckResponse_ServingStatus
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatalf("health %q: %v", name, err)
		}
		if got = resp.Status; got == want {
			return
		}
	}
	t.Fatalf("health %q = %s, want %s within 15s", name, got, want)
}

// TestPostgresOutage runs ssogate on PostgreSQL through a proxy, cuts it,
// and checks what callers see: UNAVAILABLE naming the store and nothing of
// the driver (no user, database, host or port), NOT_SERVING for the
// services that need the store and SERVING for ValidateToken, a bare "not
// ready" on the public /readyz; then restores it and checks recovery
// without a restart, with a session from before the outage still usable.
func TestPostgresOutage(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	dbHost, dbPort, _ := net.SplitHostPort(u.Host)
	u.Host = proxy.lis.Addr().String()
	_, proxyPort, _ := net.SplitHostPort(u.Host)
	f := newWireFixtureWith(t, []wireConn{{id: "acme"}}, func(c *config.Config) {
		c.Store = u.String()
		c.KEK = base64.StdEncoding.EncodeToString(make([]byte, 32))
	})
	cc := f.ts.dial(t, testLoginKey)
	h := healthpb.NewHealthClient(cc)
	ctx := context.Background()

	code := f.loginCode(t, "acme", "alice")
	ex, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	refresh, access := ex.TokenSet.RefreshToken, ex.TokenSet.AccessToken
	for _, name := range append(append([]string{}, storeDependent...), ValidateTokenHealthName) {
		waitHealth(t, h, name, healthpb.HealthCheckResponse_SERVING)
	}

	proxy.setCut(true)
	// Driver internals that must not reach a caller.
	secrets := []string{u.User.Username() + "@", strings.TrimPrefix(u.Path, "/"), dbHost + ":" + dbPort, proxyPort,
		"dial", "pgx", "pgconn", "failed to connect", "SQLSTATE"}
	wantUnavailable := func(what string, err error) {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != codes.Unavailable {
			t.Fatalf("%s during the outage = %v, want UNAVAILABLE", what, err)
		}
		if !strings.Contains(st.Message(), "store") {
			t.Errorf("%s: message %q does not name the store", what, st.Message())
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(st.Message(), s) {
				t.Errorf("%s: message %q reveals %q", what, st.Message(), s)
			}
		}
	}
	_, err = f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: refresh})
	wantUnavailable("RefreshToken", err)
	_, err = f.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo})
	wantUnavailable("StartLogin", err)
	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	_, err = admin.ListConnections(ctx, &ssogatev1.ListConnectionsRequest{})
	wantUnavailable("ListConnections", err)

	// REST: 503, same message.
	req, _ := http.NewRequest("GET", f.ts.httpURL+"/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	code503, body := do(t, req)
	if code503 != http.StatusServiceUnavailable {
		t.Errorf("REST during the outage = %d %s, want 503", code503, body)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(body, s) {
			t.Errorf("REST body %q reveals %q", body, s)
		}
	}

	for _, name := range storeDependent {
		waitHealth(t, h, name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	waitHealth(t, h, ValidateTokenHealthName, healthpb.HealthCheckResponse_SERVING)
	// Validation answers from memory meanwhile.
	v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: access})
	if err != nil || !v.Valid {
		t.Fatalf("ValidateToken during the outage = %v, %v; want valid", v, err)
	}
	rcode, ready, _ := get(t, f.ts.httpURL+"/readyz")
	if rcode != http.StatusServiceUnavailable || ready != "not ready\n" {
		t.Errorf("/readyz during the outage = %d %q, want 503 \"not ready\"", rcode, ready)
	}
	if !strings.Contains(f.ts.logs.String(), "store unavailable") {
		t.Error("the log does not say the store is unavailable")
	}

	proxy.setCut(false)
	for _, name := range storeDependent {
		waitHealth(t, h, name, healthpb.HealthCheckResponse_SERVING)
	}
	// Nothing lost: the session from before the outage refreshes.
	var rt *ssogatev1.RefreshTokenResponse
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rt, err = f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: refresh})
		if err == nil || status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("RefreshToken after recovery: %v", err)
	}
	if rt.TokenSet.Identity.GetSessionId() != ex.TokenSet.Identity.GetSessionId() {
		t.Fatalf("refreshed into session %q, want %q", rt.TokenSet.Identity.GetSessionId(), ex.TokenSet.Identity.GetSessionId())
	}
	if _, err := f.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo}); err != nil {
		t.Fatalf("StartLogin after recovery: %v", err)
	}
	if code, _, _ := get(t, f.ts.httpURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after recovery = %d", code)
	}
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
