package sqlstore

import (
	"context"
	"fmt"
)

// Migration is one schema version: statements run in order, in one
// transaction with the bookkeeping row.
type Migration []string

// Migrate brings the schema to len(migrations) in one write transaction.
// lock, when not empty, runs first and must serialize concurrent migrators
// until the transaction ends (PostgreSQL: pg_advisory_xact_lock). Without
// it the transaction itself must be exclusive (SQLite: BEGIN IMMEDIATE).
// Versions already applied are skipped, so every replica may call it at
// start.
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
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
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
