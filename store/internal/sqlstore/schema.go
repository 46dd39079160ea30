package sqlstore

// ColumnTypes names the column types of a dialect.
type ColumnTypes struct {
	Time        string // a time: SQLite INTEGER microseconds, PostgreSQL TIMESTAMPTZ
	Bytes       string
	Bool        string
	Int         string // 64-bit
	Serial      string // an ever-increasing 64-bit primary key, never reused
	TableSuffix string // after CREATE TABLE (...), e.g. " STRICT"
}

// Migrations returns the schema versions in a dialect's column types,
// oldest first. Append new versions; never edit a published one.
func Migrations(t ColumnTypes) []Migration {
	return []Migration{
		{ // 1: initial schema
			`CREATE TABLE connections (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL,
			state TEXT NOT NULL,
			domains TEXT NOT NULL,
			config ` + t.Bytes + `,
			version ` + t.Int + ` NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			updated_at ` + t.Time + ` NOT NULL
		)` + t.TableSuffix,
			`CREATE INDEX connections_tenant ON connections (tenant_id, id)`,
			`CREATE TABLE connection_domains (
			domain TEXT PRIMARY KEY,
			connection_id TEXT NOT NULL
		)` + t.TableSuffix,
			`CREATE INDEX connection_domains_connection ON connection_domains (connection_id)`,
			`CREATE TABLE pending_requests (
			connection_id TEXT NOT NULL,
			id TEXT NOT NULL,
			return_to TEXT NOT NULL,
			state TEXT NOT NULL,
			test ` + t.Bool + ` NOT NULL,
			data ` + t.Bytes + `,
			created_at ` + t.Time + ` NOT NULL,
			expires_at ` + t.Time + ` NOT NULL,
			consumed_at ` + t.Time + `,
			PRIMARY KEY (connection_id, id)
		)` + t.TableSuffix,
			`CREATE INDEX pending_requests_expiry ON pending_requests (expires_at)`,
			`CREATE TABLE assertions (
			connection_id TEXT NOT NULL,
			assertion_id TEXT NOT NULL,
			expires_at ` + t.Time + ` NOT NULL,
			PRIMARY KEY (connection_id, assertion_id)
		)` + t.TableSuffix,
			`CREATE INDEX assertions_expiry ON assertions (expires_at)`,
			`CREATE TABLE codes (
			hash ` + t.Bytes + ` PRIMARY KEY,
			session_id TEXT NOT NULL,
			connection_id TEXT NOT NULL,
			data ` + t.Bytes + `,
			created_at ` + t.Time + ` NOT NULL,
			expires_at ` + t.Time + ` NOT NULL,
			consumed_at ` + t.Time + `
		)` + t.TableSuffix,
			`CREATE INDEX codes_expiry ON codes (expires_at)`,
			`CREATE TABLE sessions (
			id TEXT PRIMARY KEY,
			connection_id TEXT NOT NULL,
			tenant_id TEXT NOT NULL,
			subject TEXT NOT NULL,
			name_id TEXT NOT NULL,
			name_id_format TEXT NOT NULL,
			session_index TEXT NOT NULL,
			identity ` + t.Bytes + `,
			created_at ` + t.Time + ` NOT NULL,
			expires_at ` + t.Time + ` NOT NULL,
			revoked_at ` + t.Time + `,
			revoke_reason TEXT NOT NULL
		)` + t.TableSuffix,
			`CREATE INDEX sessions_subject ON sessions (connection_id, subject)`,
			`CREATE INDEX sessions_name_id ON sessions (connection_id, name_id)`,
			`CREATE INDEX sessions_expiry ON sessions (expires_at)`,
			// AUTOINCREMENT: a sequence number is never reused, even after the
			// newest revocation is swept.
			`CREATE TABLE revocations (
			seq ` + t.Serial + `,
			session_id TEXT NOT NULL,
			connection_id TEXT NOT NULL,
			subject TEXT NOT NULL,
			reason TEXT NOT NULL,
			at ` + t.Time + ` NOT NULL,
			expires_at ` + t.Time + ` NOT NULL
		)` + t.TableSuffix,
			`CREATE INDEX revocations_expiry ON revocations (expires_at)`,
			`CREATE TABLE refresh_tokens (
			hash ` + t.Bytes + ` PRIMARY KEY,
			session_id TEXT NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			expires_at ` + t.Time + ` NOT NULL,
			spent_at ` + t.Time + `
		)` + t.TableSuffix,
			`CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at)`,
			`CREATE TABLE signing_keys (
			id TEXT PRIMARY KEY,
			algorithm TEXT NOT NULL,
			public_jwk ` + t.Bytes + `,
			private_sealed ` + t.Bytes + `,
			created_at ` + t.Time + ` NOT NULL,
			publish_at ` + t.Time + `,
			activate_at ` + t.Time + `,
			retire_at ` + t.Time + `,
			expire_at ` + t.Time + `
		)` + t.TableSuffix,
			`CREATE TABLE audit_events (
			seq ` + t.Serial + `,
			id TEXT NOT NULL UNIQUE,
			time ` + t.Time + ` NOT NULL,
			type TEXT NOT NULL,
			connection_id TEXT NOT NULL,
			tenant_id TEXT NOT NULL,
			subject TEXT NOT NULL,
			reason TEXT NOT NULL,
			correlation_id TEXT NOT NULL,
			message TEXT NOT NULL,
			detail ` + t.Bytes + `
		)` + t.TableSuffix,
			`CREATE INDEX audit_events_time ON audit_events (time, seq)`,
			`CREATE INDEX audit_events_connection ON audit_events (connection_id, time, seq)`,
		},
		{ // 2: refresh retries: a spent token names its successor, which is
			// kept sealed under a key only the predecessor's holder can derive.
			`ALTER TABLE refresh_tokens ADD COLUMN next_hash ` + t.Bytes,
			`ALTER TABLE refresh_tokens ADD COLUMN sealed ` + t.Bytes,
		},
		{ // 3: setup links (the setup portal) and audit lookup by reference id
			`CREATE TABLE setup_links (
			id TEXT PRIMARY KEY,
			connection_id TEXT NOT NULL,
			hash ` + t.Bytes + ` NOT NULL UNIQUE,
			features TEXT NOT NULL,
			creator TEXT NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			expires_at ` + t.Time + ` NOT NULL,
			revoked_at ` + t.Time + `
		)` + t.TableSuffix,
			`CREATE INDEX setup_links_connection ON setup_links (connection_id, created_at)`,
			`CREATE INDEX setup_links_expiry ON setup_links (expires_at)`,
			`CREATE INDEX audit_events_correlation ON audit_events (correlation_id)`,
		},
		{ // 4: directory sync (SCIM): users, groups, memberships, tokens, request log
			`CREATE TABLE directory_users (
			connection_id TEXT NOT NULL,
			id TEXT NOT NULL,
			user_name TEXT NOT NULL,
			user_name_lc TEXT NOT NULL,
			external_id TEXT NOT NULL,
			email_lc TEXT NOT NULL,
			display_name TEXT NOT NULL,
			active ` + t.Bool + ` NOT NULL,
			resource ` + t.Bytes + `,
			version ` + t.Int + ` NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			updated_at ` + t.Time + ` NOT NULL,
			deleted_at ` + t.Time + `,
			PRIMARY KEY (connection_id, id)
		)` + t.TableSuffix,
			// Uniqueness binds live users only: a tombstone keeps its
			// userName without blocking a later, new user of that name.
			`CREATE UNIQUE INDEX directory_users_user_name ON directory_users (connection_id, user_name_lc) WHERE deleted_at IS NULL`,
			`CREATE UNIQUE INDEX directory_users_external_id ON directory_users (connection_id, external_id) WHERE deleted_at IS NULL AND external_id <> ''`,
			`CREATE INDEX directory_users_email ON directory_users (connection_id, email_lc)`,
			`CREATE INDEX directory_users_name_any ON directory_users (connection_id, user_name_lc, deleted_at)`,
			`CREATE TABLE directory_groups (
			connection_id TEXT NOT NULL,
			id TEXT NOT NULL,
			display_name TEXT NOT NULL,
			external_id TEXT NOT NULL,
			resource ` + t.Bytes + `,
			version ` + t.Int + ` NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			updated_at ` + t.Time + ` NOT NULL,
			deleted_at ` + t.Time + `,
			PRIMARY KEY (connection_id, id)
		)` + t.TableSuffix,
			`CREATE INDEX directory_groups_display_name ON directory_groups (connection_id, display_name)`,
			`CREATE TABLE directory_members (
			connection_id TEXT NOT NULL,
			group_id TEXT NOT NULL,
			user_id TEXT NOT NULL,
			PRIMARY KEY (connection_id, group_id, user_id)
		)` + t.TableSuffix,
			`CREATE INDEX directory_members_user ON directory_members (connection_id, user_id)`,
			`CREATE TABLE scim_tokens (
			id TEXT PRIMARY KEY,
			connection_id TEXT NOT NULL,
			hash ` + t.Bytes + ` NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			revoked_at ` + t.Time + `
		)` + t.TableSuffix,
			`CREATE INDEX scim_tokens_connection ON scim_tokens (connection_id, created_at)`,
			`CREATE TABLE scim_requests (
			seq ` + t.Serial + `,
			connection_id TEXT NOT NULL,
			time ` + t.Time + ` NOT NULL,
			method TEXT NOT NULL,
			path TEXT NOT NULL,
			status ` + t.Int + ` NOT NULL,
			scim_type TEXT NOT NULL
		)` + t.TableSuffix,
			`CREATE INDEX scim_requests_connection ON scim_requests (connection_id, seq)`,
			`CREATE INDEX scim_requests_time ON scim_requests (time)`,
		},
		{ // 5: events and webhooks. The audit log becomes the event log: each
			// event gets a gap-free sequence in commit order, handed out by the
			// one row of event_sequence (its row lock orders the commits).
			// Webhooks keep a cursor into the log; their deliveries are leased
			// rows.
			`ALTER TABLE audit_events ADD COLUMN sequence ` + t.Int,
			`UPDATE audit_events SET sequence = seq`,
			`CREATE UNIQUE INDEX audit_events_sequence ON audit_events (sequence)`,
			`CREATE TABLE event_sequence (
			id ` + t.Int + ` PRIMARY KEY,
			last ` + t.Int + ` NOT NULL
		)` + t.TableSuffix,
			`INSERT INTO event_sequence (id, last) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_events`,
			`CREATE TABLE webhooks (
			id TEXT PRIMARY KEY,
			url TEXT NOT NULL,
			event_types TEXT NOT NULL,
			secret_sealed ` + t.Bytes + ` NOT NULL,
			previous_secret_sealed ` + t.Bytes + `,
			previous_until ` + t.Time + `,
			cursor ` + t.Int + ` NOT NULL,
			state TEXT NOT NULL,
			created_at ` + t.Time + ` NOT NULL,
			updated_at ` + t.Time + ` NOT NULL
		)` + t.TableSuffix,
			`CREATE TABLE webhook_deliveries (
			id TEXT PRIMARY KEY,
			webhook_id TEXT NOT NULL,
			event_sequence ` + t.Int + ` NOT NULL,
			event_id TEXT NOT NULL,
			status TEXT NOT NULL,
			attempts ` + t.Int + ` NOT NULL,
			next_attempt_at ` + t.Time + ` NOT NULL,
			first_attempt_at ` + t.Time + `,
			last_attempt_at ` + t.Time + `,
			last_status_code ` + t.Int + ` NOT NULL,
			last_latency_micros ` + t.Int + ` NOT NULL,
			last_error TEXT NOT NULL,
			lease_owner TEXT NOT NULL,
			lease_until ` + t.Time + `,
			created_at ` + t.Time + ` NOT NULL,
			UNIQUE (webhook_id, event_sequence)
		)` + t.TableSuffix,
			`CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)`,
		},
		{ // 6: per-connection SP identity overrides (a connection migrated
			// from another SP keeps its entity ID and ACS URL). NULL when
			// derived; unique otherwise, so that concurrent creates on two
			// replicas cannot both claim one.
			`ALTER TABLE connections ADD COLUMN sp_entity_id TEXT`,
			`ALTER TABLE connections ADD COLUMN acs_key TEXT`,
			`CREATE UNIQUE INDEX connections_sp_entity_id ON connections (sp_entity_id)`,
			`CREATE UNIQUE INDEX connections_acs_key ON connections (acs_key)`,
		},
	}
}
