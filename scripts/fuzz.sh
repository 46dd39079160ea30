#!/usr/bin/env bash
# Runs every fuzz target in the module for a while each (default 60s). The
# seed corpora hold whole signed responses; minimising one for long would eat
# the budget, hence -fuzzminimizetime 3s:
#   bash scripts/fuzz.sh 60s
#
# A target fails the run when it finds a failing input (Go writes it to
# <package>/testdata/fuzz/<target>/, where `go test` then replays it) or
# fails any other way. One failure is not taken for a finding: Go 1.26's
# fuzzing coordinator can end a run with a bare "context deadline exceeded"
# as -fuzztime runs out, having found nothing (golang/go#75804, fixed in Go
# 1.27). Such a run is repeated once, and fails the script only if it ends
# that way again.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-60s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# corpus lists the failing inputs Go has written for a target.
corpus() { ls "$1/testdata/fuzz/$2" 2>/dev/null || true; }

# fuzz_once runs one target; 0 passed, 1 found or failed, 2 the coordinator race.
fuzz_once() {
  local pkg=$1 target=$2 dir before
  dir=$(go list -f '{{.Dir}}' "$pkg")
  before=$(corpus "$dir" "$target")
  if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg" 2>&1 | tee "$log"; then
    return 0
  fi
  if [ "$(corpus "$dir" "$target")" = "$before" ] &&
    grep -qx -- "--- FAIL: ${target} ([0-9.]*s)" "$log" &&
    [ "$(grep -A1 -x -- "--- FAIL: ${target} ([0-9.]*s)" "$log" | tail -n 1)" = "    context deadline exceeded" ]; then
    return 2
  fi
  return 1
}

for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target for $fuzztime"
    rc=0
    fuzz_once "$pkg" "$target" || rc=$?
    if [ "$rc" = 2 ]; then
      echo "fuzz $pkg $target: ended with the Go fuzzing coordinator's deadline race (golang/go#75804) and no failing input written; once more"
      rc=0
      fuzz_once "$pkg" "$target" || rc=$?
    fi
    if [ "$rc" != 0 ]; then
      echo "fuzz $pkg $target failed" >&2
      exit 1
    fi
  done
done
