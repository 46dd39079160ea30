package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

const userCols = "connection_id, id, user_name, external_id, email_lc, display_name, active, resource, version," +
	" created_at, updated_at, deleted_at"

func scanUser(row scanner) (store.DirectoryUser, error) {
	var u store.DirectoryUser
	err := row.Scan(&u.ConnectionID, &u.ID, &u.UserName, &u.ExternalID, &u.Email, &u.DisplayName, &u.Active,
		bytesCol{&u.Resource}, &u.Version, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, timeCol{&u.DeletedAt})
	return u, err
}

// CreateDirectoryUser implements store.Store.
func (db *DB) CreateDirectoryUser(ctx context.Context, u store.DirectoryUser) error {
	if err := required("create directory user", "connection id", u.ConnectionID, "id", u.ID, "user name", u.UserName); err != nil {
		return err
	}
	now := db.now()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	return db.insert(ctx, db.w, fmt.Sprintf("create directory user %q", u.ID),
		"INSERT INTO directory_users (connection_id, id, user_name, user_name_lc, external_id, email_lc, display_name,"+
			" active, resource, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
		u.ConnectionID, u.ID, u.UserName, strings.ToLower(u.UserName), u.ExternalID, strings.ToLower(u.Email),
		u.DisplayName, u.Active, blob(u.Resource), db.t(u.CreatedAt))
}

// GetDirectoryUser implements store.Store.
func (db *DB) GetDirectoryUser(ctx context.Context, connectionID, id string) (store.DirectoryUser, error) {
	u, err := scanUser(db.prep(db.r).QueryRowContext(ctx, "SELECT "+userCols+
		" FROM directory_users WHERE connection_id = $1 AND id = $2 AND deleted_at IS NULL", connectionID, id))
	if err != nil {
		return store.DirectoryUser{}, notFound(fmt.Sprintf("get directory user %q", id), err)
	}
	return u, nil
}

// ListDirectoryUsers implements store.Store.
func (db *DB) ListDirectoryUsers(ctx context.Context, dq store.DirectoryUserQuery) ([]store.DirectoryUser, int, error) {
	const what = "list directory users"
	var q query
	q.where("connection_id = " + q.arg(dq.ConnectionID))
	if dq.UserName != "" {
		q.where("user_name_lc = " + q.arg(strings.ToLower(dq.UserName)))
	}
	if dq.ExternalID != "" {
		q.where("external_id = " + q.arg(dq.ExternalID))
	}
	if dq.Email != "" {
		q.where("email_lc = " + q.arg(strings.ToLower(dq.Email)))
	}
	if !dq.IncludeDeleted {
		q.where("deleted_at IS NULL")
	}
	total := -1
	if !dq.SkipTotal {
		if err := db.prep(db.r).QueryRowContext(ctx, "SELECT COUNT(*) FROM directory_users"+q.clause(), q.args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", what, err)
		}
	}
	limit := pageSize(dq.Limit)
	out, err := collect(scanUser)(db.prep(db.r).QueryContext(ctx, "SELECT "+userCols+" FROM directory_users"+q.clause()+
		" ORDER BY CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END, created_at, id LIMIT "+q.arg(limit)+
		" OFFSET "+q.arg(max(dq.Offset, 0)), q.args...))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	return out, total, nil
}

// UpdateDirectoryUser implements store.Store.
func (db *DB) UpdateDirectoryUser(ctx context.Context, u store.DirectoryUser, expectVersion int64) (store.DirectoryUser, error) {
	what := fmt.Sprintf("update directory user %q", u.ID)
	if u.UserName == "" {
		return store.DirectoryUser{}, fmt.Errorf("%s: user name is required: %w", what, store.ErrInvalidArgument)
	}
	var out store.DirectoryUser
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE directory_users SET user_name = $1, user_name_lc = $2, external_id = $3,"+
			" email_lc = $4, display_name = $5, active = $6, resource = $7, version = version + 1, updated_at = $8"+
			" WHERE connection_id = $9 AND id = $10 AND deleted_at IS NULL AND version = $11",
			u.UserName, strings.ToLower(u.UserName), u.ExternalID, strings.ToLower(u.Email), u.DisplayName, u.Active,
			blob(u.Resource), db.t(db.now()), u.ConnectionID, u.ID, expectVersion)
		if err != nil {
			if db.d.IsUniqueViolation(err) {
				return fmt.Errorf("%s: %w", what, store.ErrConflict)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		out, err = scanUser(tx.QueryRowContext(ctx, "SELECT "+userCols+
			" FROM directory_users WHERE connection_id = $1 AND id = $2 AND deleted_at IS NULL", u.ConnectionID, u.ID))
		if err != nil {
			return notFound(what, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: version is %d, expected %d: %w", what, out.Version, expectVersion, store.ErrConflict)
		}
		return nil
	})
	return out, err
}

