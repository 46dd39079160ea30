#!/usr/bin/env bash
# Installs the code generators at pinned versions into ./bin. buf runs them
# as local plugins: nothing here needs the Buf Schema Registry or remote
# plugins. Re-running is cheap: a tool already at its pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GRPC_GATEWAY_VERSION=v2.33.0
GNOSTIC_VERSION=v0.7.1

BIN="$PWD/bin"
mkdir -p "$BIN"

install() { # name module@version
  local name=$1 pkg=$2 stamp="$BIN/.$1.version"
  if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$pkg" ]]; then
    return
  fi
  echo "installing $pkg" >&2
  GOBIN="$BIN" go install "$pkg"
  echo "$pkg" >"$stamp"
}

install buf github.com/bufbuild/buf/cmd/buf@$BUF_VERSION
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION
install protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$GRPC_GATEWAY_VERSION
# OpenAPI 3 straight from the google.api.http annotations the gateway serves,
# with field_behavior as required/readOnly (internal/openapigen finishes it).
install protoc-gen-openapi github.com/google/gnostic/cmd/protoc-gen-openapi@$GNOSTIC_VERSION
