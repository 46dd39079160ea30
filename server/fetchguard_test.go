package server

import (
	"context"
	"log/slog"
	"net"
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

// withFetchTrust makes the guarded metadata client trust srv's certificate.
func withFetchTrust(srv *httptest.Server) Option {
	return WithFetchTLSConfig(srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone())
}

// TestMetadataFetchGuarded: without allow_private_fetch, a metadata URL on
// loopback is refused before anything is read, with one generic message
// for an open and a closed port; with it, what the URL answered is never
// echoed unless it is SAML metadata.
func TestMetadataFetchGuarded(t *testing.T) {
	ctx := context.Background()
	md := &switchableMetadata{}
	md.set(idpMetadata(t, newDevIdP(t, "https://idp.example.com/idp")), http.StatusOK)
	tlsIdP := httptest.NewTLSServer(md)
	t.Cleanup(tlsIdP.Close)
	closedLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLis.Addr().String()
	closedLis.Close()

	create := func(admin ssogatev1.ConnectionServiceClient, id, u string) error {
		_, err := admin.CreateConnection(ctx, &ssogatev1.CreateConnectionRequest{
			Connection: &ssogatev1.Connection{Id: id, TenantId: "t"}, IdpMetadataUrl: u})
		return err
	}

	guarded := startTestServerWith(t, nil, withFetchTrust(tlsIdP))
	admin := ssogatev1.NewConnectionServiceClient(guarded.dial(t, testAdminKey))
	errOpen := create(admin, "open", tlsIdP.URL+"/metadata")
	errClosed := create(admin, "closed", "https://"+closed+"/metadata")
	errMeta := create(admin, "meta", "https://169.254.169.254/latest/meta-data/")
	for _, err := range []error{errOpen, errClosed, errMeta} {
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "metadata could not be fetched: address not allowed") {
			t.Errorf("guarded fetch: %v, want InvalidArgument ... address not allowed", err)
		}
	}
	if status.Convert(errOpen).Message() != status.Convert(errClosed).Message() {
		t.Errorf("open port says %q, closed port says %q", status.Convert(errOpen).Message(), status.Convert(errClosed).Message())
	}
	if md.fetches() != 0 {
		t.Errorf("the guarded server reached the loopback IdP %d times", md.fetches())
	}

	open := startTestServerWith(t, func(c *config.Config) { c.AllowPrivateFetch = true }, withFetchTrust(tlsIdP))
	admin = ssogatev1.NewConnectionServiceClient(open.dial(t, testAdminKey))
	if err := create(admin, "ok", tlsIdP.URL+"/metadata"); err != nil {
		t.Fatalf("allow_private_fetch: %v", err)
	}
	md.set("<html><title>internal admin console</title></html>", http.StatusOK)
	err = create(admin, "html", tlsIdP.URL+"/metadata")
	if err == nil || strings.Contains(err.Error(), "html") || strings.Contains(err.Error(), "console") {
		t.Errorf("non-metadata answer: %v; want a refusal that does not echo it", err)
	}
	md.set("<secret/>", http.StatusNotFound)
	if err := create(admin, "gone", tlsIdP.URL+"/metadata"); err == nil || !strings.HasSuffix(status.Convert(err).Message(), "metadata could not be fetched: HTTP status 404") {
		t.Errorf("404: %v", err)
	}
}

// TestSeededMetadataFetchGuarded: the config file's metadata_url goes
// through the same guard.
func TestSeededMetadataFetchGuarded(t *testing.T) {
	md := &switchableMetadata{}
	md.set(idpMetadata(t, newDevIdP(t, "https://idp.example.com/idp")), http.StatusOK)
	tlsIdP := httptest.NewTLSServer(md)
	t.Cleanup(tlsIdP.Close)
	cfg := config.Default()
	cfg.Store = "sqlite://" + t.TempDir() + "/s.db"
	cfg.Connections = []map[string]any{{"id": "acme", "tenant_id": "t", "state": "CONNECTION_STATE_TESTING",
		"identity_provider": map[string]any{"metadata_url": tlsIdP.URL + "/metadata"}}}
	// A refused address does not stop the start (other tenants' connections
	// must serve): the connection waits as pending, naming why.
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), withFetchTrust(tlsIdP))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { srv.store.Close() })
	if d := srv.pending.detail(time.Now()); !strings.Contains(d, "acme") || !strings.Contains(d, "address not allowed") {
		t.Fatalf("seeding from a loopback metadata_url: pending detail %q, want acme refused with address not allowed", d)
	}
	if md.fetches() != 0 {
		t.Errorf("the seeding path reached the loopback IdP %d times", md.fetches())
	}
}
