// Package server is the only place that speaks gRPC and HTTP. It wires the
// protocol packages (saml, token, policy) to the store and serves:
//
//   - the ssogate.v1 API on the gRPC listener (optionally TLS or mutual
//     TLS), and the same API through grpc-gateway under /v1/ on the HTTP
//     listener (the gateway reaches the services in memory, behind the same
//     interceptors);
//   - the browser and IdP routes (docs/architecture.md, "Surfaces"): /saml/{id}/login, /acs,
//     /slo, /metadata, /authn/{request_id}, /.well-known/jwks.json;
//   - the operator routes /healthz, /readyz and /metrics, and
//     grpc.health.v1 per service.
//
// It guarantees:
//
//   - Every API call carries an API key whose SHA-256 is configured, with
//     the scope its method needs (health and reflection excepted); keys are
//     compared in constant time.
//   - A login is issued only after saml.ValidateResponse accepted the
//     response, the connection's lifecycle admits it and its access policy
//     admits the user; the pending request and the assertion ID are used
//     once across replicas (the store decides); codes work once within 60 s;
//     refresh tokens rotate and a reused one revokes its session.
//   - Every refusal has a saml.Reason, an audit event with the admin-facing
//     message, a metric, and for browsers a generic page with a correlation
//     id equal to the request id.
//   - ValidateToken never queries the store: revocations are held in memory
//     and kept current by PostgreSQL LISTEN/NOTIFY and a one-second poll.
//   - Every request gets a request id, echoed in X-Request-Id and logged on
//     exactly one JSON line with method, route, status and duration; query
//     strings, bodies, assertions, codes, tokens and keys are never logged.
//   - On shutdown, health and /readyz turn NOT_SERVING first, then in-flight
//     requests get up to the configured bound to finish.
package server
