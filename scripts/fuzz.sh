#!/usr/bin/env bash
# Runs every fuzz target in the module for a while each (default 60s). The
# seed corpora hold whole signed responses; minimising one for long would eat
# the budget, hence -fuzzminimizetime 3s:
#   bash scripts/fuzz.sh 60s
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-60s}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg"
  done
done
