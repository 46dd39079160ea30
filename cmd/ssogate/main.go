// Command ssogate is the SAML Service Provider as a gRPC microservice.
// main is thin: run holds the program, so tests start it in-process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ssogate:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: ssogate <command> [flags]

commands:
  serve     run the service (HTTP :8080, gRPC :9090, SQLite by default)
  dev       everything on loopback with a test IdP and a demo page at /
  version   print the version
  healthcheck [url]  exit 0 when the server's /healthz answers 200
                     (default http://127.0.0.1:8080/healthz; for container health checks)

admin commands (gRPC to --server, default $SSOGATE_SERVER or 127.0.0.1:9090,
with an admin API key from $SSOGATE_API_KEY; -o json for protojson):
  connections create|list|get|update|activate|sp-metadata|refresh-metadata|delete
  keys list|rotate
  audit tail [-f]

Run "ssogate serve -h" for the settings; each flag has an SSOGATE_* twin.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], env, stderr)
	case "dev":
		return dev(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[1:], stdout)
	case "connections", "keys", "audit":
		return adminCommand(ctx, args, env, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve(ctx context.Context, args []string, env func(string) (string, bool), stderr io.Writer) error {
	cfg, err := config.Load(args, env, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	log.Info("starting ssogate", "version", version, "config", cfg)
	if len(cfg.APIKeys) == 0 {
		log.Warn("no api_keys configured: every gRPC and REST API call will be refused as UNAUTHENTICATED; set api_keys or SSOGATE_API_KEYS (browser, health and metrics routes work without)")
	}
	srv, err := server.New(ctx, cfg, log, server.WithVersion(version))
	if err == nil {
		defer srv.Close()
	}
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// healthcheck probes a running server's liveness route, for images that
// have no curl.
func healthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	url := "http://127.0.0.1:8080/healthz"
	if len(args) > 0 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
