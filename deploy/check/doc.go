// Package check validates ssogate's deployment files offline, as CI's
// stand-in for kubeconform, hadolint and `docker compose config`, none of
// which can be installed from the registries CI reaches (kubeconform's
// schemas, hadolint and the compose plugin are downloads):
//
//   - Kubernetes manifests (the chart rendered by helm template, and the
//     committed deploy/kubernetes/ files) are decoded strictly into the
//     Kubernetes API's own Go types (k8s.io/api): an unknown field, a
//     wrong type or an unknown kind fails. Names and labels are checked
//     with apimachinery's validators, and a few cross-references
//     (selectors, named ports, probes, grace period) by hand.
//   - The Dockerfile goes through BuildKit's parser and linter (the rules
//     of `docker build --check`), plus our own rules: a non-root USER, a
//     HEALTHCHECK, exec-form ENTRYPOINT and CMD, OCI labels, no :latest.
//   - compose.yaml is loaded and validated against the Compose
//     specification's schema by compose-go, the library docker compose
//     itself uses.
//
// It is its own module so that these heavy dependencies stay out of
// ssogate's go.mod. Run: cd deploy/check && go test ./...
package check
