package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

const auditCols = "sequence, id, time, type, connection_id, tenant_id, subject, reason, correlation_id, message, detail"

func scanAudit(row interface{ Scan(...any) error }) (store.AuditEvent, error) {
	var e store.AuditEvent
	err := row.Scan(&e.Sequence, &e.ID, timeCol{&e.Time}, &e.Type, &e.ConnectionID, &e.TenantID, &e.Subject,
		&e.Reason, &e.CorrelationID, &e.Message, bytesCol{&e.Detail})
	return e, err
}

// AppendAudit implements store.Store: the event, with any the context
// still carries, in a transaction of its own.
func (db *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (err error) {
	defer db.classify(&err)
	ctx = store.WithEvents(ctx, e)
	if db.d.CTEWrites {
		if done, err := db.appendAuditOneStatement(ctx); done {
			return err
		}
	}
	return db.tx(ctx, func(*sql.Tx) error { return nil })
}

// appendEvents writes events inside tx and returns the last Sequence. It
// runs last in a transaction: the row lock on event_sequence, which makes
// concurrent appenders wait for each other's commit, is then held for as
// short a time as possible. Because the lock is held until commit, a
// Sequence is visible only after every smaller one, and a rolled-back
// transaction takes its numbers back: the log has no gaps.
func (db *DB) appendEvents(ctx context.Context, tx *sql.Tx, events []store.AuditEvent) (int64, error) {
	events, err := db.fillEvents(events)
	if err != nil {
		return 0, err
	}
	if db.d.CTEWrites {
		return db.appendEventsOneStatement(ctx, tx, events)
	}
	var last int64
	if err := db.prep(tx).QueryRowContext(ctx, "UPDATE event_sequence SET last = last + $1 WHERE id = 1 RETURNING last",
		len(events)).Scan(&last); err != nil {
		return 0, fmt.Errorf("append audit events: assign sequence: %w", err)
	}
	seq := last - int64(len(events))
	for _, e := range events {
		seq++
		if err := db.insert(ctx, db.prep(tx), fmt.Sprintf("append audit event %q", e.ID),
			"INSERT INTO audit_events ("+auditCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
			seq, e.ID, db.t(e.Time), e.Type, e.ConnectionID, e.TenantID, e.Subject, e.Reason, e.CorrelationID,
			e.Message, blob(e.Detail)); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// fillEvents returns a copy of events with every missing ID and Time
// filled in.
func (db *DB) fillEvents(events []store.AuditEvent) ([]store.AuditEvent, error) {
	events = slices.Clone(events)
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			var b [16]byte
			if _, err := io.ReadFull(db.rand, b[:]); err != nil {
				return nil, fmt.Errorf("append audit event: generate id: %w", err)
			}
			e.ID = hex.EncodeToString(b[:])
		}
		if e.Time.IsZero() {
			e.Time = db.now()
		}
	}
	return events, nil
}

// appendEventsOneStatement is appendEvents in one round trip (PostgreSQL):
// the sequence update, the rows and the notification (sent at commit) as
// one statement with data-modifying CTEs.
func (db *DB) appendEventsOneStatement(ctx context.Context, tx *sql.Tx, events []store.AuditEvent) (int64, error) {
	var c chain
	ev := db.chainEvents(&c, events)
	var res eventsResult
	if err := tx.QueryRowContext(ctx, c.statement("SELECT "+ev), c.q.args...).Scan(res.dest()...); err != nil {
		if db.d.IsUniqueViolation(err) {
			return 0, fmt.Errorf("append audit events: %w", store.ErrConflict)
		}
		return 0, fmt.Errorf("append audit events: %w", err)
	}
	return res.check(events)
}

// LastEventSequence implements store.Store.
func (db *DB) LastEventSequence(ctx context.Context) (_ int64, err error) {
	defer db.classify(&err)
	var last int64
	if err := db.prep(db.r).QueryRowContext(ctx, "SELECT last FROM event_sequence WHERE id = 1").Scan(&last); err != nil {
		return 0, fmt.Errorf("last event sequence: %w", err)
	}
	return last, nil
}

// EventsAfter implements store.Store.
func (db *DB) EventsAfter(ctx context.Context, eq store.EventsQuery) (_ []store.AuditEvent, err error) {
	defer db.classify(&err)
	const what = "read events"
	var q query
	q.where("sequence > " + q.arg(eq.After))
	if eq.ConnectionID != "" {
		q.where("connection_id = " + q.arg(eq.ConnectionID))
	}
	if len(eq.Types) > 0 {
		ph := make([]string, len(eq.Types))
		for i, t := range eq.Types {
			ph[i] = q.arg(t)
		}
		q.where("type IN (" + strings.Join(ph, ", ") + ")")
	}
	order := " ORDER BY sequence"
	if eq.Newest {
		order += " DESC"
	}
	rows, err := db.r.QueryContext(ctx, "SELECT "+auditCols+" FROM audit_events"+q.clause()+
		order+" LIMIT "+q.arg(pageSize(eq.Limit)), q.args...)
	return collectRows(what, rows, err, scanAudit)
}

// auditCursor is the position after the last event of a page: its time
// (microseconds) and its insertion sequence, which breaks ties.
type auditCursor struct {
	micros, seq int64
}

func (c auditCursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", c.micros, c.seq))
}

func parseAuditCursor(s string) (auditCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return auditCursor{}, err
	}
	m, q, ok := strings.Cut(string(b), ".")
	if !ok {
		return auditCursor{}, fmt.Errorf("no separator")
	}
	var c auditCursor
	if c.micros, err = strconv.ParseInt(m, 10, 64); err != nil {
		return auditCursor{}, err
	}
	if c.seq, err = strconv.ParseInt(q, 10, 64); err != nil {
		return auditCursor{}, err
	}
	return c, nil
}