// DeleteDirectoryUser implements store.Store.
func (db *DB) DeleteDirectoryUser(ctx context.Context, connectionID, id string, at time.Time) (store.DirectoryUser, error) {
	what := fmt.Sprintf("delete directory user %q", id)
	var before store.DirectoryUser
	err := db.tx(ctx, func(tx *sql.Tx) (err error) {
		before, err = scanUser(tx.QueryRowContext(ctx, "SELECT "+userCols+
			" FROM directory_users WHERE connection_id = $1 AND id = $2 AND deleted_at IS NULL", connectionID, id))
		if err != nil {
			return notFound(what, err)
		}
		if err := mustAffect(ctx, tx, what, "UPDATE directory_users SET deleted_at = $1, updated_at = $1, active = $2,"+
			" resource = NULL, version = version + 1 WHERE connection_id = $3 AND id = $4 AND deleted_at IS NULL",
			db.t(at), false, connectionID, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM directory_members WHERE connection_id = $1 AND user_id = $2", connectionID, id)
		if err != nil {
			return fmt.Errorf("%s: memberships: %w", what, err)
		}
		return nil
	})
	return before, err
}

const groupCols = "connection_id, id, display_name, external_id, resource, version, created_at, updated_at"

func scanGroup(row scanner) (store.DirectoryGroup, error) {
	var g store.DirectoryGroup
	err := row.Scan(&g.ConnectionID, &g.ID, &g.DisplayName, &g.ExternalID, bytesCol{&g.Resource}, &g.Version,
		timeCol{&g.CreatedAt}, timeCol{&g.UpdatedAt})
	return g, err
}

// CreateDirectoryGroup implements store.Store.
func (db *DB) CreateDirectoryGroup(ctx context.Context, g store.DirectoryGroup, members []string) error {
	what := fmt.Sprintf("create directory group %q", g.ID)
	if err := required(what, "connection id", g.ConnectionID, "id", g.ID, "display name", g.DisplayName); err != nil {
		return err
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = db.now()
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.insert(ctx, tx, what, "INSERT INTO directory_groups (connection_id, id, display_name, external_id,"+
			" resource, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
			g.ConnectionID, g.ID, g.DisplayName, g.ExternalID, blob(g.Resource), db.t(g.CreatedAt)); err != nil {
			return err
		}
		_, err := db.addMembers(ctx, tx, g.ConnectionID, g.ID, members)
		return err
	})
}

// GetDirectoryGroup implements store.Store.
func (db *DB) GetDirectoryGroup(ctx context.Context, connectionID, id string) (store.DirectoryGroup, error) {
	g, err := scanGroup(db.r.QueryRowContext(ctx, "SELECT "+groupCols+
		" FROM directory_groups WHERE connection_id = $1 AND id = $2 AND deleted_at IS NULL", connectionID, id))
	if err != nil {
		return store.DirectoryGroup{}, notFound(fmt.Sprintf("get directory group %q", id), err)
	}
	return g, nil
}

// ListDirectoryGroups implements store.Store.
func (db *DB) ListDirectoryGroups(ctx context.Context, gq store.DirectoryGroupQuery) ([]store.DirectoryGroup, int, error) {
	const what = "list directory groups"
	var q query
	q.where("connection_id = " + q.arg(gq.ConnectionID))
	q.where("deleted_at IS NULL")
	if gq.DisplayName != "" {
		q.where("display_name = " + q.arg(gq.DisplayName))
	}
	if gq.ExternalID != "" {
		q.where("external_id = " + q.arg(gq.ExternalID))
	}
	if gq.MemberID != "" {
		q.where("id IN (SELECT group_id FROM directory_members WHERE connection_id = " + q.arg(gq.ConnectionID) +
			" AND user_id = " + q.arg(gq.MemberID) + ")")
	}
	var total int
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM directory_groups"+q.clause(), q.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	out, err := collect(scanGroup)(db.r.QueryContext(ctx, "SELECT "+groupCols+" FROM directory_groups"+q.clause()+
		" ORDER BY created_at, id LIMIT "+q.arg(pageSize(gq.Limit))+" OFFSET "+q.arg(max(gq.Offset, 0)), q.args...))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	return out, total, nil
}

