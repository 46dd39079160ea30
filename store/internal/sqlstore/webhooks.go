package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

const webhookCols = "id, url, event_types, secret_sealed, previous_secret_sealed, previous_until, cursor, state," +
	" created_at, updated_at"

func scanWebhook(row interface{ Scan(...any) error }) (store.Webhook, error) {
	var w store.Webhook
	var types string
	err := row.Scan(&w.ID, &w.URL, &types, bytesCol{&w.SecretSealed}, bytesCol{&w.PreviousSecretSealed},
		timeCol{&w.PreviousUntil}, &w.Cursor, &w.State, timeCol{&w.CreatedAt}, timeCol{&w.UpdatedAt})
	if types != "" {
		w.EventTypes = strings.Split(types, ",")
	}
	return w, err
}

// CreateWebhook implements store.Store.
func (db *DB) CreateWebhook(ctx context.Context, w store.Webhook) (err error) {
	defer db.classify(&err)
	if err := required("create webhook", "id", w.ID, "url", w.URL, "secret", w.SecretSealed); err != nil {
		return err
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = db.now()
	}
	w.UpdatedAt = w.CreatedAt
	w.State = store.WebhookActive
	return db.write(ctx, func(q execer) error {
		return db.insert(ctx, q, fmt.Sprintf("create webhook %q", w.ID),
			"INSERT INTO webhooks ("+webhookCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
			w.ID, w.URL, strings.Join(w.EventTypes, ","), w.SecretSealed, blob(w.PreviousSecretSealed),
			db.t(w.PreviousUntil), w.Cursor, w.State, db.t(w.CreatedAt), db.t(w.UpdatedAt))
	})
}

// GetWebhook implements store.Store.
func (db *DB) GetWebhook(ctx context.Context, id string) (_ store.Webhook, err error) {
	defer db.classify(&err)
	w, err := scanWebhook(db.r.QueryRowContext(ctx, "SELECT "+webhookCols+" FROM webhooks WHERE id = $1", id))
	if err != nil {
		return store.Webhook{}, notFound(fmt.Sprintf("get webhook %q", id), err)
	}
	return w, nil
}

// ListWebhooks implements store.Store.
func (db *DB) ListWebhooks(ctx context.Context) (_ []store.Webhook, err error) {
	defer db.classify(&err)
	rows, err := db.r.QueryContext(ctx, "SELECT "+webhookCols+" FROM webhooks ORDER BY created_at, id")
	return collectRows("list webhooks", rows, err, scanWebhook)
}

// UpdateWebhook implements store.Store.
func (db *DB) UpdateWebhook(ctx context.Context, w store.Webhook) (err error) {
	defer db.classify(&err)
	return db.write(ctx, func(q execer) error {
		return mustAffect(ctx, q, fmt.Sprintf("update webhook %q", w.ID),
			"UPDATE webhooks SET url = $2, event_types = $3, secret_sealed = $4, previous_secret_sealed = $5,"+
				" previous_until = $6, state = $7, updated_at = $8 WHERE id = $1",
			w.ID, w.URL, strings.Join(w.EventTypes, ","), w.SecretSealed, blob(w.PreviousSecretSealed),
			db.t(w.PreviousUntil), w.State, db.t(db.now()))
	})
}

// DeleteWebhook implements store.Store.
func (db *DB) DeleteWebhook(ctx context.Context, id string) (err error) {
	defer db.classify(&err)
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := mustAffect(ctx, tx, fmt.Sprintf("delete webhook %q", id), "DELETE FROM webhooks WHERE id = $1", id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM webhook_deliveries WHERE webhook_id = $1", id)
		return err
	})
}

