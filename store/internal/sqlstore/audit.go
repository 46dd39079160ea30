package sqlstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

const auditCols = "id, time, type, connection_id, tenant_id, subject, reason, correlation_id, message, detail"

// AppendAudit implements store.Store.
func (db *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (err error) {
	defer db.classify(&err)
	if e.ID == "" {
		var b [16]byte
		if _, err := io.ReadFull(db.rand, b[:]); err != nil {
			return fmt.Errorf("append audit event: generate id: %w", err)
		}
		e.ID = hex.EncodeToString(b[:])
	}
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	return db.insert(ctx, db.w, fmt.Sprintf("append audit event %q", e.ID),
		"INSERT INTO audit_events ("+auditCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		e.ID, db.t(e.Time), e.Type, e.ConnectionID, e.TenantID, e.Subject, e.Reason, e.CorrelationID, e.Message,
		blob(e.Detail))
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
		var e store.AuditEvent
		var seq int64
		if err := rows.Scan(&seq, &e.ID, timeCol{&e.Time}, &e.Type, &e.ConnectionID, &e.TenantID, &e.Subject,
			&e.Reason, &e.CorrelationID, &e.Message, bytesCol{&e.Detail}); err != nil {
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
