// Package testenv decides what a test does when a real dependency
// (PostgreSQL, Chromium) is missing: skip with the reason on a laptop, fail
// where SSOGATE_TEST_REQUIRE lists the dependency (CI sets
// SSOGATE_TEST_REQUIRE=postgres,chromium), so that a test never passes
// silently without the thing it tests.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

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
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's folder")
		}
		dir = parent
	}
	nm := filepath.Join(dir, ".ci", "npm", "node_modules")
	if _, err := os.Stat(nm); err != nil {
		Missing(t, "node", "no "+nm+": run (cd .ci/npm && npm ci)")
	}
	return nm
}
