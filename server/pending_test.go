package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// Two connections in the config file, one whose IdP metadata URL is down
// at first start: the service starts and is ready, the other connection
// logs users in, the pending one is reported (readiness detail, metrics,
// audit log) and refused with a clear reason, and it is served as soon as
// its IdP answers.
func TestPendingConfigConnectionServedOnceIdPAnswers(t *testing.T) {
	md := &switchableMetadata{}
	md.set("down", http.StatusBadGateway)
	mdServer := httptest.NewServer(md)
	t.Cleanup(mdServer.Close)

	f := newWireFixtureWith(t, []wireConn{{id: "up"}}, func(c *config.Config) {
		c.AllowPrivateFetch = true // the test's IdP is plain http on loopback
		c.Connections = append(c.Connections, map[string]any{
			"id": "late", "tenant_id": "tenant-late", "state": "CONNECTION_STATE_ACTIVE",
			"identity_provider":   map[string]any{"metadata_url": mdServer.URL + "/metadata"},
			"allowed_return_urls": []any{wireReturnTo},
		})
	})
	ctx := context.Background()

	// The public /readyz says only "ready"; the detail (the operator
	// listener's /readyz) names the pending connection and its error.
	detail := func() (int, string) {
		rec := httptest.NewRecorder()
		f.ts.srv.readinessDetail(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body, _ := get(t, f.ts.httpURL+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("public /readyz = %d %q, want 200 ready and no detail", code, body)
	}
	code, body := detail()
	if code != http.StatusOK || !strings.Contains(body, "late:") || !strings.Contains(body, "502") {
		t.Fatalf("readiness detail = %d %q, want 200 naming the pending connection and its error", code, body)
	}
	pendingSeries := metricSeries("ssogate_connection_pending", "connection", "late")
	if v := f.metrics(t)[pendingSeries]; v != 1 {
		t.Errorf("%s = %v, want 1", pendingSeries, v)
	}
	evs, err := f.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "late", Type: "connection.pending"})
	if err != nil || len(evs.Events) != 1 || !strings.Contains(evs.Events[0].Message, "502") {
		t.Fatalf("audit connection.pending: %v %v", evs, err)
	}

	// The other connection serves logins.
	ex, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, "up", devAlice.Name)})
	if err != nil || ex.TokenSet.GetIdentity().GetConnectionId() != "up" {
		t.Fatalf("login through the healthy connection: %v %v", ex, err)
	}
	// The pending one is refused, saying why.
	_, err = f.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "late", ReturnTo: wireReturnTo})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "pending") {
		t.Fatalf("StartLogin on the pending connection: %v, want UNAVAILABLE saying it is pending", err)
	}

	md.set(idpMetadata(t, f.idp), http.StatusOK)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body = detail()
		if !strings.Contains(body, "late") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection still pending 20s after its IdP answered: %q", body)
		}
	}
	if _, ok := f.metrics(t)[pendingSeries]; ok {
		t.Errorf("%s still exported once served", pendingSeries)
	}
	if err := f.idp.RegisterServiceProvider("late", f.spMetadata(t, "late")); err != nil {
		t.Fatal(err)
	}
	ex, err = f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, "late", devAlice.Name)})
	if err != nil || ex.TokenSet.GetIdentity().GetConnectionId() != "late" {
		t.Fatalf("login through the formerly pending connection: %v %v", ex, err)
	}
}
