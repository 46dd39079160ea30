// Package testenv decides what a test does when a real dependency
// (PostgreSQL, Chromium) is missing: skip with the reason on a laptop, fail
// where SSOGATE_TEST_REQUIRE lists the dependency (CI sets
// SSOGATE_TEST_REQUIRE=postgres,chromium,node), so that a test never passes
// silently without the thing it tests.
//
// A package whose tests may skip that way runs them through Main from its
// TestMain, which prints one summary line per package of what was skipped
// and why, so that `go test ./...`'s "ok" never hides skipped PostgreSQL or
// browser tests.
package testenv

import (
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// skipped counts the tests Missing skipped, by what was missing and why.
var skipped struct {
	mu     sync.Mutex
	counts map[string]int
}

func recordSkip(what, why string) {
	skipped.mu.Lock()
	defer skipped.mu.Unlock()
	if skipped.counts == nil {
		skipped.counts = map[string]int{}
	}
	skipped.counts[what+" unavailable ("+why+")"]++
}

// Main runs the package's tests and then prints its summary line, e.g.
//
//	testenv: ./server: 14 tests skipped: 14× postgres unavailable (SSOGATE_TEST_POSTGRES_DSN not set)
//
// Call it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	writeSummary(summaryWriter(), packageDir())
	os.Exit(code)
}

func writeSummary(w io.Writer, pkg string) {
	skipped.mu.Lock()
	defer skipped.mu.Unlock()
	total := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(skipped.counts)) {
		total += skipped.counts[k]
		parts = append(parts, fmt.Sprintf("%d× %s", skipped.counts[k], k))
	}
	if total == 0 {
		fmt.Fprintf(w, "testenv: %s: no test skipped for a missing dependency\n", pkg)
		return
	}
	fmt.Fprintf(w, "testenv: %s: %d tests skipped: %s\n", pkg, total, strings.Join(parts, "; "))
}

// summaryWriter is where the summary line is seen. `go test ./...` shows a
// passing package's output only with -v, so the line goes to the go
// command's own standard error (its parent's fd 2, reachable on Linux as
// the same user) when the test binary runs under it and that is a terminal
// or a pipe; to stdout otherwise. Not to a regular file: the go command
// writes there at its own offset and would overwrite the line (pipe
// `go test ./... 2>&1 | cat` into a file instead, as .ci/run does).
func summaryWriter() io.Writer {
	if testing.Verbose() {
		return os.Stdout
	}
	ppid := os.Getppid()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return os.Stdout
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/2", ppid), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return os.Stdout
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) == 0 {
		f.Close()
		return os.Stdout
	}
	return f // closed at exit
}

// packageDir names the package under test by its folder relative to the
// module root (go test runs the binary in the package's folder).
func packageDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return "?"
	}
	if root, err := moduleRoot(dir); err == nil {
		if rel, err := filepath.Rel(root, dir); err == nil {
			return "./" + filepath.ToSlash(rel)
		}
	}
	return dir
}

func moduleRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// Required reports whether SSOGATE_TEST_REQUIRE lists what.
func Required(what string) bool {
	return slices.Contains(strings.Split(os.Getenv("SSOGATE_TEST_REQUIRE"), ","), what)
}

// Missing ends the test because what is unavailable: t.Fatal when it is
// required, t.Skip otherwise.
func Missing(t testing.TB, what, why string) {
	t.Helper()
	if Required(what) {
		t.Fatalf("%s is required (SSOGATE_TEST_REQUIRE=%s) but unavailable: %s", what, os.Getenv("SSOGATE_TEST_REQUIRE"), why)
	}
	recordSkip(what, why)
	t.Skipf("%s unavailable (%s); set SSOGATE_TEST_REQUIRE=%s to make this a failure", what, why, what)
}

// NodeModules returns the folder holding the npm packages tests run as
// independent implementations (.ci/npm/node_modules, installed by .ci/run
// with `npm ci`), or ends the test with Missing("node", …) when node or
// the folder is absent. Run scripts with NODE_PATH set to it.
func NodeModules(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		Missing(t, "node", "no node on PATH")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	dir, err := moduleRoot(wd)
	if err != nil {
		t.Fatalf("%v", err)
	}
	nm := filepath.Join(dir, ".ci", "npm", "node_modules")
	if _, err := os.Stat(nm); err != nil {
		Missing(t, "node", "no "+nm+": run (cd .ci/npm && npm ci)")
	}
	return nm
}
