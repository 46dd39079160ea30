package sqlstore

import (
	"context"
	"fmt"

	"github.com/ssogate/ssogate/store"
)

const keyCols = "id, algorithm, public_jwk, private_sealed, created_at, publish_at, activate_at, retire_at, expire_at"

// keyArgs lists k's fields in keyCols order.
func (db *DB) keyArgs(k store.SigningKey) []any {
	return []any{k.ID, k.Algorithm, blob(k.PublicJWK), blob(k.PrivateSealed), db.t(k.CreatedAt),
		db.t(k.PublishAt), db.t(k.ActivateAt), db.t(k.RetireAt), db.t(k.ExpireAt)}
}

// PutSigningKey implements store.Store.
func (db *DB) PutSigningKey(ctx context.Context, k store.SigningKey) (err error) {
	defer db.classify(&err)
	if err := required("put signing key", "id", k.ID); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = db.now()
	}
	return db.insert(ctx, db.w, fmt.Sprintf("put signing key %q", k.ID),
		"INSERT INTO signing_keys ("+keyCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", db.keyArgs(k)...)
}

// ListSigningKeys implements store.Store.
func (db *DB) ListSigningKeys(ctx context.Context) (_ []store.SigningKey, err error) {
	defer db.classify(&err)
	rows, err := db.r.QueryContext(ctx, "SELECT "+keyCols+" FROM signing_keys ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		if err := rows.Scan(&k.ID, &k.Algorithm, bytesCol{&k.PublicJWK}, bytesCol{&k.PrivateSealed},
			timeCol{&k.CreatedAt}, timeCol{&k.PublishAt}, timeCol{&k.ActivateAt}, timeCol{&k.RetireAt},
			timeCol{&k.ExpireAt}); err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return out, nil
}

// UpdateSigningKey implements store.Store.
func (db *DB) UpdateSigningKey(ctx context.Context, k store.SigningKey) (err error) {
	defer db.classify(&err)
	return mustAffect(ctx, db.w, fmt.Sprintf("update signing key %q", k.ID),
		"UPDATE signing_keys SET algorithm = $2, public_jwk = $3, private_sealed = $4, created_at = $5,"+
			" publish_at = $6, activate_at = $7, retire_at = $8, expire_at = $9 WHERE id = $1", db.keyArgs(k)...)
}

// DeleteSigningKey implements store.Store.
func (db *DB) DeleteSigningKey(ctx context.Context, id string) (err error) {
	defer db.classify(&err)
	return mustAffect(ctx, db.w, fmt.Sprintf("delete signing key %q", id), "DELETE FROM signing_keys WHERE id = $1", id)
}
