package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ssogate/ssogate/store"
)

const connCols = "id, tenant_id, state, domains, config, version, created_at, updated_at, sp_entity_id, acs_key"

func scanConnection(row interface{ Scan(...any) error }) (store.Connection, error) {
	var c store.Connection
	var domains string
	var entityID, acsKey sql.NullString
	err := row.Scan(&c.ID, &c.TenantID, &c.State, &domains, bytesCol{&c.Config}, &c.Version,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, &entityID, &acsKey)
	if err != nil {
		return c, err
	}
	c.SPEntityID, c.ACSKey = entityID.String, acsKey.String
	if err := json.Unmarshal([]byte(domains), &c.Domains); err != nil {
		return c, fmt.Errorf("connection %q: decode domains: %w", c.ID, err)
	}
	if len(c.Domains) == 0 {
		c.Domains = nil
	}
	return c, nil
}

// normalizeDomains lowercases, trims, deduplicates and sorts.
func normalizeDomains(in []string) ([]string, error) {
	var out []string
	for _, d := range in {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" {
			return nil, fmt.Errorf("empty email domain: %w", store.ErrInvalidArgument)
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// prepareConnection validates c and returns its normalized domains and
// their JSON.
func prepareConnection(c store.Connection) ([]string, string, error) {
	if err := required("connection", "id", c.ID); err != nil {
		return nil, "", err
	}
	domains, err := normalizeDomains(c.Domains)
	if err != nil {
		return nil, "", fmt.Errorf("connection %q: %w", c.ID, err)
	}
	js, err := json.Marshal(domains)
	if err != nil {
		return nil, "", fmt.Errorf("connection %q: encode domains: %w", c.ID, err)
	}
	if domains == nil {
		js = []byte("[]")
	}
	return domains, string(js), nil
}

// nullable stores "" as NULL, so that the unique indexes on the SP
// identity columns hold only for values that are set.
func nullable(v string) sql.NullString {
	return sql.NullString{String: v, Valid: v != ""}
}

// claimDomains indexes the domains of connection id; a domain owned by
// another connection is store.ErrConflict.
func (db *DB) claimDomains(ctx context.Context, tx *sql.Tx, id string, domains []string) error {
	for _, d := range domains {
		err := db.insert(ctx, tx, fmt.Sprintf("connection %q: claim domain %q", id, d),
			"INSERT INTO connection_domains (domain, connection_id) VALUES ($1, $2)", d, id)
		if err != nil {
			return err
		}
	}
	return nil
}

// CreateConnection implements store.Store.
func (db *DB) CreateConnection(ctx context.Context, c store.Connection) (err error) {
	defer db.classify(&err)
	domains, js, err := prepareConnection(c)
	if err != nil {
		return err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = db.now()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		err := db.insert(ctx, tx, fmt.Sprintf("create connection %q", c.ID),
			"INSERT INTO connections ("+connCols+") VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9)",
			c.ID, c.TenantID, c.State, js, blob(c.Config), db.t(c.CreatedAt), db.t(c.UpdatedAt),
			nullable(c.SPEntityID), nullable(c.ACSKey))
		if err != nil {
			return err
		}
		if err := db.claimDomains(ctx, tx, c.ID, domains); err != nil {
			return err
		}
		return bumpConnectionChanges(ctx, tx)
	})
}

// GetConnection implements store.Store.
func (db *DB) GetConnection(ctx context.Context, id string) (_ store.Connection, err error) {
	defer db.classify(&err)
	c, err := scanConnection(db.prep(db.r).QueryRowContext(ctx, "SELECT "+connCols+" FROM connections WHERE id = $1", id))
	if err != nil {
		return store.Connection{}, notFound(fmt.Sprintf("get connection %q", id), err)
	}
	return c, nil
}

// ConnectionByDomain implements store.Store.
func (db *DB) ConnectionByDomain(ctx context.Context, domain string) (_ store.Connection, err error) {
	defer db.classify(&err)
	d := strings.ToLower(strings.TrimSpace(domain))
	c, err := scanConnection(db.prep(db.r).QueryRowContext(ctx, "SELECT "+connCols+
		" FROM connections WHERE id = (SELECT connection_id FROM connection_domains WHERE domain = $1)", d))
	if err != nil {
		return store.Connection{}, notFound(fmt.Sprintf("connection for domain %q", d), err)
	}
	return c, nil
}

// ConnectionBySPEntityID implements store.Store.
func (db *DB) ConnectionBySPEntityID(ctx context.Context, entityID string) (_ store.Connection, err error) {
	defer db.classify(&err)
	if entityID == "" {
		return store.Connection{}, fmt.Errorf("connection by SP entity ID: empty: %w", store.ErrNotFound)
	}
	c, err := scanConnection(db.prep(db.r).QueryRowContext(ctx, "SELECT "+connCols+" FROM connections WHERE sp_entity_id = $1", entityID))
	if err != nil {
		return store.Connection{}, notFound(fmt.Sprintf("connection with SP entity ID %q", entityID), err)
	}
	return c, nil
}

// ConnectionByACSKey implements store.Store.
func (db *DB) ConnectionByACSKey(ctx context.Context, key string) (_ store.Connection, err error) {
	defer db.classify(&err)
	if key == "" {
		return store.Connection{}, fmt.Errorf("connection by ACS key: empty: %w", store.ErrNotFound)
	}
	c, err := scanConnection(db.prep(db.r).QueryRowContext(ctx, "SELECT "+connCols+" FROM connections WHERE acs_key = $1", key))
	if err != nil {
		return store.Connection{}, notFound(fmt.Sprintf("connection with ACS %q", key), err)
	}
	return c, nil
}

// ListConnections implements store.Store.
func (db *DB) ListConnections(ctx context.Context, lq store.ListConnectionsQuery) (_ []store.Connection, _ string, err error) {
	defer db.classify(&err)
	var q query
	if lq.TenantID != "" {
		q.where("tenant_id = " + q.arg(lq.TenantID))
	}
	if lq.PageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(lq.PageToken)
		if err != nil || len(after) == 0 {
			return nil, "", fmt.Errorf("list connections: page token: %w", store.ErrInvalidArgument)
		}
		q.where("id > " + q.arg(string(after)))
	}
	size := pageSize(lq.PageSize)
	rows, err := db.r.QueryContext(ctx, "SELECT "+connCols+" FROM connections"+q.clause()+
		" ORDER BY id LIMIT "+q.arg(size+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list connections: %w", err)
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list connections: %w", err)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = base64.RawURLEncoding.EncodeToString([]byte(out[size-1].ID))
	}
	return out, next, nil
}

// UpdateConnection implements store.Store.
func (db *DB) UpdateConnection(ctx context.Context, c store.Connection, expectVersion int64) (_ store.Connection, err error) {
	defer db.classify(&err)
	domains, js, err := prepareConnection(c)
	if err != nil {
		return store.Connection{}, err
	}
	c.Domains = domains
	c.UpdatedAt = db.now()
	what := fmt.Sprintf("update connection %q", c.ID)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "UPDATE connections SET tenant_id = $2, state = $3, domains = $4, config = $5,"+
			" version = version + 1, updated_at = $6, sp_entity_id = $8, acs_key = $9 WHERE id = $1 AND version = $7 RETURNING version, created_at",
			c.ID, c.TenantID, c.State, js, blob(c.Config), db.t(c.UpdatedAt), expectVersion, nullable(c.SPEntityID), nullable(c.ACSKey)).
			Scan(&c.Version, timeCol{&c.CreatedAt})
		if err != nil && db.d.IsUniqueViolation(err) {
			return fmt.Errorf("%s: SP entity ID or ACS taken: %w", what, store.ErrConflict)
		}
		if errors.Is(err, sql.ErrNoRows) {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM connections WHERE id = $1", c.ID).Scan(&one)
			if err != nil {
				return notFound(what, err)
			}
			return fmt.Errorf("%s: version is not %d: %w", what, expectVersion, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM connection_domains WHERE connection_id = $1", c.ID); err != nil {
			return fmt.Errorf("%s: release domains: %w", what, err)
		}
		if err := db.claimDomains(ctx, tx, c.ID, domains); err != nil {
			return err
		}
		return bumpConnectionChanges(ctx, tx)
	})
	if err != nil {
		return store.Connection{}, err
	}
	c.UpdatedAt = c.UpdatedAt.UTC().Truncate(timePrecision)
	if len(c.Config) == 0 {
		c.Config = nil
	}
	return c, nil
}

// DeleteConnection implements store.Store.
func (db *DB) DeleteConnection(ctx context.Context, id string) (err error) {
	defer db.classify(&err)
	what := fmt.Sprintf("delete connection %q", id)
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := mustAffect(ctx, tx, what, "DELETE FROM connections WHERE id = $1", id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM connection_domains WHERE connection_id = $1", id); err != nil {
			return fmt.Errorf("%s: release domains: %w", what, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM setup_links WHERE connection_id = $1", id); err != nil {
			return fmt.Errorf("%s: drop setup links: %w", what, err)
		}
		return bumpConnectionChanges(ctx, tx)
	})
}
