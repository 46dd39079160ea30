package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenTraced opens a store whose connections report every query to tracer.
func OpenTraced(ctx context.Context, dsn string, tracer pgx.QueryTracer) (*Store, error) {
	return open(ctx, dsn, func(c *pgxpool.Config) { c.ConnConfig.Tracer = tracer })
}
