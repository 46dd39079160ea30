// Package webhooktest runs a webhook receiver under node that verifies
// every delivery with the npm standardwebhooks package, for tests that
// check what ssogate sends against an independent implementation.
package webhooktest

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssogate/ssogate/internal/testenv"
)

//go:embed receiver.js
var script []byte

// Receiver is a running node receiver.
type Receiver struct {
	// URL is where to point a webhook.
	URL  string
	base string
}

// Delivery is one request the receiver got.
type Delivery struct {
	N         int    `json:"n"`
	ID        string `json:"id"` // webhook-id
	Timestamp string `json:"timestamp"`
	// Overlap: another request with the same webhook-id was in flight.
	Overlap  bool   `json:"overlap"`
	Verified bool   `json:"verified"`
	Error    string `json:"error"`
	// SchemaError: the payload does not match docs/events.schema.json.
	SchemaError string `json:"schema_error"`
	// Status answered; -1 when the receiver never answered (hang).
	Status int   `json:"status"`
	Event  Event `json:"event"`
	Start  int64 `json:"start"` // Unix ms
	End    int64 `json:"end"`
}

// Event is the verified payload.
type Event struct {
	Type         string         `json:"type"`
	ID           string         `json:"id"`
	Sequence     int64          `json:"sequence"`
	Time         string         `json:"time"`
	ConnectionID string         `json:"connection_id"`
	TenantID     string         `json:"tenant_id"`
	Data         map[string]any `json:"data"`
}

// Start runs the receiver until the test ends (skipping or failing via
// testenv when node is missing). Payloads are also validated against
// docs/events.schema.json.
func Start(t testing.TB) *Receiver {
	t.Helper()
	nm := testenv.NodeModules(t)
	path := filepath.Join(t.TempDir(), "receiver.js")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", path)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nm,
		"SCHEMA="+filepath.Join(filepath.Dir(filepath.Dir(nm)), "..", "docs", "events.schema.json"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("webhook receiver did not start: %v", err)
	}
	var hello struct{ Port int }
	if err := json.Unmarshal([]byte(line), &hello); err != nil {
		t.Fatalf("webhook receiver said %q: %v", line, err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", hello.Port)
	return &Receiver{URL: base + "/hook", base: base}
}

// Configure sets the secret to verify with, how many first requests get
// HTTP 500, and how many first requests are never answered.
func (r *Receiver) Configure(t testing.TB, secret string, failFirst, hangFirst int) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"secret": secret, "fail_first": failFirst, "hang_first": hangFirst})
	resp, err := http.Post(r.base+"/_config", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// Log returns every finished request so far, in the order they finished.
func (r *Receiver) Log(t testing.TB) []Delivery {
	t.Helper()
	resp, err := http.Get(r.base + "/_log")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Delivery
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Accepted returns the deliveries answered 200, in the order they were
// answered.
func (r *Receiver) Accepted(t testing.TB) []Delivery {
	t.Helper()
	var out []Delivery
	for _, d := range r.Log(t) {
		if d.Status == http.StatusOK {
			out = append(out, d)
		}
	}
	return out
}

// WaitFor polls until ok holds of the log, or fails after timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, ok func([]Delivery) bool) []Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log := r.Log(t)
		if ok(log) {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook receiver: %s not within %s; log: %+v", what, timeout, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
