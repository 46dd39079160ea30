#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and the local plugins pinned in
# scripts/install-tools.sh, after linting the API with buf's STANDARD rules.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh
export PATH="$PWD/bin:$PATH"
buf lint
buf format --diff --exit-code
rm -rf gen
buf generate
go run ./internal/openapigen -in gen/openapi/openapi.yaml -out gen/openapi
