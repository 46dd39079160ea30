#!/usr/bin/env bash
# Refreshes the google.api annotation protos that the grpc-gateway HTTP
# mappings import, from the npm registry package google-proto-files (the
# Buf Schema Registry is not reachable from our build machines). The copies
# are committed under third_party/googleapis; run this only to update them.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=6.0.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "google-proto-files@$VERSION" >/dev/null && tar xzf "google-proto-files-$VERSION.tgz")
dest=third_party/googleapis/google/api
mkdir -p "$dest"
for f in annotations.proto http.proto field_behavior.proto; do
  cp "$tmp/package/google/api/$f" "$dest/$f"
done
echo "google-proto-files@$VERSION" >third_party/googleapis/VERSION
