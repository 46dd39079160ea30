package sqlite

import (
	"context"
	"fmt"
)

// OpenFull opens a store whose file may not grow past pages pages, so
// that a test meets SQLite's own SQLITE_FULL without filling a disk.
func OpenFull(ctx context.Context, path string, pages int) (*Store, error) {
	return open(ctx, path, fmt.Sprintf("&_pragma=max_page_count(%d)", pages))
}
