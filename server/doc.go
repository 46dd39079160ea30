// Package server is the only place that speaks gRPC and HTTP. It serves the
// ssogate.v1 API on the gRPC listener, the same API through grpc-gateway on
// the HTTP listener under /v1/, and the browser and operator routes of
// DESIGN.md (ACS, SP metadata, SLO, JWKS, health, metrics) beside it.
//
// It guarantees: every request gets a request id, echoed in the
// X-Request-Id header and logged on exactly one JSON line; request lines
// carry method, route pattern, status and duration, never query strings,
// bodies, assertions, codes, tokens or keys; gRPC and HTTP requests are
// counted and timed in Prometheus metrics; on shutdown the health service
// and /readyz turn NOT_SERVING first, then in-flight requests may finish
// within the configured bound.
package server
