package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/client"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/server"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingTransport counts the requests that reach the JWKS.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwks.json") {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func newVerifier(t *testing.T, g *ssogate, mutate func(*client.VerifierConfig)) (*client.Verifier, *clock, *countingTransport) {
	t.Helper()
	clk := &clock{t: time.Now()}
	ct := &countingTransport{}
	cfg := client.VerifierConfig{Issuer: g.base, Audience: audience, HTTPClient: &http.Client{Transport: ct}, Now: clk.now}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := client.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, clk, ct
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var hdr struct{ Kid string }
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// withHeader re-encodes raw's header with fields changed; the signature
// then no longer covers it, which the checks before the signature must
// catch first.
func withHeader(t *testing.T, raw string, set map[string]any) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var hdr map[string]any
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		hdr[k] = v
	}
	b, _ := json.Marshal(hdr)
	return base64.RawURLEncoding.EncodeToString(b) + "." + parts[1] + "." + parts[2]
}

func TestVerifyOffline(t *testing.T) {
	g := startSSOGate(t)
	set := g.signIn(t, "alice")
	v, _, _ := newVerifier(t, g, nil)
	id, err := v.Verify(context.Background(), set.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != set.Identity.Subject || id.TenantID != "tenant-acme" || id.ConnectionID != "acme" ||
		id.SessionID != set.Identity.SessionId || !id.HasRole("admin") || id.Claims["iss"] != g.base {
		t.Errorf("identity %+v does not match the token set's %v", id, set.Identity)
	}
	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"empty", "", client.ErrMissing},
		{"garbage", "not-a-jwt", client.ErrMalformed},
		{"typ JWT", withHeader(t, set.AccessToken, map[string]any{"typ": "JWT"}), client.ErrType},
		{"alg changed", withHeader(t, set.AccessToken, map[string]any{"alg": "RS256"}), client.ErrAlgorithm},
		{"alg none", withHeader(t, set.AccessToken, map[string]any{"alg": "none"}), client.ErrAlgorithm},
		{"signature", set.AccessToken[:len(set.AccessToken)-4] + "AAAA", client.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.raw)
			if !errors.Is(err, tc.want) || !errors.Is(err, client.ErrInvalid) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*client.VerifierConfig)
		want   error
	}{
		{"wrong issuer", func(c *client.VerifierConfig) {
			c.Issuer = "https://other.example"
			c.JWKSURL = g.base + "/.well-known/jwks.json"
		}, client.ErrIssuer},
		{"wrong audience", func(c *client.VerifierConfig) { c.Audience = "https://other.example" }, client.ErrAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _, _ := newVerifier(t, g, tc.mutate)
			if _, err := v.Verify(context.Background(), set.AccessToken); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("expired and not yet valid, with leeway", func(t *testing.T) {
		v, clk, _ := newVerifier(t, g, func(c *client.VerifierConfig) { c.Leeway = 10 * time.Second })
		exp := set.ExpiresAt.AsTime()
		clk.add(time.Until(exp) + 5*time.Second)
		if _, err := v.Verify(context.Background(), set.AccessToken); err != nil {
			t.Errorf("5 s past exp, within the 10 s leeway: %v", err)
		}
		clk.add(10 * time.Second)
		if _, err := v.Verify(context.Background(), set.AccessToken); !errors.Is(err, client.ErrExpired) {
			t.Errorf("15 s past exp: %v, want ErrExpired", err)
		}
		clk.add(-time.Hour)
		if _, err := v.Verify(context.Background(), set.AccessToken); !errors.Is(err, client.ErrNotYetValid) {
			t.Errorf("an hour early: %v, want ErrNotYetValid", err)
		}
	})
}

// A key ssogate rotates in is picked up on its first token; made-up kids
// cost one JWKS fetch a second at most.
func TestKeyRotationAndUnknownKidRefetch(t *testing.T) {
	srvClock := &clock{t: time.Now()}
	g := startSSOGate(t, server.WithClock(srvClock.now))
	ctx := context.Background()
	v, clk, fetches := newVerifier(t, g, nil)
	first := g.signIn(t, "alice")
	if _, err := v.Verify(ctx, first.AccessToken); err != nil {
		t.Fatal(err)
	}
	if n := fetches.n.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for the first token, want 1", n)
	}
	for i := range 50 {
		forged := withHeader(t, first.AccessToken, map[string]any{"kid": "made-up-" + string(rune('a'+i%26))})
		if _, err := v.Verify(ctx, forged); !errors.Is(err, client.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v, want ErrUnknownKey", err)
		}
	}
	if n := fetches.n.Load(); n != 1 {
		t.Errorf("%d JWKS fetches after 50 unknown kids within the second, want still 1", n)
	}
	clk.add(1100 * time.Millisecond)
	for range 20 {
		_, _ = v.Verify(ctx, withHeader(t, first.AccessToken, map[string]any{"kid": "made-up"}))
	}
	if n := fetches.n.Load(); n != 2 {
		t.Errorf("%d JWKS fetches a second later, want 2", n)
	}

	// The JWKS is served with max-age=60: a known kid is served from the
	// cache until then, and fetched again after.
	clk.add(30 * time.Second)
	if _, err := v.Verify(ctx, first.AccessToken); err != nil || fetches.n.Load() != 2 {
		t.Errorf("within max-age: %v, %d fetches, want the cache (2)", err, fetches.n.Load())
	}
	clk.add(31 * time.Second)
	if _, err := v.Verify(ctx, first.AccessToken); err != nil || fetches.n.Load() != 3 {
		t.Errorf("past max-age: %v, %d fetches, want a refetch (3)", err, fetches.n.Load())
	}

	if _, err := g.admin.Key.RotateSigningKey(ctx, &ssogatev1.RotateSigningKeyRequest{}); err != nil {
		t.Fatal(err)
	}
	// The successor signs once it has been published for an hour; the
	// session's refresh token then gets an access token signed by it.
	srvClock.add(time.Hour + time.Minute)
	clk.add(time.Hour + time.Minute)
	refreshed, err := g.login.Login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: first.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	second := refreshed.TokenSet
	if kidOf(t, second.AccessToken) == kidOf(t, first.AccessToken) {
		t.Fatalf("rotation did not change the signing key (kid %s)", kidOf(t, first.AccessToken))
	}
	before := fetches.n.Load()
	if _, err := v.Verify(ctx, second.AccessToken); err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	if n := fetches.n.Load(); n != before+1 {
		t.Errorf("%d JWKS fetches for the new kid, want 1", n-before)
	}
}

