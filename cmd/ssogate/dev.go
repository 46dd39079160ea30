package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/server"
)

// devConnectionID is the ready connection `ssogate dev` creates.
const devConnectionID = "dev"

// dev runs everything on loopback for a newcomer: a generated KEK and API
// key, SQLite in a temporary folder, the built-in test IdP under /dev/idp,
// a ready connection "dev" and the demo backend at /.
func dev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssogate dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "HTTP listen address (loopback)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:9090", "gRPC listen address (loopback)")
	dir := fs.String("dir", "", "folder for the SQLite file (default: a new temporary folder)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "ssogate-dev-")
		if err != nil {
			return fmt.Errorf("dev: temporary folder: %w", err)
		}
		*dir = d
	}
	var lc net.ListenConfig
	httpLis, err := lc.Listen(ctx, "tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("dev: listen %s: %w", *httpAddr, err)
	}
	grpcLis, err := lc.Listen(ctx, "tcp", *grpcAddr)
	if err != nil {
		httpLis.Close()
		return fmt.Errorf("dev: listen %s: %w", *grpcAddr, err)
	}
	base := "http://" + httpLis.Addr().String()

	idp, err := devidp.New(base+"/dev/idp", devidp.DefaultUsers, stderr)
	if err != nil {
		return err
	}
	apiKey := randomToken()
	sum := sha256.Sum256([]byte(apiKey))

	cfg := config.Default()
	cfg.HTTPAddr, cfg.GRPCAddr = httpLis.Addr().String(), grpcLis.Addr().String()
	cfg.ExternalURL = base
	cfg.Token.Issuer, cfg.Token.Audience = base, []string{base}
	cfg.Store = "sqlite://" + filepath.Join(*dir, "ssogate.db")
	cfg.LogLevel = *logLevel
	cfg.AllowPrivateFetch = true // the dev IdP and any local test IdP live on loopback
	cfg.ShutdownDelay = 0        // nothing routes to dev by readiness
	cfg.ShutdownTimeout = 5 * time.Second
	// No KEK: the server generates one beside the SQLite file (and says so
	// in the log), so that `--dir` reuses keys across runs.
	cfg.APIKeys = []config.APIKey{{Name: "dev", SHA256: hex.EncodeToString(sum[:]), Scopes: []string{"login", "admin", "directory"}}}
	cfg.Connections = []map[string]any{devConnection(base, idp)}
	cfg.Portal.ProductName = "Example App"
	cfg.Portal.SupportURL = base + "/"
	if err := cfg.Validate(); err != nil {
		return err
	}

	cc, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerKey(apiKey)))
	if err != nil {
		return err
	}
	defer cc.Close()
	d := newDemo(ssogatev1.NewLoginServiceClient(cc), base, devConnectionID)
	d.connections = ssogatev1.NewConnectionServiceClient(cc)
	// The test IdP trusts every connection of this server, from its SP
	// metadata, so any new connection can be rehearsed end to end.
	idp.TrustServiceProviders(func(ctx context.Context, entityID string) (string, []byte, error) {
		return fetchSPMetadata(ctx, base, entityID)
	})

	log := newLogger(stderr, cfg.LogLevel)
	srv, err := server.New(ctx, cfg, log, server.WithRoutes(func(mux *http.ServeMux) {
		mux.Handle("/dev/idp/", http.StripPrefix("/dev/idp", idp.Handler()))
		d.routes(mux)
	}))
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, grpcLis, httpLis) }()

	// Tell the IdP about our SP, as an IdP admin would: from our metadata.
	if err := registerWithIdP(ctx, base, idp); err != nil {
		return fmt.Errorf("dev: %w (is the server up?)", err)
	}
	fmt.Fprintf(stdout, `ssogate dev is running (development only: generated keys, no persistence guarantees).

  Demo backend:  %[1]s/            sign in as alice/alice or bob/bob
  Test IdP:      %[1]s/dev/idp/metadata   (trusts every connection here)
                 %[1]s/dev/idp/stale-metadata names a retired certificate:
                 give it to a setup portal to rehearse a failing test login
  SP metadata:   %[1]s/saml/dev/metadata
  gRPC:          %[2]s
  Dev API key:   %[3]s   (scopes login, admin, directory)
  Store:         %[4]s
  KEK:           generated beside the SQLite file (set SSOGATE_KEK in production)

  grpcurl -plaintext -H "authorization: Bearer %[3]s" %[2]s list
`, base, cfg.GRPCAddr, apiKey, cfg.Store)
	return <-errc
}

// devConnection declares the "dev" connection as a config file would.
func devConnection(base string, idp *devidp.IdP) map[string]any {
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate.Raw}))
	return map[string]any{
		"id":           devConnectionID,
		"tenant_id":    "example",
		"display_name": "Example Corp (built-in test IdP)",
		"state":        "CONNECTION_STATE_ACTIVE",
		"identity_provider": map[string]any{
			"entity_id":    base + "/dev/idp/metadata",
			"sso_url":      base + "/dev/idp/sso",
			"slo_url":      base + "/dev/idp/slo",
			"certificates": []any{map[string]any{"pem": certPEM}},
		},
		"email_domains":       []any{"example.com"},
		"allowed_return_urls": []any{base + "/"},
		"default_return_url":  base + "/",
		"attribute_mapping": map[string]any{
			"groups": map[string]any{"names": []any{devidp.GroupsAttribute}},
			"uid":    map[string]any{"names": []any{"urn:oid:0.9.2342.19200300.100.1.1"}},
		},
		"access_policy": map[string]any{
			"role_mappings": []any{
				map[string]any{"group": "admins", "roles": []any{"admin"}},
				map[string]any{"group": "eng", "roles": []any{"developer"}},
				map[string]any{"group": "sales", "roles": []any{"viewer"}},
			},
		},
		"allow_idp_initiated": true,
	}
}

// fetchSPMetadata returns the SP metadata of this server's connection
// whose entity ID is entityID ({base}/saml/{id}), and the id.
func fetchSPMetadata(ctx context.Context, base, entityID string) (string, []byte, error) {
	id, ok := strings.CutPrefix(entityID, base+"/saml/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", nil, fmt.Errorf("%q is not a connection of this server", entityID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, entityID+"/metadata", nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("SP metadata of %q: status %d", id, resp.StatusCode)
	}
	return id, body, nil
}

func registerWithIdP(ctx context.Context, base string, idp *devidp.IdP) error {
	var lastErr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/saml/"+devConnectionID+"/metadata", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			lastErr = fmt.Errorf("SP metadata: status %d", resp.StatusCode)
			continue
		}
		return idp.RegisterServiceProvider(devConnectionID, body)
	}
	return fmt.Errorf("register SP metadata with the test IdP: %w", lastErr)
}

// bearerKey sends the API key on every call.
type bearerKey string

func (k bearerKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(k)}, nil
}

func (bearerKey) RequireTransportSecurity() bool { return false }
