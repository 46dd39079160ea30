package server

import (
	"context"
	"strings"
	"testing"
	"time"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// A successful ValidateToken (the hot path a backend may call on every
// request it serves) is counted, not logged; a refused one keeps its line.
func TestValidTokenChecksAreNotLogged(t *testing.T) {
	ts := startTestServer(t)
	login := ssogatev1.NewLoginServiceClient(ts.dial(t, testLoginKey))
	ctx := context.Background()
	good := mint(t, ts.srv, "sess-quiet")
	for range 3 {
		res, err := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: good})
		if err != nil || !res.Valid {
			t.Fatalf("ValidateToken: %v %v", res, err)
		}
	}
	res, err := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: good + "x"})
	if err != nil || res.Valid {
		t.Fatalf("tampered token: %v %v", res, err)
	}
	lines := func() (n int) {
		for _, l := range strings.Split(ts.logs.String(), "\n") {
			if strings.Contains(l, `"msg":"grpc request"`) && strings.Contains(l, `"method":"ValidateToken"`) {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); lines() == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	if n := lines(); n != 1 {
		t.Fatalf("%d ValidateToken log lines, want 1 (the refusal only):\n%s", n, ts.logs.String())
	}
	_, body, _ := get(t, ts.httpURL+"/metrics")
	if want := `ssogate_grpc_requests_total{code="OK",method="ValidateToken",service="ssogate.v1.LoginService"} 4`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
