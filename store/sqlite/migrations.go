package sqlite

import "github.com/ssogate/ssogate/store/internal/sqlstore"

// migrations are the schema versions. Times are INTEGER microseconds since
// the Unix epoch, UTC; STRICT tables refuse a value of the wrong type;
// AUTOINCREMENT never reuses a sequence number, even after the newest row
// is swept.
var migrations = sqlstore.Migrations(sqlstore.ColumnTypes{
	Time:        "INTEGER",
	Bytes:       "BLOB",
	Bool:        "INTEGER",
	Int:         "INTEGER",
	Serial:      "INTEGER PRIMARY KEY AUTOINCREMENT",
	TableSuffix: " STRICT",
})
