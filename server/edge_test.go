package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/config"
)

// countingReader is an endless JSON-ish body that counts what was read.
type countingReader struct {
	n, limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > c.limit-c.n {
		p = p[:c.limit-c.n]
	}
	for i := range p {
		p[i] = ' '
	}
	atomic.AddInt64(&c.n, int64(len(p)))
	return len(p), nil
}

// TestRESTBodyBoundedAndKeyFirst: a 64 MB body without a key is refused
// with 401 before it is read; with a key, a body over max_request_bytes is
// 413 with a message that names the setting; CreateConnection with IdP
// metadata XML fits the default.
func TestRESTBodyBoundedAndKeyFirst(t *testing.T) {
	ts := startTestServer(t)
	for _, key := range []string{"", "not-a-configured-key"} {
		body := &countingReader{limit: 64 << 20}
		req, _ := http.NewRequest(http.MethodPost, ts.httpURL+"/v1/connections", body)
		req.ContentLength = body.limit
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The server may close before the client finished sending.
			if atomic.LoadInt64(&body.n) >= body.limit {
				t.Fatalf("key %q: the whole body was sent: %v", key, err)
			}
			continue
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(msg), "API key") {
			t.Errorf("key %q: %d %s, want 401 naming the API key", key, resp.StatusCode, msg)
		}
		if read := atomic.LoadInt64(&body.n); read > 16<<20 {
			t.Errorf("key %q: %d bytes of the body were taken before the refusal", key, read)
		}
	}

	post := func(body []byte, chunked bool) (int, string) {
		t.Helper()
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length: chunked encoding
		}
		req, _ := http.NewRequest(http.MethodPost, ts.httpURL+"/v1/connections", r)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	big := append([]byte(`{"connection":{"id":"x","tenant_id":"t"},"idp_metadata_xml":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	big = append(big, `"}`...)
	for _, chunked := range []bool{false, true} {
		if code, msg := post(big, chunked); code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "max_request_bytes") {
			t.Errorf("chunked=%v: 2 MiB body: %d %s, want 413 naming max_request_bytes", chunked, code, msg)
		}
	}
	md := idpMetadata(t, newDevIdP(t, "https://idp.example.com/idp"))
	padded := md + "<!--" + strings.Repeat(" ", 200<<10) + "-->"
	req, _ := json.Marshal(map[string]any{"connection": map[string]any{"id": "acme", "tenant_id": "t"}, "idp_metadata_xml": padded})
	if code, msg := post(req, false); code != http.StatusOK {
		t.Errorf("CreateConnection with %d KB of metadata XML: %d %s", len(req)>>10, code, msg)
	}
}

// TestRESTSizeErrorIs413: gRPC's "message larger than max"
// (ResourceExhausted) maps to 413; other ResourceExhausted stays 429.
func TestRESTSizeErrorIs413(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"), http.StatusRequestEntityTooLarge},
		{status.Error(codes.ResourceExhausted, "quota exceeded"), http.StatusTooManyRequests},
	} {
		rec := httptest.NewRecorder()
		restError(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, rec, httptest.NewRequest("POST", "/v1/x", nil), tc.err)
		if rec.Code != tc.want {
			t.Errorf("%v: HTTP %d, want %d", tc.err, rec.Code, tc.want)
		}
	}
}

// TestOperatorListener: with operator_addr, /metrics, /v1/ and detailed
// readiness leave the public listener and answer on the operator one;
// gRPC reflection leaves the public gRPC listener and answers on the
// operator one.
func TestOperatorListener(t *testing.T) {
	opLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startTestServerWith(t, func(c *config.Config) { c.OperatorAddr = opLis.Addr().String() }, WithOperatorListener(opLis))
	opURL := "http://" + opLis.Addr().String()
	call := func(base, method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, route := range []struct{ method, path string }{
		{"GET", "/metrics"}, {"GET", "/v1/connections"}, {"GET", "/v1/signing-keys"}, {"GET", "/v1/audit-events"}, {"GET", "/v1/jwks"},
	} {
		if code := call(ts.httpURL, route.method, route.path); code != http.StatusNotFound {
			t.Errorf("public %s %s = %d, want 404", route.method, route.path, code)
		}
		if code := call(opURL, route.method, route.path); code != http.StatusOK {
			t.Errorf("operator %s %s = %d, want 200", route.method, route.path, code)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/.well-known/jwks.json"} {
		if code := call(ts.httpURL, "GET", path); code != http.StatusOK {
			t.Errorf("public %s = %d, want 200", path, code)
		}
	}
	// Public readiness says only "not ready"; the operator's says why.
	ts.srv.draining.Store(true)
	_, pub, _ := get(t, ts.httpURL+"/readyz")
	_, op, _ := get(t, opURL+"/readyz")
	ts.srv.draining.Store(false)
	if pub != "not ready\n" || !strings.Contains(op, "shutting down") {
		t.Errorf("readyz while draining: public %q, operator %q", pub, op)
	}

	listServices := func(target string) ([]string, error) {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(context.Background())
		if err != nil {
			return nil, err
		}
		// A refused stream shows its status on Recv, whatever Send said.
		_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.Name)
		}
		return names, nil
	}
	if names, err := listServices(ts.grpcAddr); status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection on the public gRPC listener: %v %v, want Unimplemented", names, err)
	}
	names, err := listServices(opLis.Addr().String())
	if err != nil || !strings.Contains(strings.Join(names, ","), "ssogate.v1.LoginService") {
		t.Errorf("reflection on the operator listener: %v %v", names, err)
	}
}

// TestReflectionOnPublicWithoutOperator: without operator_addr nothing
// moves (one listener, as before).
func TestReflectionOnPublicWithoutOperator(t *testing.T) {
	ts := startTestServer(t)
	cc := ts.dial(t)
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(context.Background())
	if err == nil {
		err = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		t.Errorf("reflection without operator_addr: %v", err)
	}
	if code, _, _ := get(t, ts.httpURL+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics without operator_addr = %d", code)
	}
}
