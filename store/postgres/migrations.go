package postgres

import "github.com/ssogate/ssogate/store/internal/sqlstore"

// migrations are the schema versions.
var migrations = sqlstore.Migrations(sqlstore.ColumnTypes{
	Time:   "TIMESTAMPTZ",
	Bytes:  "BYTEA",
	Bool:   "BOOLEAN",
	Int:    "BIGINT",
	Serial: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
})
