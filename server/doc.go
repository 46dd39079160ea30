// Package server is the only place that speaks gRPC and HTTP. It wires the
// protocol packages (saml, token, policy) to the store and serves:
//
//   - the ssogate.v1 API on the gRPC listener (optionally TLS or mutual
//     TLS), and the same API through grpc-gateway under /v1/ on the HTTP
//     listener (the gateway reaches the services in memory, behind the same
//     interceptors);
//   - the browser and IdP routes (docs/architecture.md, "Surfaces"): /saml/{id}/login, /acs,
//     /slo, /metadata, /authn/{request_id}, /continue (the consent page's
//     button, package consent), /.well-known/jwks.json; and a connection's
//     own ACS URL (service_provider.acs_url, for connections migrated from
//     another SP) at its path, on external_url's host or a public_hosts one;
//   - the operator routes /healthz, /readyz and /metrics, and
//     grpc.health.v1 per service. With operator_addr set, /metrics, /v1/,
//     the detailed /readyz and gRPC reflection are served on that listener
//     only.
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
//     refresh tokens rotate and a reused one revokes its session (unless it
//     is a retry within the retry window while its successor is unused);
//     an IdP-initiated login issues nothing before the user confirms on the
//     consent page (unless the connection opts out); the asserted email is
//     bound to the connection's email domains by its email_domain_policy.
//   - A store that cannot be reached or written is UNAVAILABLE to callers
//     with a message naming the store and nothing of the driver (mapped
//     once, in the interceptors); health of the store-dependent services
//     is NOT_SERVING meanwhile and SERVING again after recovery.
//   - Every refusal has a saml.Reason, an audit event with the admin-facing
//     message, a metric, and for browsers a generic page with a correlation
//     id equal to the request id.
//   - ValidateToken never queries the store: revocations are held in memory
//     and kept current by PostgreSQL LISTEN/NOTIFY and a one-second poll.
//   - Every request gets a request id, echoed in X-Request-Id and logged on
//     exactly one JSON line with method, route, status and duration (a
//     ValidateToken that finds the token valid is counted, not logged); query
//     strings, bodies, assertions, codes, tokens and keys are never logged.
//   - The unauthenticated edge is bounded: the browser routes are rate
//     limited per client and per connection (package ratelimit), ACS and
//     SLO validations pass a gate of concurrent slots and body bytes (503
//     beyond it), a REST body is bounded and read only after its API key is
//     known, unauthenticated refusals are audited once per kind, client and
//     minute with a count, and every outbound fetch goes through netguard.
//   - SP private keys (the shared one and a connection's own) are sealed
//     under the KEK and never returned or logged; an imported key must be
//     RSA of at least 2048 bits and match its certificate. During an SP key
//     rotation both certificates are published and requests are signed with
//     the current key until the transition time, the same on every replica.
//   - The public /readyz says only "ready" or "not ready"; readinessDetail
//     (for an operator listener) says why.
//   - On shutdown, health and /readyz turn NOT_SERVING first, then in-flight
//     requests get up to the configured bound to finish.
package server
