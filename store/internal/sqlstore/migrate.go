package sqlstore

import (
	"context"
	"errors"
	"fmt"
)

// Migration is one schema version: statements run in order, in one
// transaction with the bookkeeping row. A nil Migration is a version this
// build does not have (it is being written on another branch): Migrate
// skips it without recording it, and applies it once a build has it.
type Migration []string

// Migrate brings the schema to len(migrations) in one write transaction.
// lock, when not empty, runs first and must serialize concurrent migrators
// until the transaction ends (PostgreSQL: pg_advisory_xact_lock). Without
// it the transaction itself must be exclusive (SQLite: BEGIN IMMEDIATE).
// Every version not yet recorded in schema_migrations is applied in order,
// also one below the newest recorded (a version that arrived late, see
// Migration), so every replica may call it at start.
// timeType is the column type of a time in this dialect.
func (db *DB) Migrate(ctx context.Context, lock, timeType string, migrations []Migration) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations"+
		" (version INTEGER PRIMARY KEY, applied_at "+timeType+" NOT NULL)"); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: read versions: %w", err)
	}
	current := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: read versions: %w", err)
		}
		applied[v] = true
		current = max(current, v)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("migrate: read versions: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, len(migrations))
	}
	for v := 1; v <= len(migrations); v++ {
		if applied[v] || migrations[v-1] == nil {
			continue
		}
		for i, stmt := range migrations[v-1] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: version %d statement %d: %w", v, i+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
			v, db.t(db.now())); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
