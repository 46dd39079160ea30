package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// A rolling update: on SIGTERM readiness turns 503 (and gRPC health
// NOT_SERVING) at once, but the listeners keep serving every request, old
// and new, for shutdown_delay; then the server drains and exits.
func TestSIGTERMKeepsServingForShutdownDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const delay = 3 * time.Second
	p := startProcess(t, buildBinary(t), []string{"--store", "sqlite://" + t.TempDir() + "/ssogate.db",
		"--shutdown-delay", delay.String(), "--shutdown-timeout", "20s"}, nil)
	base := "http://" + p.httpAddr

	// An in-flight request: headers and half a body sent before SIGTERM.
	slow := startSlowRequest(t, p.httpAddr)

	gconn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer gconn.Close()
	health := healthpb.NewHealthClient(gconn)

	// Load: new connections for every request (no keep-alive), so a closed
	// listener shows as a refused request.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	type result struct {
		at  time.Time
		err error
	}
	var (
		mu      sync.Mutex
		results []result
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				at := time.Now()
				resp, err := client.Get(base + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				mu.Lock()
				results = append(results, result{at, err})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { stopLoad(); load.Wait() })
	time.Sleep(300 * time.Millisecond)

	sigAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness turns 503 promptly…
	var unreadyAt time.Time
	for deadline := time.Now().Add(delay); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("readyz refused right after SIGTERM: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			unreadyAt = time.Now()
			break
		}
	}
	if unreadyAt.IsZero() {
		t.Fatalf("readyz still 200 %s after SIGTERM", delay)
	}
	// …and stays 503, with gRPC health NOT_SERVING, until the delay ends
	// (measured from the signal: the server cannot have started its delay
	// before we sent it).
	windowEnd := sigAt.Add(delay - 300*time.Millisecond)
	checks := 0
	for time.Now().Before(windowEnd) {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("readyz refused %s after SIGTERM, within shutdown_delay %s: %v", time.Since(sigAt), delay, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("readyz %d during shutdown_delay, want 503", resp.StatusCode)
		}
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h, err := health.Check(hctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("gRPC health during shutdown_delay: %v %v, want NOT_SERVING", h, err)
		}
		checks++
		time.Sleep(100 * time.Millisecond)
	}
	if checks < 5 {
		t.Fatalf("only %d readiness checks fitted in the delay window: the machine is too slow to observe it", checks)
	}
	mu.Lock()
	var inWindow int
	for _, r := range results {
		if !r.at.Before(sigAt) && r.at.Before(windowEnd) {
			inWindow++
		}
		if r.err != nil && r.at.Before(windowEnd) {
			t.Errorf("request sent %s after SIGTERM (within shutdown_delay) failed: %v", r.at.Sub(sigAt), r.err)
		}
	}
	mu.Unlock()
	if inWindow < 10 {
		t.Errorf("only %d load requests within the delay window", inWindow)
	}

	// After the delay new connections are refused, the in-flight request
	// still gets its answer, and the process exits once it is done.
	if !waitRefused(p.httpAddr, 10*time.Second) {
		t.Error("new connections still accepted long after shutdown_delay")
	}
	stopLoad()
	load.Wait()
	select {
	case err := <-p.done:
		t.Fatalf("server exited with a request in flight: %v", err)
	default:
	}
	slow.finish(t)
	waitExit(t, p, 15*time.Second)
}

// slowRequest is an ACS POST whose body is half sent: in flight until
// finish.
type slowRequest struct {
	conn net.Conn
	rest string
}

func startSlowRequest(t *testing.T, addr string) *slowRequest {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := "SAMLResponse=" + strings.Repeat("A", 2000) + "&RelayState=x"
	half := len(body) / 2
	fmt.Fprintf(conn, "POST /saml/acme/acs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body[:half])
	return &slowRequest{conn: conn, rest: body[half:]}
}

// finish sends the rest of the body and wants the ACS's answer (a refusal
// of the garbage, with a request id).
func (r *slowRequest) finish(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(r.conn, r.rest); err != nil {
		t.Fatalf("finish body: %v", err)
	}
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(r.conn), nil)
	if err != nil {
		t.Fatalf("in-flight request got no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 600 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("in-flight request: status %d, want the ACS's answer with a request id", resp.StatusCode)
	}
}

// waitRefused polls until addr refuses connections (a loaded machine may
// take a moment to handle a signal).
func waitRefused(addr string, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
	}
	return false
}

// waitExit wants the process to exit cleanly within the time given.
func waitExit(t *testing.T, p *process, within time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("server exit after drain: %v", err)
		}
	case <-time.After(within):
		t.Fatal("server did not exit after the in-flight request finished")
	}
}
