// Package client is what a Go backend needs to use ssogate: Dial returns
// the API's service clients authenticated with an API key, and Verifier
// checks the access tokens ssogate issues, offline against the JWKS or,
// with Online, also against ValidateToken.
//
// What a Verifier guarantees for a token it accepts: a compact JWS whose
// header says typ at+jwt (RFC 9068) and names, by kid, a key of the
// issuer's published set; signed with exactly that key's algorithm (the
// header cannot choose another); iss equal to the configured issuer; the
// configured audience among aud; exp present and not past, nbf not ahead,
// both within the leeway. Offline, a revoked session's tokens keep being
// accepted until they expire (five minutes by default); with Online, a
// revocation is seen within OnlineCacheTTL (one second by default).
//
// The JWKS is cached for the max-age its response gives (bounded to
// between one second and a day) and fetched again early, at most once a
// second, when a token names a kid the cache does not hold: a key that
// ssogate rotates in is picked up on its first token, and a flood of
// tokens with made-up kids costs one fetch a second.
//
// HTTPMiddleware and the gRPC interceptors put the verified Identity in
// the request's context (IdentityFrom); refusals are 401 (UNAUTHENTICATED)
// naming the check that failed, with an RFC 6750 WWW-Authenticate
// challenge over HTTP.
package client
