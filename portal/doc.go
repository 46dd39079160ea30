// Package portal is the setup portal: the pages under /setup/ where a
// customer's IT admin, holding a setup link instead of an API key,
// configures their IdP for one connection, runs test logins, reads why a
// test failed and what to change, activates the connection and later
// checks its status and looks up an end user's refusal by reference id.
//
// Guarantees:
//   - A setup link's secret is 256 random bits, kept only as its SHA-256
//     and compared by hash lookup; GET /setup/{secret} sets the portal
//     cookie and redirects to /setup/ at once, so the secret leaves the
//     address bar before any page (or Referer) could carry it. Pages are
//     served with Referrer-Policy: no-referrer.
//   - The portal session is the link itself: every request re-reads the
//     link, so revoking or expiring it ends every open portal at once. The
//     cookie is HttpOnly, SameSite=Strict, Path=/setup/, and Secure unless
//     the external URL is plain http on loopback.
//   - A session reaches exactly its link's connection: the connection id
//     comes from the stored link, never from the request.
//   - Every state-changing request is a POST carrying a CSRF token derived
//     from the link secret (compared in constant time), and is refused when
//     Origin or Sec-Fetch-Site says it came from another site.
//   - Every form body is bounded (http.MaxBytesReader) and metadata fetched
//     from a URL is bounded too, through the http.Client the caller gives
//     (which decides which addresses may be reached).
//   - Changes go through the same ConnectionService the API uses, under
//     the caller name "setup link <id>", so they are validated and audited
//     as API changes are; activation is refused without a passing test.
//
// The package renders the test-login result page too (RenderTestResult),
// which the ACS calls for test logins: success with warnings, or the
// refusal's reason, message and the fix in the admin's IdP console.
package portal
