package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testServer struct {
	srv      *Server
	httpURL  string
	grpcAddr string
	logs     *syncBuffer
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

func startTestServer(t *testing.T) *testServer {
	t.Helper()
	return startTestServerWith(t, nil)
}

// startTestServerWith lets a test adjust the configuration and pass
// options before the server starts.
func startTestServerWith(t testing.TB, mutate func(*config.Config), opts ...Option) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Store = "sqlite://" + filepath.Join(t.TempDir(), "ssogate.db")
	cfg.ShutdownDelay, cfg.ShutdownTimeout = 0, 5*time.Second
	cfg.APIKeys = []config.APIKey{
		{Name: "backend", SHA256: sha256Hex(testLoginKey), Scopes: []string{"login"}},
		{Name: "ops", SHA256: sha256Hex(testAdminKey), Scopes: []string{"admin"}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &syncBuffer{}
	srv, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, httpURL: "http://" + httpLis.Addr().String(), grpcAddr: grpcLis.Addr().String(),
		logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, grpcLis, httpLis) }()
	t.Cleanup(ts.stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err := http.Get(ts.httpURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ts
}

const (
	testLoginKey = "login-key-for-tests-0123456789abcdef"
	testAdminKey = "admin-key-for-tests-0123456789abcdef"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// bearer authenticates every call of a client connection with key.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// stop shuts the server down and waits for it; safe to call twice.
func (ts *testServer) stop() {
	ts.stopOnce.Do(func() {
		ts.cancel()
		<-ts.done
	})
}

func (ts *testServer) dial(t testing.TB, key ...string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if len(key) > 0 {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(key[0])))
	}
	cc, err := grpc.NewClient(ts.grpcAddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func get(t testing.TB, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestHealthPerService(t *testing.T) {
	ts := startTestServer(t)
	hc := healthpb.NewHealthClient(ts.dial(t))
	for _, svc := range append([]string{""}, serviceNames...) {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, want SERVING", svc, resp.Status)
		}
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v, want NotFound", err)
	}
}

func TestHTTPOperatorRoutes(t *testing.T) {
	ts := startTestServer(t)
	if code, body, _ := get(t, ts.httpURL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _, _ := get(t, ts.httpURL+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200", code)
	}
	// Drive a gRPC call so its metrics exist, then scrape.
	_, _ = ssogatev1.NewKeyServiceClient(ts.dial(t, testAdminKey)).ListSigningKeys(context.Background(), &ssogatev1.ListSigningKeysRequest{})
	code, body, hdr := get(t, ts.httpURL+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`ssogate_http_requests_total{code="200",method="GET",route="GET /healthz"} 1`,
		`ssogate_grpc_requests_total{code="OK",method="ListSigningKeys",service="ssogate.v1.KeyService"} 1`,
		`ssogate_grpc_request_duration_seconds_bucket`,
		`ssogate_http_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRESTGatewayReachesGRPC(t *testing.T) {
	ts := startTestServer(t)
	req, _ := http.NewRequest("GET", ts.httpURL+"/v1/connections", nil)
	req.Header.Set("X-Request-Id", "test-req-42")
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Connections []map[string]any `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode JSON body: %v", err)
	}
	if resp.StatusCode != http.StatusOK || len(body.Connections) != 0 {
		t.Fatalf("GET /v1/connections = %d %+v, want 200 with no connections", resp.StatusCode, body)
	}
	// The same request id is on the HTTP line and on the gRPC line behind it.
	logs := ts.logs.String()
	var httpLine, grpcLine bool
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"request_id":"test-req-42"`) {
			httpLine = httpLine || strings.Contains(line, `"msg":"http request"`)
			grpcLine = grpcLine || strings.Contains(line, `"method":"ListConnections"`)
		}
	}
	if !httpLine || !grpcLine {
		t.Errorf("request id not on both log lines (http %v, grpc %v):\n%s", httpLine, grpcLine, logs)
	}
}

func TestRequestIDRejectsForgery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc-123", "abc-123"},
		{"", ""},
		{"evil\"injected", ""},
		{strings.Repeat("a", 65), ""},
		{"line\nbreak", ""},
	} {
		if got := acceptRequestID(tc.in); got != tc.want {
			t.Errorf("acceptRequestID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDrainingTurnsNotReady(t *testing.T) {
	ts := startTestServer(t)
	hc := healthpb.NewHealthClient(ts.dial(t))
	ts.srv.setServing(false) // what shutdown does first
	// The public listener says only "not ready"; the detail (for the
	// operator listener) says why.
	if code, body, _ := get(t, ts.httpURL+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("/readyz while draining = %d %q, want 503 \"not ready\"", code, body)
	}
	rec := httptest.NewRecorder()
	ts.srv.readinessDetail(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("readiness detail while draining = %d %q, want 503 naming the cause", rec.Code, rec.Body.String())
	}
	resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: serviceNames[0]})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health while draining = %v %v, want NOT_SERVING", resp, err)
	}
	ts.srv.setServing(true)
}

// A refused login is one log line: the request line, with the reason.
func TestRefusalReasonOnTheRequestLine(t *testing.T) {
	ts := startTestServer(t)
	resp, err := http.PostForm(ts.httpURL+"/saml/nobody/acs", url.Values{"SAMLResponse": {"PHNhbWw+"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	// The line is written once the handler returns, which may be after the
	// headers reached us (a page larger than the write buffer): wait for it.
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); len(lines) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(ts.logs.String(), "\n") {
			if strings.Contains(l, `"request_id":"`+id+`"`) {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"reason":"CONNECTION_NOT_FOUND"`) || strings.Contains(lines[0], "PHNhbWw") {
		t.Fatalf("log lines of the request: %q", lines)
	}
}
