// Package storetest is the conformance suite every store.Store backend
// passes, and the helpers backend tests share: RunTests, RunOpenTests
// (replicas migrating at once, reopen), RunBenchmarks, the kill -9
// durability test (Crash, CrashHelper) and PostgresDSN, which other
// packages' tests use to get a fresh PostgreSQL schema or skip (or fail,
// when SSOGATE_TEST_REQUIRE says so).
//
// A backend's test file calls
//
//	storetest.RunTests(t, newStore, storetest.WithTwin(openSecond))
//
// where newStore opens a fresh, empty store and openSecond opens a second,
// independent Store on the same database as the first (another *sql.DB on
// the same SQLite file, another pool on the same PostgreSQL schema), so the
// race tests contend across connection pools as replicas would.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// Option changes how RunTests runs.
type Option func(*config)

type config struct {
	twin func(t *testing.T, first store.Store) store.Store
}

// WithTwin gives RunTests a way to open a second Store on the same
// database as first; the race tests then spread their goroutines over both.
// Without it they all use first.
func WithTwin(twin func(t *testing.T, first store.Store) store.Store) Option {
	return func(c *config) { c.twin = twin }
}

// suite is what every test gets.
type suite struct {
	cfg      config
	newStore func(t *testing.T) store.Store
}

// pair returns a fresh store and its twin (or the store itself).
func (s suite) pair(t *testing.T) (store.Store, store.Store) {
	t.Helper()
	first := s.newStore(t)
	if s.cfg.twin == nil {
		return first, first
	}
	return first, s.cfg.twin(t, first)
}

// RunTests runs the conformance suite. newStore must return a fresh, empty
// store and close it in t.Cleanup.
func RunTests(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	s := suite{newStore: newStore}
	for _, o := range opts {
		o(&s.cfg)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, st store.Store)
	}{
		{"ConnectionCRUD", testConnectionCRUD},
		{"ConnectionDomains", testConnectionDomains},
		{"ConnectionUpdate", testConnectionUpdate},
		{"ConnectionList", testConnectionList},
		{"ConnectionSPIdentity", testConnectionSPIdentity},
		{"PendingRequests", testPendingRequests},
		{"Assertions", testAssertions},
		{"Codes", testCodes},
		{"Sessions", testSessions},
		{"RevokeSession", testRevokeSession},
		{"RevokeSubjectAndConnection", testRevokeSubjectAndConnection},
		{"RevocationsPaging", testRevocationsPaging},
		{"RefreshTokens", testRefreshTokens},
		{"RefreshTokenReuse", testRefreshTokenReuse},
		{"RefreshTokenRetry", testRefreshTokenRetry},
		{"SigningKeys", testSigningKeys},
		{"Audit", testAudit},
		{"Sweep", testSweep},
		{"PruneAudit", testPruneAudit},
		{"EventLog", testEventLog},
		{"Outbox", testOutbox},
		{"Webhooks", testWebhooks},
		{"SetupLinks", testSetupLinks},
		{"Times", testTimes},
		{"InvalidArguments", testInvalidArguments},
		{"DirectoryUsers", testDirectoryUsers},
		{"DirectoryGroups", testDirectoryGroups},
		{"ScimTokens", testScimTokens},
		{"ScimRequests", testScimRequests},
		{"Ping", func(t *testing.T, st store.Store) {
			if err := st.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
	races := []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"ConsumeCode", raceConsumeCode},
		{"ConsumePendingRequest", raceConsumePendingRequest},
		{"RecordAssertion", raceRecordAssertion},
		{"RotateRefreshToken", raceRotateRefreshToken},
		{"RotateRefreshTokenRetry", raceRotateRefreshTokenRetry},
		{"UpdateConnection", raceUpdateConnection},
		{"ClaimDomain", raceClaimDomain},
		{"ClaimSPIdentity", raceClaimSPIdentity},
		{"RevocationFollower", raceRevocationFollower},
		{"Sweep", raceSweep},
		{"EventSequence", raceEventSequence},
		{"ClaimWebhookDelivery", raceClaimWebhookDelivery},
		{"GroupMembers", raceGroupMembers},
	}
	t.Run("Race", func(t *testing.T) {
		for _, tc := range races {
			t.Run(tc.name, func(t *testing.T) {
				a, b := s.pair(t)
				tc.fn(t, a, b)
			})
		}
	})
}

