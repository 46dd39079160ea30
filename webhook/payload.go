package webhook

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ssogate/ssogate/store"
)

// SchemaVersion is the version of the event JSON: additions (new types,
// new fields under data) keep it; a change of meaning bumps it.
const SchemaVersion = "2026-12-01"

// Event is the JSON of one event, the body of a delivery: identity and
// routing fields at the top, the rest under data.
type Event struct {
	Type         string         `json:"type"`
	ID           string         `json:"id"`
	Sequence     int64          `json:"sequence"`
	Time         time.Time      `json:"time"`
	ConnectionID string         `json:"connection_id,omitempty"`
	TenantID     string         `json:"tenant_id,omitempty"`
	Version      string         `json:"version"`
	Data         map[string]any `json:"data"`
}

// EventOf renders a stored event. data holds subject, reason (a
// RejectionReason name without its prefix), message, correlation_id and the
// event's own detail fields, none of which overwrite those four.
func EventOf(e store.AuditEvent) (Event, error) {
	data := map[string]any{}
	if len(e.Detail) > 0 {
		if err := json.Unmarshal(e.Detail, &data); err != nil {
			return Event{}, fmt.Errorf("event %q: detail: %w", e.ID, err)
		}
	}
	for k, v := range map[string]string{"subject": e.Subject, "reason": e.Reason, "message": e.Message,
		"correlation_id": e.CorrelationID} {
		if v != "" {
			data[k] = v
		} else {
			delete(data, k)
		}
	}
	return Event{Type: e.Type, ID: e.ID, Sequence: e.Sequence, Time: e.Time.UTC(), ConnectionID: e.ConnectionID,
		TenantID: e.TenantID, Version: SchemaVersion, Data: data}, nil
}

// Payload is the delivery body of e.
func Payload(e store.AuditEvent) ([]byte, error) {
	ev, err := EventOf(e)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}
