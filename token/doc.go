// Package token issues and checks ssogate's tokens (docs/architecture.md,
// "Tokens and keys"; the claims, for integrators: README, "Protect your
// routes").
//
// Access tokens are JWTs following RFC 9068: header typ "at+jwt" and the
// kid of the signing key; signed with ES256 by default, EdDSA or RS256 if
// configured. Claims: iss, sub (see Subject), aud, exp (5 minutes by
// default), iat, nbf, jti, sid, tenant, conn, client_id, email, name,
// given_name, family_name, groups, roles, auth_time, acr, and mapped extra
// claims, which can never overwrite a reserved one (ReservedClaim).
//
// What Verify guarantees about a token it accepts: it is signed by a key
// of this KeySet that is published now, with the algorithm that key was
// made for (golang-jwt is only ever offered ES256, EdDSA and RS256, so
// never "none" nor HMAC keyed with a public key); typ is at+jwt; no crit
// header; iss is ours; aud names one of ours; exp, nbf and iat hold within
// the leeway; sub, sid and jti are present; and the RevocationChecker does
// not report it revoked. Every rejection matches ErrInvalid and a reason
// (ErrExpired, ErrRevoked, ...); messages hold no token, signature or key
// material.
//
// Signing keys (KeySet) live in a KeyStore shared by all replicas; private
// keys are sealed with AES-256-GCM under a 32-byte key-encryption key
// (LoadKEK, SSOGATE_KEK), bound to their key id and algorithm. Rotation
// publishes a key in the JWKS PublishLead before it signs and keeps a
// retired key published until every token it signed has expired. Rotate is
// safe to run on every replica at once: successor key ids are derived, and
// the store's unique key id lets one replica win.
//
// Refresh tokens are 256 random bits, stored only as SHA-256 hashes,
// rotated on every use, never valid past their session; a spent one
// presented again makes the store revoke the session (RefreshStore
// documents the store's side).
//
// What is left to the caller: persisting keys, refresh tokens and
// revocations (the KeyStore, RefreshStore and RevocationChecker
// interfaces, which the server adapts to the store); running Maintain (or
// Rotate) on every replica; serving JWKS with a Cache-Control max-age well
// below PublishLead; and mapping errors to gRPC and HTTP status. The
// package knows nothing of gRPC, HTTP or SQL. Time and randomness come
// from the configs.
package token