// Offline, a revoked session's token is accepted until it expires;
// Online refuses it once the positive cache (OnlineCacheTTL) has passed.
func TestRevocationOnlineAndOffline(t *testing.T) {
	g := startSSOGate(t)
	ctx := context.Background()
	set := g.signIn(t, "alice")
	offline, _, _ := newVerifier(t, g, nil)
	online, clk, _ := newVerifier(t, g, func(c *client.VerifierConfig) { c.Online = g.login.Login })
	for _, v := range []*client.Verifier{offline, online} {
		if _, err := v.Verify(ctx, set.AccessToken); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.login.Login.RevokeSubject(ctx, &ssogatev1.RevokeSubjectRequest{ConnectionId: "acme", Subject: set.Identity.Subject}); err != nil {
		t.Fatal(err)
	}
	if _, err := online.Verify(ctx, set.AccessToken); err != nil {
		t.Errorf("within OnlineCacheTTL the cached yes stands: %v", err)
	}
	clk.add(1100 * time.Millisecond)
	if _, err := online.Verify(ctx, set.AccessToken); !errors.Is(err, client.ErrRevoked) {
		t.Errorf("online after revocation: %v, want ErrRevoked", err)
	}
	if _, err := offline.Verify(ctx, set.AccessToken); err != nil {
		t.Errorf("offline after revocation, before exp: %v, want accepted (documented)", err)
	}
}

// Both middlewares refuse a missing, expired or wrong-audience token with
// 401 (UNAUTHENTICATED) naming the check, and hand the identity on.
func TestMiddlewareRefusals(t *testing.T) {
	g := startSSOGate(t)
	set := g.signIn(t, "alice")
	v, _, _ := newVerifier(t, g, nil)
	other, _, _ := newVerifier(t, g, func(c *client.VerifierConfig) { c.Audience = "https://other.example" })
	expired, eclk, _ := newVerifier(t, g, nil)
	eclk.add(time.Hour)

	protected := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := client.IdentityFrom(r.Context())
		_, _ = w.Write([]byte(id.Subject))
	})
	cases := []struct {
		name, token, want string
		v                 *client.Verifier
	}{
		{"missing", "", "missing", v},
		{"expired", set.AccessToken, "expired", expired},
		{"wrong audience", set.AccessToken, "wrong audience", other},
	}
	for _, tc := range cases {
		t.Run("http/"+tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.v.HTTPMiddleware(protected))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&body)
			challenge := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") ||
				!strings.Contains(body["error_description"]+body["error"], tc.want) {
				t.Errorf("%d %q %v, want 401 naming %q", resp.StatusCode, challenge, body, tc.want)
			}
			if tc.token != "" && (!strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, tc.want)) {
				t.Errorf("challenge %q lacks invalid_token and %q", challenge, tc.want)
			}
		})
		t.Run("grpc/"+tc.name, func(t *testing.T) {
			hc := healthClient(t, tc.v)
			ctx := context.Background()
			if tc.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
			}
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("unary: %v, want UNAUTHENTICATED naming %q", err, tc.want)
			}
			stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("stream: %v, want UNAUTHENTICATED naming %q", err, tc.want)
			}
		})
	}
	t.Run("valid token passes both, roles and tenant checked", func(t *testing.T) {
		srv := httptest.NewServer(v.HTTPMiddleware(client.RequireTenant("tenant-acme")(client.RequireRole("admin")(protected))))
		defer srv.Close()
		deny := httptest.NewServer(v.HTTPMiddleware(client.RequireRole("billing")(protected)))
		defer deny.Close()
		for url, want := range map[string]int{srv.URL: http.StatusOK, deny.URL: http.StatusForbidden} {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+set.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s: %d, want %d", url, resp.StatusCode, want)
			}
		}
		hc := healthClient(t, v)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+set.AccessToken)
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("unary with a valid token: %v", err)
		}
	})
}

// healthClient serves gRPC health behind v's interceptors.
func healthClient(t *testing.T, v *client.Verifier) healthpb.HealthClient {
	t.Helper()
	lis, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor()), grpc.StreamInterceptor(v.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}