// EnqueueWebhookDeliveries implements store.Store.
func (db *DB) EnqueueWebhookDeliveries(ctx context.Context, now time.Time) (_ int, err error) {
	defer db.classify(&err)
	hooks, err := db.ListWebhooks(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, h := range hooks {
		last, err := db.LastEventSequence(ctx)
		if err != nil {
			return total, err
		}
		if h.Cursor >= last {
			continue
		}
		n, err := db.enqueue(ctx, h.ID, now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// enqueue moves one webhook's cursor forward over the events after it,
// adding a delivery for each it subscribes to, with its row locked so that
// one replica at a time does it.
func (db *DB) enqueue(ctx context.Context, webhookID string, now time.Time) (int, error) {
	what := fmt.Sprintf("enqueue deliveries of webhook %q", webhookID)
	n := 0
	err := db.tx(ctx, func(tx *sql.Tx) error {
		h, err := scanWebhook(tx.QueryRowContext(ctx, "SELECT "+webhookCols+" FROM webhooks WHERE id = $1"+db.d.SkipLocked, webhookID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil // deleted, or another replica is at it
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		events, err := db.EventsAfter(ctx, store.EventsQuery{After: h.Cursor, Limit: store.MaxPageSize})
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if len(events) == 0 {
			return nil
		}
		for _, e := range events {
			if len(h.EventTypes) > 0 && !slices.Contains(h.EventTypes, e.Type) {
				continue
			}
			var b [16]byte
			if _, err := io.ReadFull(db.rand, b[:]); err != nil {
				return fmt.Errorf("%s: generate id: %w", what, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO webhook_deliveries (id, webhook_id, event_sequence, event_id,"+
				" status, attempts, next_attempt_at, last_status_code, last_latency_micros, last_error, lease_owner,"+
				" created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, 0, 0, '', '', $6) ON CONFLICT DO NOTHING",
				"msg_"+hex.EncodeToString(b[:]), h.ID, e.Sequence, e.ID, store.DeliveryPending, db.t(now)); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			n++
		}
		_, err = tx.ExecContext(ctx, "UPDATE webhooks SET cursor = $2 WHERE id = $1", h.ID, events[len(events)-1].Sequence)
		return err
	})
	return n, err
}

const deliveryCols = "id, webhook_id, event_sequence, event_id, status, attempts, next_attempt_at, first_attempt_at," +
	" last_attempt_at, last_status_code, last_latency_micros, last_error, created_at"

func scanDelivery(row interface{ Scan(...any) error }) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var latency int64
	err := row.Scan(&d.ID, &d.WebhookID, &d.EventSequence, &d.EventID, &d.Status, &d.Attempts,
		timeCol{&d.NextAttemptAt}, timeCol{&d.FirstAttemptAt}, timeCol{&d.LastAttemptAt}, &d.LastStatusCode,
		&latency, &d.LastError, timeCol{&d.CreatedAt})
	d.LastLatency = time.Duration(latency) * time.Microsecond
	return d, err
}

// ClaimWebhookDelivery implements store.Store.
func (db *DB) ClaimWebhookDelivery(ctx context.Context, owner string, now, leaseUntil time.Time) (_ store.WebhookDelivery, err error) {
	defer db.classify(&err)
	const what = "claim webhook delivery"
	var d store.WebhookDelivery
	err = db.tx(ctx, func(tx *sql.Tx) error {
		// The head of each active endpoint's queue: its pending delivery with
		// the smallest sequence. Later ones wait, so an endpoint sees its
		// events in order.
		row := tx.QueryRowContext(ctx, "SELECT "+deliveryCols+" FROM webhook_deliveries d"+
			" WHERE d.status = $1 AND d.next_attempt_at <= $2 AND (d.lease_until IS NULL OR d.lease_until <= $2)"+
			" AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.state = $3)"+
			" AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id"+
			" AND e.status = $1 AND e.event_sequence < d.event_sequence)"+
			" ORDER BY d.next_attempt_at LIMIT 1"+db.d.SkipLocked,
			store.DeliveryPending, db.t(now), store.WebhookActive)
		var err error
		if d, err = scanDelivery(row); err != nil {
			return notFound(what, err)
		}
		return mustAffect(ctx, tx, what, "UPDATE webhook_deliveries SET lease_owner = $2, lease_until = $3"+
			" WHERE id = $1", d.ID, owner, db.t(leaseUntil))
	})
	return d, err
}

// FinishWebhookDelivery implements store.Store.
func (db *DB) FinishWebhookDelivery(ctx context.Context, d store.WebhookDelivery, owner string, failWebhook bool) (err error) {
	defer db.classify(&err)
	what := fmt.Sprintf("finish webhook delivery %q", d.ID)
	return db.tx(ctx, func(tx *sql.Tx) error {
		n, err := affected(ctx, tx, what, "UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt_at = $5,"+
			" first_attempt_at = $6, last_attempt_at = $7, last_status_code = $8, last_latency_micros = $9,"+
			" last_error = $10, lease_owner = '', lease_until = NULL WHERE id = $1 AND lease_owner = $2",
			d.ID, owner, d.Status, d.Attempts, db.t(d.NextAttemptAt), db.t(d.FirstAttemptAt), db.t(d.LastAttemptAt),
			d.LastStatusCode, d.LastLatency.Microseconds(), d.LastError)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s: lease lost: %w", what, store.ErrConflict)
		}
		if failWebhook {
			_, err = tx.ExecContext(ctx, "UPDATE webhooks SET state = $2, updated_at = $3 WHERE id = $1",
				d.WebhookID, store.WebhookFailing, db.t(db.now()))
		}
		return err
	})
}

// ListWebhookDeliveries implements store.Store.
func (db *DB) ListWebhookDeliveries(ctx context.Context, webhookID string, limit int) (_ []store.WebhookDelivery, err error) {
	defer db.classify(&err)
	rows, err := db.r.QueryContext(ctx, "SELECT "+deliveryCols+" FROM webhook_deliveries WHERE webhook_id = $1"+
		" ORDER BY event_sequence DESC LIMIT $2", webhookID, pageSize(limit))
	return collectRows(fmt.Sprintf("list deliveries of webhook %q", webhookID), rows, err, scanDelivery)
}

// RetryWebhookDelivery implements store.Store.
func (db *DB) RetryWebhookDelivery(ctx context.Context, id string, now time.Time) (_ store.WebhookDelivery, err error) {
	defer db.classify(&err)
	what := fmt.Sprintf("retry webhook delivery %q", id)
	var d store.WebhookDelivery
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if d, err = scanDelivery(tx.QueryRowContext(ctx, "UPDATE webhook_deliveries SET status = $2,"+
			" next_attempt_at = $3, first_attempt_at = NULL WHERE id = $1 RETURNING "+deliveryCols,
			id, store.DeliveryPending, db.t(now))); err != nil {
			return notFound(what, err)
		}
		_, err = tx.ExecContext(ctx, "UPDATE webhooks SET state = $2, updated_at = $3 WHERE id = $1",
			d.WebhookID, store.WebhookActive, db.t(db.now()))
		return err
	})
	return d, err
}
