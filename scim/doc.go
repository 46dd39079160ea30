// Package scim is the SCIM 2.0 service provider (RFC 7643/7644) that
// identity providers push their directory into, one per connection, under
// /scim/v2/{connection_id}/: Users (with the enterprise extension), Groups,
// ServiceProviderConfig, ResourceTypes and Schemas.
//
// Guarantees:
//   - Every request carries a bearer token made for that connection (stored
//     hashed, compared in constant time); a token of another connection, a
//     revoked or unknown one all get the same 401.
//   - Errors are SCIM error bodies with the status and scimType a client
//     can act on; a body larger than the configured bound is refused with
//     413 before it is parsed.
//   - The quirks of the clients in the field are accepted: Entra ID's
//     capitalised PATCH ops, "active" sent as the string "False", no-path
//     replaces carrying dotted or URN-prefixed attribute names, member
//     batches; Okta's PUT full replace and active:false deactivation.
//   - After every write that leaves a user inactive or deleted, Hooks.Deprovisioned
//     runs before the response is sent; after members leave a group (or a
//     group is renamed or deleted), Hooks.MembershipChanged runs for them.
//     A hook failure is a 500, and a retried PATCH or PUT runs the hook
//     again (it runs whenever a write leaves the user inactive), so the
//     IdP's retry finishes what failed.
//   - The request log records method, path, status and scimType, never
//     bodies, query strings or tokens.
//
// Left to the caller: what "deprovisioned" does to sessions, how the
// connection's policy is applied, rate limiting (a Limiter is consulted
// when set), and the audit log (Hooks.Audit).
package scim
