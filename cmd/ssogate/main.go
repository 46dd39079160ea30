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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/internal/buildinfo"
	"github.com/ssogate/ssogate/server"
	"github.com/ssogate/ssogate/telemetry"
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
  version   print the version, commit, commit time and Go version
  healthcheck [serve's settings | url]
            exit 0 when the server's /healthz answers 200; the address comes
            from the same config file, SSOGATE_* env and flags as serve's
            (http_addr, on loopback when it names no host), or from a URL

admin commands (gRPC to --server, default $SSOGATE_SERVER or 127.0.0.1:9090,
with an admin API key from $SSOGATE_API_KEY; -o json for protojson):
  connections create|list|get|update|activate|sp-metadata|refresh-metadata|scim-token|delete
  keys list|rotate
  audit tail [-f]
  webhooks create|list|delete|deliveries|retry|rotate-secret   (API key with the events scope)
  loadtest -c N | -rate N/s [-d 30s] [--url URL]
            whole logins against a running server, to size it (key with admin+login;
            creates and deletes its own connection)

Run "ssogate serve -h" for the settings; each flag has an SSOGATE_* twin.
`

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
		return healthcheck(ctx, args[1:], env, stdout)
	case "connections", "keys", "audit", "webhooks", "loadtest":
		return adminCommand(ctx, args, env, stdout, stderr)
	case "version":
		fmt.Fprint(stdout, buildinfo.Get())
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
	bi := buildinfo.Get()
	log.Info("starting ssogate", "version", bi.Version, "revision", bi.Revision, "config", cfg)
	tuneGC(env, log)
	if len(cfg.APIKeys) == 0 {
		log.Warn("no api_keys configured: every gRPC and REST API call will be refused as UNAUTHENTICATED; set api_keys or SSOGATE_API_KEYS (browser, health and metrics routes work without)")
	}
	tracing, err := telemetry.Setup(ctx, env, bi.Version)
	if err != nil {
		return err
	}
	if tracing.Enabled {
		log.Info("tracing on", "exporter", tracing.Exporter)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			log.Warn("flush traces at exit", "error", err)
		}
	}()
	srv, err := server.New(ctx, cfg, log, server.WithTracing(tracing), server.WithVersion(bi.Version))
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
// have no curl. It reads the same settings as serve, so a changed http_addr
// is probed where the server listens; an http(s) URL argument overrides.
func healthcheck(ctx context.Context, args []string, env func(string) (string, bool), stdout io.Writer) error {
	var url string
	if len(args) == 1 && (strings.HasPrefix(args[0], "http://") || strings.HasPrefix(args[0], "https://")) {
		url = args[0]
	} else {
		cfg, err := config.Load(args, env, io.Discard)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		url = "http://" + probeAddr(cfg.HTTPAddr) + "/healthz"
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

// probeAddr turns a listen address into one to dial: a wildcard or missing
// host becomes loopback (the probe runs beside the server).
func probeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}