// UpdateDirectoryGroup implements store.Store.
func (db *DB) UpdateDirectoryGroup(ctx context.Context, g store.DirectoryGroup, expectVersion int64) (store.DirectoryGroup, error) {
	what := fmt.Sprintf("update directory group %q", g.ID)
	var out store.DirectoryGroup
	err := db.tx(ctx, func(tx *sql.Tx) error {
		n, err := affected(ctx, tx, what, "UPDATE directory_groups SET display_name = $1, external_id = $2, resource = $3,"+
			" version = version + 1, updated_at = $4 WHERE connection_id = $5 AND id = $6 AND deleted_at IS NULL AND version = $7",
			g.DisplayName, g.ExternalID, blob(g.Resource), db.t(db.now()), g.ConnectionID, g.ID, expectVersion)
		if err != nil {
			return err
		}
		out, err = scanGroup(tx.QueryRowContext(ctx, "SELECT "+groupCols+
			" FROM directory_groups WHERE connection_id = $1 AND id = $2 AND deleted_at IS NULL", g.ConnectionID, g.ID))
		if err != nil {
			return notFound(what, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: version is %d, expected %d: %w", what, out.Version, expectVersion, store.ErrConflict)
		}
		return nil
	})
	return out, err
}

// DeleteDirectoryGroup implements store.Store.
func (db *DB) DeleteDirectoryGroup(ctx context.Context, connectionID, id string, at time.Time) ([]string, error) {
	what := fmt.Sprintf("delete directory group %q", id)
	var members []string
	err := db.tx(ctx, func(tx *sql.Tx) (err error) {
		if err := mustAffect(ctx, tx, what, "UPDATE directory_groups SET deleted_at = $1, updated_at = $1, resource = NULL,"+
			" version = version + 1 WHERE connection_id = $2 AND id = $3 AND deleted_at IS NULL", db.t(at), connectionID, id); err != nil {
			return err
		}
		if members, err = groupMembers(ctx, tx, connectionID, id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM directory_members WHERE connection_id = $1 AND group_id = $2", connectionID, id)
		if err != nil {
			return fmt.Errorf("%s: memberships: %w", what, err)
		}
		return nil
	})
	return members, err
}

// ChangeGroupMembers implements store.Store.
func (db *DB) ChangeGroupMembers(ctx context.Context, connectionID, groupID string, ch store.MemberChange) ([]string, error) {
	what := fmt.Sprintf("change members of directory group %q", groupID)
	var changed []string
	err := db.tx(ctx, func(tx *sql.Tx) error {
		// Touching the group row first serializes concurrent edits of one
		// group and proves it is live.
		if err := mustAffect(ctx, tx, what, "UPDATE directory_groups SET updated_at = $1, version = version + 1"+
			" WHERE connection_id = $2 AND id = $3 AND deleted_at IS NULL", db.t(db.now()), connectionID, groupID); err != nil {
			return err
		}
		remove := ch.Remove
		if ch.Replace {
			current, err := groupMembers(ctx, tx, connectionID, groupID)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			keep := make(map[string]bool, len(ch.Add))
			for _, id := range ch.Add {
				keep[id] = true
			}
			remove = nil
			for _, id := range current {
				if !keep[id] {
					remove = append(remove, id)
				}
			}
		}
		for batch := range slices.Chunk(remove, memberBatch) {
			var q query
			cond := "connection_id = " + q.arg(connectionID) + " AND group_id = " + q.arg(groupID) + " AND user_id IN (" + q.list(batch) + ")"
			ids, err := collect(scanID)(tx.QueryContext(ctx, "DELETE FROM directory_members WHERE "+cond+" RETURNING user_id", q.args...))
			if err != nil {
				return fmt.Errorf("%s: remove: %w", what, err)
			}
			changed = append(changed, ids...)
		}
		added, err := db.addMembers(ctx, tx, connectionID, groupID, ch.Add)
		if err != nil {
			return err
		}
		changed = append(changed, added...)
		return nil
	})
	slices.Sort(changed)
	return slices.Compact(changed), err
}

// memberBatch bounds the ids of one membership statement.
const memberBatch = 500

func scanID(row scanner) (id string, err error) { return id, row.Scan(&id) }

// addMembers inserts the memberships of the live users among ids that do
// not exist yet and returns those user ids, one statement per batch.
func (db *DB) addMembers(ctx context.Context, tx *sql.Tx, connectionID, groupID string, ids []string) ([]string, error) {
	var added []string
	for batch := range slices.Chunk(ids, memberBatch) {
		var q query
		conn, group := q.arg(connectionID), q.arg(groupID)
		got, err := collect(scanID)(tx.QueryContext(ctx, "INSERT INTO directory_members (connection_id, group_id, user_id)"+
			" SELECT "+conn+", "+group+", u.id FROM directory_users u WHERE u.connection_id = "+conn+" AND u.deleted_at IS NULL"+
			" AND u.id IN ("+q.list(batch)+")"+
			" AND NOT EXISTS (SELECT 1 FROM directory_members m WHERE m.connection_id = "+conn+" AND m.group_id = "+group+" AND m.user_id = u.id)"+
			" RETURNING user_id", q.args...))
		if err != nil {
			return nil, fmt.Errorf("add members to group %q: %w", groupID, err)
		}
		added = append(added, got...)
	}
	return added, nil
}

// GroupMembers implements store.Store.
func (db *DB) GroupMembers(ctx context.Context, connectionID, groupID string) ([]string, error) {
	ids, err := groupMembers(ctx, db.r, connectionID, groupID)
	if err != nil {
		return nil, fmt.Errorf("members of directory group %q: %w", groupID, err)
	}
	return ids, nil
}

func groupMembers(ctx context.Context, q execer, connectionID, groupID string) ([]string, error) {
	return collect(scanID)(q.QueryContext(ctx,
		"SELECT user_id FROM directory_members WHERE connection_id = $1 AND group_id = $2 ORDER BY user_id", connectionID, groupID))
}

type scanner interface{ Scan(...any) error }

// collect returns a function reading every row of a query with scan.
func collect[T any](scan func(scanner) (T, error)) func(*sql.Rows, error) ([]T, error) {
	return func(rows *sql.Rows, err error) ([]T, error) {
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []T
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, rows.Err()
	}
}

// CreateScimToken implements store.Store.
func (db *DB) CreateScimToken(ctx context.Context, t store.ScimToken) error {
	if err := required("create scim token", "id", t.ID, "connection id", t.ConnectionID, "hash", t.Hash); err != nil {
		return err
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = db.now()
	}
	return db.insert(ctx, db.w, fmt.Sprintf("create scim token %q", t.ID),
		"INSERT INTO scim_tokens (id, connection_id, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)",
		t.ID, t.ConnectionID, t.Hash, db.t(t.CreatedAt), db.t(t.RevokedAt))
}

const scimTokenCols = "id, connection_id, hash, created_at, revoked_at"

func scanScimToken(row scanner) (store.ScimToken, error) {
	var t store.ScimToken
	err := row.Scan(&t.ID, &t.ConnectionID, bytesCol{&t.Hash}, timeCol{&t.CreatedAt}, timeCol{&t.RevokedAt})
	return t, err
}

// GetScimToken implements store.Store.
func (db *DB) GetScimToken(ctx context.Context, id string) (store.ScimToken, error) {
	t, err := scanScimToken(db.r.QueryRowContext(ctx, "SELECT "+scimTokenCols+" FROM scim_tokens WHERE id = $1", id))
	if err != nil {
		return store.ScimToken{}, notFound(fmt.Sprintf("get scim token %q", id), err)
	}
	return t, nil
}

// ListScimTokens implements store.Store.
func (db *DB) ListScimTokens(ctx context.Context, connectionID string) ([]store.ScimToken, error) {
	what := fmt.Sprintf("list scim tokens of %q", connectionID)
	out, err := collect(scanScimToken)(db.r.QueryContext(ctx,
		"SELECT "+scimTokenCols+" FROM scim_tokens WHERE connection_id = $1 ORDER BY created_at, id", connectionID))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// RevokeScimToken implements store.Store.
func (db *DB) RevokeScimToken(ctx context.Context, connectionID, id string, at time.Time) error {
	what := fmt.Sprintf("revoke scim token %q", id)
	if _, err := affected(ctx, db.w, what, "UPDATE scim_tokens SET revoked_at = $1 WHERE connection_id = $2 AND id = $3 AND revoked_at IS NULL",
		db.t(at), connectionID, id); err != nil {
		return err
	}
	var one int
	if err := db.w.QueryRowContext(ctx, "SELECT 1 FROM scim_tokens WHERE connection_id = $1 AND id = $2", connectionID, id).Scan(&one); err != nil {
		return notFound(what, err)
	}
	return nil
}

// AppendScimRequest implements store.Store.
func (db *DB) AppendScimRequest(ctx context.Context, r store.ScimRequest) error {
	if r.Time.IsZero() {
		r.Time = db.now()
	}
	return db.insert(ctx, db.w, "append scim request",
		"INSERT INTO scim_requests (connection_id, time, method, path, status, scim_type) VALUES ($1, $2, $3, $4, $5, $6)",
		r.ConnectionID, db.t(r.Time), r.Method, r.Path, r.Status, r.ScimType)
}

// ListScimRequests implements store.Store.
func (db *DB) ListScimRequests(ctx context.Context, connectionID string, limit int) ([]store.ScimRequest, error) {
	what := fmt.Sprintf("list scim requests of %q", connectionID)
	out, err := collect(func(row scanner) (r store.ScimRequest, err error) {
		return r, row.Scan(&r.ConnectionID, timeCol{&r.Time}, &r.Method, &r.Path, &r.Status, &r.ScimType)
	})(db.r.QueryContext(ctx, "SELECT connection_id, time, method, path, status, scim_type FROM scim_requests"+
		" WHERE connection_id = $1 ORDER BY seq DESC LIMIT $2", connectionID, pageSize(limit)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
