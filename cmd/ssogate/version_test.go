package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersionFromBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		ldflags string
		want    []string
	}{
		{"build info", "", []string{"version  devel", "go       go1."}},
		{"ldflags override", "-X github.com/ssogate/ssogate/internal/buildinfo.version=v9.8.7 -X github.com/ssogate/ssogate/internal/buildinfo.revision=abc123",
			[]string{"version  v9.8.7", "commit   abc123", "go       go1."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			build := exec.Command("go", "build", "-ldflags", tc.ldflags, "-o", bin, ".")
			build.Stderr = os.Stderr
			if err := build.Run(); err != nil {
				t.Fatalf("build: %v", err)
			}
			out, err := exec.Command(bin, "version").CombinedOutput()
			if err != nil {
				t.Fatalf("ssogate version: %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("ssogate version printed\n%s\nwant a line with %q", out, w)
				}
			}
		})
	}
}

// freePort returns a loopback port nothing listens on (at the time).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestHealthcheckProbesConfiguredAddress(t *testing.T) {
	addr := freePort(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "ssogate.yaml")
	if err := os.WriteFile(cfgFile, []byte("http_addr: "+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	probes := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"env", nil, map[string]string{"SSOGATE_HTTP_ADDR": addr}},
		{"flag", []string{"--http-addr", addr}, nil},
		{"config file", []string{"--config", cfgFile}, nil},
	}
	healthcheck := func(args []string, env map[string]string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out strings.Builder
		return run(ctx, append([]string{"healthcheck"}, args...), mapEnv(env), &out, &out)
	}
	for _, p := range probes {
		if err := healthcheck(p.args, p.env); err == nil {
			t.Fatalf("%s: healthcheck succeeded with nothing listening on %s", p.name, addr)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, mapEnv(map[string]string{
			"SSOGATE_HTTP_ADDR": addr, "SSOGATE_GRPC_ADDR": "127.0.0.1:0", "SSOGATE_SHUTDOWN_DELAY": "0s",
			"SSOGATE_STORE": "sqlite://" + filepath.Join(dir, "ssogate.db"),
		}), os.Stderr, &strings.Builder{})
	}()
	t.Cleanup(func() { cancel(); <-served })
	for _, p := range probes {
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = healthcheck(p.args, p.env); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: healthcheck with serve on %s: %v", p.name, addr, err)
		}
	}
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}
