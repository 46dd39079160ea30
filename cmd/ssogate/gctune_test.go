package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func currentGCPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

func TestTuneGC(t *testing.T) {
	before := currentGCPercent()
	t.Cleanup(func() { debug.SetGCPercent(before) })

	debug.SetGCPercent(100)
	var out bytes.Buffer
	tuneGC(mapEnv(map[string]string{}), slog.New(slog.NewJSONHandler(&out, nil)))
	if got := currentGCPercent(); got != serveGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, serveGCPercent)
	}
	if !strings.Contains(out.String(), `"gogc":400`) || !strings.Contains(out.String(), `"gogc_from":"default"`) {
		t.Errorf("log line does not say the collector's setting: %s", out.String())
	}

	debug.SetGCPercent(150) // as the runtime would have applied GOGC=150
	out.Reset()
	tuneGC(mapEnv(map[string]string{"GOGC": "150"}), slog.New(slog.NewJSONHandler(&out, nil)))
	if got := currentGCPercent(); got != 150 {
		t.Errorf("GOGC=150 set: GC percent %d, want it left at 150", got)
	}
	if !strings.Contains(out.String(), `"gogc_from":"environment"`) {
		t.Errorf("log line: %s", out.String())
	}
}

// In a container with a memory limit (a cgroup v1 memory group here, which
// needs root; skipped elsewhere), serve sets the soft memory limit to 90%
// of it.
func TestServeMemoryLimitFromCgroup(t *testing.T) {
	const root = "/sys/fs/cgroup/memory"
	dir := filepath.Join(root, fmt.Sprintf("ssogate-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("no cgroup v1 memory group to make (%v)", err)
	}
	t.Cleanup(func() {
		for range 50 { // the group is busy until its process has exited
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	const limit = 256 << 20
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.Itoa(limit)), 0o644); err != nil {
		t.Skipf("cannot set a memory limit: %v", err)
	}
	bin := buildBinary(t)
	store := "sqlite://" + filepath.Join(t.TempDir(), "s.db")
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" serve --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0`, "sh", dir, bin)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "AUTOMEMLIMIT=")
	})
	cmd.Env = append(cmd.Env, "SSOGATE_STORE="+store)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var rec struct {
			Msg   string `json:"msg"`
			GOGC  int    `json:"gogc"`
			Limit int64  `json:"memory_limit_bytes"`
		}
		if json.Unmarshal(lines.Bytes(), &rec) != nil || rec.Msg != "garbage collector" {
			continue
		}
		ratio := memoryLimitRatio
		if want := int64(float64(limit) * ratio); rec.Limit != want || rec.GOGC != serveGCPercent {
			t.Fatalf("serve in a %d-byte cgroup: %s; want gogc %d and memory_limit_bytes %d", limit, lines.Text(), serveGCPercent, want)
		}
		return
	}
	t.Fatalf("serve exited without logging its garbage collector setting: %v", lines.Err())
}
