// Package store defines what ssogate remembers: connections, pending
// AuthnRequests, the assertion replay cache, one-time codes, sessions and
// their revocations, refresh tokens, signing keys and the audit log.
//
// The Store interface is implemented by store/sqlite (one file, the default
// of `ssogate serve`) and store/postgres (several replicas on one database).
// Both pass the same conformance suite, store/storetest, so code written
// against Store behaves the same on either.
//
// # What a Store guarantees
//
//   - Single-use values stay single-use across goroutines, processes and
//     replicas: ConsumePendingRequest, ConsumeCode, RecordAssertion and
//     RotateRefreshToken each have exactly one winner, decided by the
//     database in one statement or one transaction. Losers learn why through
//     the sentinel errors ErrConsumed, ErrExpired, ErrReused and ErrNotFound.
//   - A login completes in one transaction: CompleteLogin records the
//     assertion ID, consumes the pending request, creates the session and
//     stores the code (with the events of its context), and RedeemCode
//     spends a code and stores the session's first refresh token. Either
//     everything commits or nothing does; the single-use parts have one
//     winner as above, and a loser learns which part lost
//     (CompletionError).
//   - Every connection write moves ConnectionChanges in its own
//     transaction, so a replica that caches connections can tell, with one
//     read, whether any changed anywhere.
//   - A method that returned nil has committed durably: the row survives the
//     process being killed (SQLite runs in WAL mode with synchronous=FULL, so
//     it also survives power loss).
//   - Revocations carry a sequence number that only grows, and a revocation
//     with a smaller Seq is always visible before one with a larger Seq, so a
//     replica that polls Revocations(lastSeq) never misses one.
//   - The audit log is the event log. Every event gets a Sequence (1, 2, 3,
//     ...) in commit order without gaps, so a reader following EventsAfter
//     its last Sequence misses nothing and sees nothing twice. An event is
//     written in the same transaction as the change it records: a write
//     whose context carries events (WithEvents) appends them atomically with
//     its change, or neither happens.
//   - Webhook deliveries are leased: ClaimWebhookDelivery hands a delivery
//     to one claimer at a time across replicas (FOR UPDATE SKIP LOCKED on
//     PostgreSQL), and only the oldest pending delivery of an endpoint, so
//     each endpoint receives its events in order.
//   - Times are stored with microsecond precision and returned in UTC; the
//     zero time.Time is stored as NULL and returned as the zero time.
//   - Empty byte slices come back as nil.
//   - Migrations run at Open, once, even when several replicas start at the
//     same moment.
//
// # What a Store leaves to its caller
//
//   - Secrets arrive already protected: codes and refresh tokens as their
//     SHA-256 hash, signing keys sealed by the token package. The store never
//     sees a plaintext code, token or private key.
//   - Connection content is opaque JSON in Connection.Config; the store only
//     indexes the id, tenant, state and email domains.
//   - Expiry is a decision made with the caller's clock: methods that judge
//     expiry take now. A value is expired when now >= ExpiresAt.
//   - GetSession and FindSessions return sessions whatever their state; the
//     caller checks Session.Live.
//   - Deleting a connection does not revoke its sessions: call
//     RevokeConnection first.
//   - Sweep must be called periodically (any replica, any number at once).
package store
