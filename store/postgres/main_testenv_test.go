package postgres

import (
	"testing"

	"github.com/ssogate/ssogate/internal/testenv"
)

// TestMain prints which tests skipped for a missing PostgreSQL, Chromium
// or node, and why (see internal/testenv).
func TestMain(m *testing.M) { testenv.Main(m) }