// t0 is the suite's clock: it has microseconds, which every backend keeps.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// wantErr fails unless errors.Is(err, want) (want nil: err must be nil).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// equal fails with a readable diff line unless got and want are equal
// according to eq.
func equal[T any](t *testing.T, what string, got, want T, eq func(a, b T) bool) {
	t.Helper()
	if !eq(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func sameTime(a, b time.Time) bool {
	return a.Equal(b) && a.Location() == b.Location()
}

func eqConnection(a, b store.Connection) bool {
	return a.ID == b.ID && a.TenantID == b.TenantID && a.State == b.State && fmt.Sprint(a.Domains) == fmt.Sprint(b.Domains) &&
		bytes.Equal(a.Config, b.Config) && a.Version == b.Version && sameTime(a.CreatedAt, b.CreatedAt) &&
		a.SPEntityID == b.SPEntityID && a.ACSKey == b.ACSKey &&
		sameTime(a.UpdatedAt, b.UpdatedAt)
}

func eqPending(a, b store.PendingRequest) bool {
	return a.ID == b.ID && a.ConnectionID == b.ConnectionID && a.ReturnTo == b.ReturnTo && a.State == b.State &&
		a.Test == b.Test && bytes.Equal(a.Data, b.Data) && sameTime(a.CreatedAt, b.CreatedAt) &&
		sameTime(a.ExpiresAt, b.ExpiresAt) && sameTime(a.ConsumedAt, b.ConsumedAt)
}

func eqCode(a, b store.Code) bool {
	return bytes.Equal(a.Hash, b.Hash) && a.SessionID == b.SessionID && a.ConnectionID == b.ConnectionID &&
		bytes.Equal(a.Data, b.Data) && sameTime(a.CreatedAt, b.CreatedAt) && sameTime(a.ExpiresAt, b.ExpiresAt)
}

func eqSession(a, b store.Session) bool {
	return a.ID == b.ID && a.ConnectionID == b.ConnectionID && a.TenantID == b.TenantID && a.Subject == b.Subject &&
		a.NameID == b.NameID && a.NameIDFormat == b.NameIDFormat && a.SessionIndex == b.SessionIndex &&
		bytes.Equal(a.Identity, b.Identity) && sameTime(a.CreatedAt, b.CreatedAt) &&
		sameTime(a.ExpiresAt, b.ExpiresAt) && sameTime(a.RevokedAt, b.RevokedAt) && a.RevokeReason == b.RevokeReason
}

func eqRefresh(a, b store.RefreshToken) bool {
	return bytes.Equal(a.Hash, b.Hash) && a.SessionID == b.SessionID && sameTime(a.CreatedAt, b.CreatedAt) &&
		sameTime(a.ExpiresAt, b.ExpiresAt) && sameTime(a.SpentAt, b.SpentAt)
}

func eqKey(a, b store.SigningKey) bool {
	return a.ID == b.ID && a.Algorithm == b.Algorithm && bytes.Equal(a.PublicJWK, b.PublicJWK) &&
		bytes.Equal(a.PrivateSealed, b.PrivateSealed) && sameTime(a.CreatedAt, b.CreatedAt) &&
		sameTime(a.PublishAt, b.PublishAt) && sameTime(a.ActivateAt, b.ActivateAt) &&
		sameTime(a.RetireAt, b.RetireAt) && sameTime(a.ExpireAt, b.ExpireAt)
}

func eqAudit(a, b store.AuditEvent) bool {
	return a.ID == b.ID && sameTime(a.Time, b.Time) && a.Type == b.Type && a.ConnectionID == b.ConnectionID &&
		a.TenantID == b.TenantID && a.Subject == b.Subject && a.Reason == b.Reason &&
		a.CorrelationID == b.CorrelationID && a.Message == b.Message && bytes.Equal(a.Detail, b.Detail)
}

// session returns a live session of subject at connection conn.
func session(id, conn, subject string) store.Session {
	return store.Session{
		ID: id, ConnectionID: conn, TenantID: "tenant-" + conn, Subject: subject, NameID: subject + "@idp",
		NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", SessionIndex: "idx-" + id,
		Identity: []byte(`{"email":"` + subject + `"}`), CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour),
	}
}

func mustCreateSession(t *testing.T, st store.Store, s store.Session) {
	t.Helper()
	if err := st.CreateSession(ctx(t), s); err != nil {
		t.Fatalf("CreateSession(%q): %v", s.ID, err)
	}
}
