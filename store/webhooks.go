package store

import "time"

// Webhook states.
const (
	WebhookActive  = "active"
	WebhookFailing = "failing" // a delivery failed for longer than the retry window; deliveries wait
)

// Webhook delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed" // given up; RetryWebhookDelivery makes it pending again
)

// Webhook is one endpoint that receives events. Secrets are sealed by the
// caller; the store never sees them in the clear.
type Webhook struct {
	ID         string
	URL        string
	EventTypes []string // empty: every type
	// SecretSealed signs every delivery. PreviousSecretSealed, while
	// PreviousUntil is in the future, signs them too (rotation overlap).
	SecretSealed         []byte
	PreviousSecretSealed []byte
	PreviousUntil        time.Time
	// Cursor is the Sequence of the last event enqueued for this endpoint.
	Cursor    int64
	State     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// WebhookDelivery is one event on its way to one endpoint. Its ID is the
// message id the receiver sees (webhook-id), the same on every attempt.
type WebhookDelivery struct {
	ID             string
	WebhookID      string
	EventSequence  int64
	EventID        string
	Status         string
	Attempts       int
	NextAttemptAt  time.Time
	FirstAttemptAt time.Time
	LastAttemptAt  time.Time
	LastStatusCode int // HTTP status of the last attempt; 0 when none came back
	LastLatency    time.Duration
	LastError      string
	CreatedAt      time.Time
}
