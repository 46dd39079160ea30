// Package webhook pushes the event log to HTTP endpoints as Standard
// Webhooks (https://www.standardwebhooks.com).
//
// What it guarantees:
//   - Every delivery is signed: `webhook-id` (the delivery's message id,
//     the same on every attempt), `webhook-timestamp` (Unix seconds) and
//     `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`,
//     one signature per live secret (two during a rotation's overlap).
//   - At least once, in sequence order per endpoint: an endpoint's next
//     event is sent only after the previous one was accepted (2xx). A
//     failed attempt is retried with exponential backoff and full jitter
//     for the retry window (24 hours by default); then the delivery is
//     given up, the endpoint is marked failing (its later deliveries wait
//     for a manual retry) and a `webhook.failing` event says so.
//   - One replica per attempt: a delivery is leased in the store (longer
//     than the request timeout) before it is sent. A replica that dies
//     mid-delivery leaves the lease to expire and another replica sends it
//     again, with the same webhook-id, so the receiver can deduplicate.
//   - Secrets are kept sealed under the key-encryption key and opened only
//     to sign; they are never logged.
//
// It leaves to its caller: which addresses may be dialled (the injected
// *http.Client decides; ssogate gives it a guarded dialer), and running
// Dispatcher.Run on every replica.
package webhook
