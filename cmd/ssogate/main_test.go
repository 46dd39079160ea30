package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles ssogate once per test that needs a real process.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ssogate")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build ssogate: %v", err)
	}
	return bin
}

// benchBinary is the ssogate binary a benchmark runs: the one
// SSOGATE_BENCH_SERVE_BIN names (an older build, to compare two builds in
// the same harness and the same minutes: run the benchmark once per
// binary, interleaved), else this tree built.
func benchBinary(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("SSOGATE_BENCH_SERVE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			b.Fatalf("SSOGATE_BENCH_SERVE_BIN: %v", err)
		}
		return bin
	}
	return buildBinary(b)
}

type process struct {
	cmd      *exec.Cmd
	httpAddr string
	grpcAddr string
	logs     chan string
	done     chan error
}

// startServe runs `ssogate serve` on loopback ports chosen by the kernel and
// waits for its "listening" log line.
func startServe(t testing.TB, bin string, extraEnv ...string) *process {
	t.Helper()
	return startProcess(t, bin, []string{"--store", "sqlite://" + filepath.Join(t.TempDir(), "ssogate.db")}, extraEnv)
}

// startProcess runs `ssogate serve args...` with extra environment.
func startProcess(t testing.TB, bin string, args, env []string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--shutdown-delay", "0s"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: make(chan string, 1000), done: make(chan error, 1)}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			var rec struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
				GRPCAddr string `json:"grpc_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				p.grpcAddr = rec.GRPCAddr
				listening <- rec.HTTPAddr
			}
			select {
			case p.logs <- line:
			default:
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case p.httpAddr = <-listening:
	case err := <-p.done:
		var out []string
		for len(p.logs) > 0 {
			out = append(out, <-p.logs)
		}
		t.Fatalf("ssogate exited before listening: %v\n%s", err, strings.Join(out, "\n"))
	case <-time.After(30 * time.Second):
		t.Fatal("ssogate did not start listening within 30s")
	}
	return p
}

func TestSIGTERMLetsSlowRequestFinish(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startServe(t, buildBinary(t), "SSOGATE_SHUTDOWN_TIMEOUT=20s")

	// A slow client: it sends the headers and half of a form body, and the
	// rest only after the server got SIGTERM.
	slow := startSlowRequest(t, p.httpAddr)
	time.Sleep(300 * time.Millisecond) // the request is now in flight

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The server is draining: it must not exit while our request is open.
	select {
	case err := <-p.done:
		t.Fatalf("server exited with a request in flight: %v", err)
	case <-time.After(700 * time.Millisecond):
	}
	// New connections are refused once draining.
	if !waitRefused(p.httpAddr, 10*time.Second) {
		t.Error("server still accepts new connections 10s after SIGTERM")
	}
	slow.finish(t)
	waitExit(t, p, 15*time.Second)
}

func TestBadSettingStopsStartup(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"env http addr", nil, map[string]string{"SSOGATE_HTTP_ADDR": "nonsense"}, "SSOGATE_HTTP_ADDR"},
		{"flag grpc addr", []string{"--grpc-addr", "1.2.3.4:99999"}, nil, "grpc_addr"},
		{"store scheme", nil, map[string]string{"SSOGATE_STORE": "mysql://x"}, "store"},
		{"duration", nil, map[string]string{"SSOGATE_TOKEN_ACCESS_TTL": "soon"}, "token.access_ttl"},
		{"algorithm", []string{"--token-algorithm", "HS256"}, nil, "token.algorithm"},
		{"external url", nil, map[string]string{"SSOGATE_EXTERNAL_URL": "sso.example.com"}, "external_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"serve"}, tc.args...), env, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run error = %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
}
