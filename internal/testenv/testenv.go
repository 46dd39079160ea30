// Package testenv decides what a test does when a real dependency
// (PostgreSQL, Chromium) is missing: skip with the reason on a laptop, fail
// where SSOGATE_TEST_REQUIRE lists the dependency (CI sets
// SSOGATE_TEST_REQUIRE=postgres,chromium), so that a test never passes
// silently without the thing it tests.
package testenv

import (
	"os"
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
