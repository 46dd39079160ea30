package server

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/telemetry"
)

// otlpReceiver is an OTLP/gRPC trace endpoint in the test process: the
// real exporter sends to it over the wire, as it would to a collector.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	raw   []string
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw = append(r.raw, protojson.Format(req))
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) snapshot() ([]*tracepb.Span, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), strings.Join(r.raw, "\n")
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &otlpReceiver{}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, rec)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return rec, lis.Addr().String()
}

// A login traced end to end, exported by the OTLP exporter configured from
// OTEL_* variables: the ACS request's trace holds SAML validation and the
// store calls down to the code; ExchangeCode over gRPC joins the backend's
// trace through the trace context it sends. No span carries the code, the
// SAML response or a key.
func TestTracesOverOTLP(t *testing.T) {
	rec, addr := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_SERVICE_NAME", "ssogate-test")
	ctx := context.Background()
	tracing, err := telemetry.Setup(ctx, os.LookupEnv, "test")
	if err != nil || !tracing.Enabled {
		t.Fatalf("telemetry.Setup: %v (enabled %v)", err, tracing != nil && tracing.Enabled)
	}
	t.Cleanup(func() { _ = tracing.Shutdown(context.Background()) })

	f := newWireFixture(t, []wireConn{{id: "acme"}}, WithTracing(tracing))
	samlResponse, relay := f.signedResponse(t, "acme", devAlice.Name)
	acs := f.postACS(t, "acme", samlResponse, relay)
	code := wantCodeRedirect(t, acs, wireReturnTo)

	// The backend: its own tracer, its span around the call, trace context
	// sent in gRPC metadata by otelgrpc's client handler.
	backendTP := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = backendTP.Shutdown(context.Background()) })
	cc, err := grpc.NewClient(f.ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(testLoginKey)),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(backendTP), otelgrpc.WithPropagators(propagation.TraceContext{}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	bctx, backendSpan := backendTP.Tracer("backend").Start(ctx, "backend: finish login")
	ex, err := ssogatev1.NewLoginServiceClient(cc).ExchangeCode(bctx, &ssogatev1.ExchangeCodeRequest{Code: code})
	backendSpan.End()
	if err != nil {
		t.Fatal(err)
	}
	backendTrace := backendSpan.SpanContext().TraceID()

	var spans []*tracepb.Span
	var raw string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := tracing.ForceFlush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		spans, raw = rec.snapshot()
		if hasSpan(spans, "ssogate.v1.LoginService/ExchangeCode") && hasSpan(spans, "POST /saml/{connection_id}/acs") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d spans, without the ACS and ExchangeCode ones:\n%s", len(spans), spanNames(spans))
		}
	}
	if !strings.Contains(raw, "ssogate-test") {
		t.Error("OTEL_SERVICE_NAME not on the exported resource")
	}

	// The ACS trace: HTTP server span → SAML validation (which reads the
	// pending request) → the one transaction that completes the login.
	acsSpan := findSpan(spans, "POST /saml/{connection_id}/acs")
	if acsSpan.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("ACS span kind %v, want server", acsSpan.Kind)
	}
	inACS := descendants(spans, acsSpan)
	for _, name := range []string{"saml.ValidateResponse", "store.GetPendingRequest", "store.CompleteLogin"} {
		if !hasSpan(inACS, name) {
			t.Errorf("ACS trace lacks %s; it has:\n%s", name, spanNames(inACS))
		}
	}
	if v := findSpan(inACS, "saml.ValidateResponse"); v != nil && v.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("validation span of an accepted login has status %v", v.Status)
	}

	// ExchangeCode joined the backend's trace.
	exSpan := findSpan(spans, "ssogate.v1.LoginService/ExchangeCode")
	if hex.EncodeToString(exSpan.TraceId) != backendTrace.String() || len(exSpan.ParentSpanId) == 0 {
		t.Errorf("ExchangeCode span trace %x parent %x, want the backend's trace %s", exSpan.TraceId, exSpan.ParentSpanId, backendTrace)
	}
	if !hasSpan(descendants(spans, exSpan), "store.RedeemCode") {
		t.Errorf("ExchangeCode trace lacks store.RedeemCode:\n%s", spanNames(descendants(spans, exSpan)))
	}

	// No secrets in any span, and the request log line names the trace.
	for _, secret := range []string{code, samlResponse, ex.TokenSet.AccessToken, ex.TokenSet.RefreshToken, testLoginKey} {
		if strings.Contains(raw, secret) {
			t.Errorf("a secret (%.12s…) reached the exported spans", secret)
		}
	}
	acsTrace := hex.EncodeToString(acsSpan.TraceId)
	found := false
	for _, line := range strings.Split(f.ts.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"request_id":"`+acs.requestID+`"`) {
			found = strings.Contains(line, `"trace_id":"`+acsTrace+`"`)
		}
	}
	if !found {
		t.Errorf("the ACS request's log line lacks trace_id %s", acsTrace)
	}
}

func hasSpan(spans []*tracepb.Span, name string) bool { return findSpan(spans, name) != nil }

func findSpan(spans []*tracepb.Span, name string) *tracepb.Span {
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// descendants returns root and the spans below it.
func descendants(spans []*tracepb.Span, root *tracepb.Span) []*tracepb.Span {
	if root == nil {
		return nil
	}
	in := map[string]bool{string(root.SpanId): true}
	out := []*tracepb.Span{root}
	for grew := true; grew; {
		grew = false
		for _, s := range spans {
			if !in[string(s.SpanId)] && in[string(s.ParentSpanId)] {
				in[string(s.SpanId)] = true
				out = append(out, s)
				grew = true
			}
		}
	}
	return out
}

func spanNames(spans []*tracepb.Span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString("  " + s.Name + "\n")
	}
	return b.String()
}

// TestCallerTraceWithTracingOff: with no exporter there are no spans, but
// a caller's W3C trace context still reaches the log lines, over gRPC and
// HTTP, so a backend can find its calls in ssogate's logs by trace id.
func TestCallerTraceWithTracingOff(t *testing.T) {
	ts := startTestServerWith(t, nil)
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traceparent := "00-" + traceID + "-" + spanID + "-01"

	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent, "x-request-id", "trace-off-grpc")
	login := ssogatev1.NewLoginServiceClient(ts.dial(t, testLoginKey))
	if _, err := login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: "not-a-code"}); status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.NotFound {
		t.Fatalf("ExchangeCode of an unknown code: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.httpURL+"/saml/nobody/metadata", nil)
	req.Header.Set("traceparent", traceparent)
	req.Header.Set("X-Request-Id", "trace-off-http")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for _, want := range []struct{ msg, id string }{{"grpc request", "trace-off-grpc"}, {"http request", "trace-off-http"}} {
		// The line is written once the handler returns, which may be just
		// after the client has its answer.
		line := ""
		for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, l := range strings.Split(ts.logs.String(), "\n") {
				if strings.Contains(l, `"msg":"`+want.msg+`"`) && strings.Contains(l, `"request_id":"`+want.id+`"`) {
					line = l
				}
			}
		}
		if line == "" {
			t.Fatalf("no %q log line with request_id %s in:\n%s", want.msg, want.id, ts.logs.String())
		}
		if !strings.Contains(line, `"trace_id":"`+traceID+`"`) || !strings.Contains(line, `"span_id":"`+spanID+`"`) {
			t.Errorf("%s line lacks the caller's trace context: %s", want.msg, line)
		}
	}
}
