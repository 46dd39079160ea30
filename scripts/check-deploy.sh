#!/usr/bin/env bash
# Checks the deployment files offline: renders the Helm chart (helm lint and
# helm template, with the defaults and with every option), checks that the
# committed plain manifests in deploy/kubernetes/ are the chart's current
# rendering, and runs deploy/check (manifests decoded strictly into the
# Kubernetes API types, the Dockerfile through BuildKit's linter and our
# rules, compose.yaml through compose-go's schema validation).
#
#   bash scripts/check-deploy.sh           # check
#   bash scripts/check-deploy.sh -update   # re-render deploy/kubernetes/
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
export GOBIN="$PWD/bin"
if ! go version -m "$GOBIN/helm" 2>/dev/null | grep -qE "^\s+mod\s+helm.sh/helm/v3\s+${HELM_VERSION}\s"; then
  echo "installing helm ${HELM_VERSION} from the Go module proxy into bin/ (a few minutes the first time)"
  go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi
helm="$GOBIN/helm"

chart=deploy/helm/ssogate
render() { "$helm" template ssogate "$chart" --namespace ssogate "$@"; }
committed=deploy/kubernetes/ssogate.yaml
header='# Rendered from deploy/helm/ssogate with its default values by
# scripts/check-deploy.sh -update (helm template ssogate deploy/helm/ssogate
# --namespace ssogate); do not edit: change the chart and re-render.'

if [[ "${1:-}" == "-update" ]]; then
  { echo "$header"; render; } > "$committed"
  echo "wrote $committed"
  exit 0
fi

"$helm" lint --strict "$chart"
"$helm" lint --strict "$chart" -f "$chart/ci/options-values.yaml"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
render > "$out/defaults.yaml"
render -f "$chart/ci/options-values.yaml" > "$out/options.yaml"
if ! diff -u "$committed" <(echo "$header"; cat "$out/defaults.yaml"); then
  echo "$committed is not the chart's current rendering: run bash scripts/check-deploy.sh -update" >&2
  exit 1
fi

(cd deploy/check && SSOGATE_MANIFESTS="$out ../kubernetes" go test -count=1 ./...)
