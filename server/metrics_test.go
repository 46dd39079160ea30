package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/buildinfo"
)

// Log lines give duration in seconds (a number), and gRPC lines name the
// API key that called (its name, never the key).
func TestLogLinesDurationAndCaller(t *testing.T) {
	ts := startTestServer(t)
	if _, err := ssogatev1.NewKeyServiceClient(ts.dial(t, testAdminKey)).ListSigningKeys(context.Background(), &ssogatev1.ListSigningKeysRequest{}); err != nil {
		t.Fatal(err)
	}
	get(t, ts.httpURL+"/healthz")
	var sawGRPC, sawHTTP bool
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec["msg"] != "grpc request" && rec["msg"] != "http request" {
			continue
		}
		d, ok := rec["duration"].(float64)
		if !ok || d <= 0 || d > 30 {
			t.Errorf("duration %v (%T) on %s, want seconds as a number", rec["duration"], rec["duration"], line)
		}
		if strings.Contains(line, testAdminKey) {
			t.Errorf("API key on a log line: %s", line)
		}
		switch {
		case rec["msg"] == "grpc request" && rec["method"] == "ListSigningKeys":
			sawGRPC = true
			if rec["api_key"] != "ops" {
				t.Errorf("gRPC line api_key = %v, want the key's name ops: %s", rec["api_key"], line)
			}
		case rec["msg"] == "http request" && rec["route"] == "GET /healthz":
			sawHTTP = true
		}
	}
	if !sawGRPC || !sawHTTP {
		t.Fatalf("log lines missing (grpc %v, http %v):\n%s", sawGRPC, sawHTTP, ts.logs.String())
	}
}

// ACS outcomes carry the connection; a deleted connection's series go, both
// when deleted here and when another replica deleted it (the sweep).
func TestMetricsPerConnection(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}, {id: "beta"}, {id: "gamma"}})
	ctx := context.Background()
	f.loginCode(t, "acme", devAlice.Name)
	f.ts.srv.connectionSweep(ctx)
	m := f.metrics(t)
	if v := m[metricSeries("ssogate_acs_outcomes_total", "connection", "acme", "reason", "SUCCESS")]; v != 1 {
		t.Errorf("acs outcome SUCCESS for acme = %v, want 1", v)
	}
	fp := fingerprint(f.idp.Certificate.Raw)
	expiry := func(conn string) string {
		return metricSeries("ssogate_idp_certificate_expiry_seconds", "connection", conn, "sha256", fp)
	}
	for _, c := range []string{"acme", "beta", "gamma"} {
		if m[expiry(c)] <= 0 {
			t.Errorf("%s = %v, want the seconds left", expiry(c), m[expiry(c)])
		}
	}
	bi := buildinfo.Get()
	if v := m[metricSeries("ssogate_build_info", "goversion", bi.GoVersion, "revision", bi.Revision, "version", bi.Version)]; v != 1 {
		t.Errorf("ssogate_build_info = %v, want 1 labelled %+v", v, bi)
	}

	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	if _, err := admin.DeleteConnection(ctx, &ssogatev1.DeleteConnectionRequest{ConnectionId: "gamma"}); err != nil {
		t.Fatal(err)
	}
	if err := f.ts.srv.store.DeleteConnection(ctx, "beta"); err != nil { // as another replica would
		t.Fatal(err)
	}
	f.ts.srv.connectionSweep(ctx)
	m = f.metrics(t)
	if _, ok := m[expiry("acme")]; !ok {
		t.Error("the live connection lost its certificate series")
	}
	for _, c := range []string{"beta", "gamma"} {
		if _, ok := m[expiry(c)]; ok {
			t.Errorf("%s still exported after the connection was deleted", expiry(c))
		}
	}
}
