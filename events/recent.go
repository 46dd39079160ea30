package events

import (
	"context"

	"github.com/ssogate/ssogate/store"
)

// Notices are the event types that concern a connection's IdP admin: what
// a setup portal's status page shows.
var Notices = []string{"certificate.expiring", "certificate.rotated", "metadata.refresh_failed", "metadata.refreshed", "sp_certificate.expiring",
	"connection.activated", "connection.disabled"}

// Recent returns the newest n events of one connection of the given types
// (every type when empty), newest first.
func Recent(ctx context.Context, log Log, connectionID string, types []string, n int) ([]store.AuditEvent, error) {
	return log.EventsAfter(ctx, store.EventsQuery{ConnectionID: connectionID, Types: types, Limit: n, Newest: true})
}