// ListAudit implements store.Store.
func (db *DB) ListAudit(ctx context.Context, aq store.AuditQuery) (_ []store.AuditEvent, _ string, err error) {
	defer db.classify(&err)
	const what = "list audit events"
	var q query
	if aq.ConnectionID != "" {
		q.where("connection_id = " + q.arg(aq.ConnectionID))
	}
	if aq.Type != "" {
		q.where("type = " + q.arg(aq.Type))
	}
	if aq.CorrelationID != "" {
		q.where("correlation_id = " + q.arg(aq.CorrelationID))
	}
	if !aq.Since.IsZero() {
		q.where("time >= " + q.arg(db.t(aq.Since)))
	}
	if !aq.Until.IsZero() {
		q.where("time < " + q.arg(db.t(aq.Until)))
	}
	if aq.PageToken != "" {
		c, err := parseAuditCursor(aq.PageToken)
		if err != nil {
			return nil, "", fmt.Errorf("%s: page token: %w", what, store.ErrInvalidArgument)
		}
		t := q.arg(db.t(time.UnixMicro(c.micros)))
		s := q.arg(c.seq)
		q.where("(time < " + t + " OR (time = " + t + " AND seq < " + s + "))")
	}
	size := pageSize(aq.PageSize)
	rows, err := db.r.QueryContext(ctx, "SELECT seq, "+auditCols+" FROM audit_events"+q.clause()+
		" ORDER BY time DESC, seq DESC LIMIT "+q.arg(size+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	var last auditCursor
	for rows.Next() {
		var seq int64
		var e store.AuditEvent
		if err := rows.Scan(&seq, &e.Sequence, &e.ID, timeCol{&e.Time}, &e.Type, &e.ConnectionID, &e.TenantID,
			&e.Subject, &e.Reason, &e.CorrelationID, &e.Message, bytesCol{&e.Detail}); err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		if len(out) == size {
			return out, last.String(), nil
		}
		out = append(out, e)
		last = auditCursor{micros: e.Time.UnixMicro(), seq: seq}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	return out, "", nil
}

// PruneAudit implements store.Store.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (_ int64, err error) {
	defer db.classify(&err)
	if before.IsZero() {
		return 0, fmt.Errorf("prune audit: before is zero: %w", store.ErrInvalidArgument)
	}
	return affected(ctx, db.w, "prune audit", "DELETE FROM audit_events WHERE time < $1", db.t(before))
}
