package server

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store/storetest"
)

// withConnectionCache sets the connection cache's poll interval and
// staleness bound (tests).
func withConnectionCache(every, stale time.Duration) Option {
	return func(s *Server) { s.registry.every, s.registry.stale = every, stale }
}

// Two replicas on one PostgreSQL database: A answers connection lookups
// from memory, honours a change made through B within a second, sees its
// own changes at once, and once it cannot read the change counter for
// longer than its bound it reads the store on every lookup rather than
// serve what it remembers.
func TestConnectionCacheAcrossReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host) // A reaches the database through it
	u.Host = proxy.lis.Addr().String()
	kek := base64.StdEncoding.EncodeToString(make([]byte, 32))
	const stale = 2 * time.Second
	a := newWireFixtureWith(t, []wireConn{{id: "acme"}}, func(c *config.Config) { c.Store, c.KEK = u.String(), kek },
		withConnectionCache(0, stale))
	// B polls too seldom to notice anything by itself during the test.
	b := startTestServerWith(t, func(c *config.Config) { c.Store, c.KEK = dsn, kek }, withConnectionCache(time.Hour, time.Hour))
	ctx := context.Background()
	start := &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo}
	a.startLogin(t, start)
	metadata := func() int {
		code, _, _ := get(t, a.ts.httpURL+"/saml/acme/metadata")
		return code
	}

	// From memory: the database is gone, the connection is still served,
	// for as long as the bound allows, then no longer.
	if code := metadata(); code != http.StatusOK {
		t.Fatalf("metadata before the cut: %d", code)
	}
	proxy.setCut(true)
	cut := time.Now()
	if code := metadata(); code != http.StatusOK {
		t.Fatalf("metadata just after the database went away: %d, want 200 from memory", code)
	}
	for metadata() == http.StatusOK {
		if time.Since(cut) > stale+2*time.Second {
			t.Fatalf("still served from memory %s after the change counter became unreadable (bound %s)", time.Since(cut), stale)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("with the counter unreadable, lookups went to the store after %s (bound %s)", time.Since(cut).Round(time.Millisecond), stale)
	proxy.setCut(false)
	for deadline := time.Now().Add(10 * time.Second); metadata() != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A does not serve the connection again after the database came back")
		}
	}
	a.startLogin(t, start)

	// A change through B reaches A within a second.
	setState := func(admin ssogatev1.ConnectionServiceClient, state ssogatev1.ConnectionState) {
		t.Helper()
		if _, err := admin.UpdateConnection(ctx, &ssogatev1.UpdateConnectionRequest{
			Connection: &ssogatev1.Connection{Id: "acme", State: state}, ForceActivation: true,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}); err != nil {
			t.Fatal(err)
		}
	}
	adminB := ssogatev1.NewConnectionServiceClient(b.dial(t, testAdminKey))
	setState(adminB, ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED)
	changed := time.Now()
	for {
		_, err := a.login.StartLogin(ctx, start)
		if status.Code(err) == codes.FailedPrecondition {
			break
		}
		if err != nil {
			t.Fatalf("StartLogin at A after B disabled the connection: %v", err)
		}
		if time.Since(changed) > connCacheStale {
			t.Fatalf("A still starts logins %s after B disabled the connection (bound %s)", time.Since(changed), connCacheStale)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("B's change honoured at A after %s", time.Since(changed).Round(time.Millisecond))

	// A replica's own change: at once (B would not poll for an hour).
	loginB := ssogatev1.NewLoginServiceClient(b.dial(t, testLoginKey))
	if _, err := loginB.StartLogin(ctx, start); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("StartLogin at B of the connection B disabled: %v, want FAILED_PRECONDITION", err)
	}
	setState(adminB, ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE)
	if _, err := loginB.StartLogin(ctx, start); err != nil {
		t.Fatalf("StartLogin at B right after B activated the connection: %v", err)
	}
}
