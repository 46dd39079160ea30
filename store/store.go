package store

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Backends wrap them with context; compare with errors.Is.
var (
	// ErrNotFound: no such record (or it belongs to another connection).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique value is taken (duplicate id, an email domain
	// owned by another connection), or the version changed under an
	// optimistic update.
	ErrConflict = errors.New("store: conflict")
	// ErrConsumed: a single-use value was already used.
	ErrConsumed = errors.New("store: already used")
	// ErrExpired: the value (or the session behind it) is past its ExpiresAt.
	ErrExpired = errors.New("store: expired")
	// ErrReused: a spent refresh token was presented again; its session has
	// been revoked.
	ErrReused = errors.New("store: refresh token reused")
	// ErrRevoked: the session behind a refresh token is revoked.
	ErrRevoked = errors.New("store: session revoked")
	// ErrInvalidArgument: the caller passed a malformed value (an empty id,
	// an unreadable page token).
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrUnavailable: the database cannot be reached or cannot write (a
	// PostgreSQL outage, a full disk, an I/O error). Nothing was decided;
	// the same call may succeed later. Backends return it as an
	// *UnavailableError.
	ErrUnavailable = errors.New("store unavailable")
)

// UnavailableError is how a backend reports ErrUnavailable. Its message
// names the store and a fixed class of failure, never the driver's text
// (which can hold the database user, name, host and port); Cause keeps
// that text for the operator's log.
type UnavailableError struct {
	// Backend is "postgres" or "sqlite".
	Backend string
	// Class is a fixed phrase: "cannot connect", "connection lost",
	// "disk full", "disk I/O error", "database busy", "shutting down".
	Class string
	// Cause is the driver's error. Log it; never show it to a caller.
	Cause error
}

func (e *UnavailableError) Error() string {
	return "store unavailable: " + e.Backend + " " + e.Class
}

// Unwrap matches ErrUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Cause} }

// Revocation reasons the store itself writes.
const (
	// ReasonRefreshTokenReuse is recorded when RotateRefreshToken sees a
	// spent token again.
	ReasonRefreshTokenReuse = "refresh_token_reuse"
)

// Store is everything ssogate remembers. All methods are safe for
// concurrent use, also by several processes sharing one database.
type Store interface {
	Directory

	// CreateConnection stores a new connection with Version 1. Zero
	// CreatedAt/UpdatedAt are set to the store's clock. ErrConflict on a
	// duplicate id, a domain owned by another connection, or an SPEntityID
	// or ACSKey another connection has.
	CreateConnection(ctx context.Context, c Connection) error
	// GetConnection returns the connection or ErrNotFound.
	GetConnection(ctx context.Context, id string) (Connection, error)
	// ListConnections pages through connections ordered by id. The returned
	// token is "" on the last page.
	ListConnections(ctx context.Context, q ListConnectionsQuery) ([]Connection, string, error)
	// UpdateConnection replaces TenantID, State, Domains, SPEntityID,
	// ACSKey and Config if the
	// stored Version is still expectVersion (ErrConflict otherwise), bumps
	// Version and sets UpdatedAt to the store's clock. It returns the
	// stored result.
	UpdateConnection(ctx context.Context, c Connection, expectVersion int64) (Connection, error)
	// DeleteConnection removes the connection and frees its domains.
	DeleteConnection(ctx context.Context, id string) error
	// ConnectionByDomain finds the connection owning an email domain,
	// case-insensitively.
	ConnectionByDomain(ctx context.Context, domain string) (Connection, error)
	// ConnectionBySPEntityID finds the connection whose SPEntityID is
	// entityID (exactly), or ErrNotFound.
	ConnectionBySPEntityID(ctx context.Context, entityID string) (Connection, error)
	// ConnectionByACSKey finds the connection whose ACSKey is key
	// (exactly), or ErrNotFound.
	ConnectionByACSKey(ctx context.Context, key string) (Connection, error)

	// PutPendingRequest stores an AuthnRequest we sent. ErrConflict if the
	// (ConnectionID, ID) pair exists.
	PutPendingRequest(ctx context.Context, r PendingRequest) error
	// ConsumePendingRequest marks the request used, exactly once across all
	// callers, and returns it. ErrNotFound (unknown, or another
	// connection's), ErrConsumed, ErrExpired.
	ConsumePendingRequest(ctx context.Context, connectionID, id string, now time.Time) (PendingRequest, error)
	// GetPendingRequest reads a pending request without consuming it.
	GetPendingRequest(ctx context.Context, connectionID, id string) (PendingRequest, error)

	// RecordAssertion remembers an assertion ID until expiresAt (and until
	// the next Sweep after it). The first writer wins; every later writer
	// gets ErrConsumed.
	RecordAssertion(ctx context.Context, connectionID, assertionID string, expiresAt time.Time) error

	// PutCode stores a one-time code by its SHA-256 hash. ErrConflict on a
	// duplicate hash.
	PutCode(ctx context.Context, c Code) error
	// ConsumeCode redeems a code, exactly once across all callers.
	// ErrNotFound, ErrConsumed, ErrExpired.
	ConsumeCode(ctx context.Context, hash []byte, now time.Time) (Code, error)

	// CreateSession stores a new session. ErrConflict on a duplicate id.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session whatever its state (see Session.Live).
	GetSession(ctx context.Context, id string) (Session, error)
	// RevokeSession revokes one session and appends a Revocation. Revoking
	// a revoked session does nothing and returns nil. ErrNotFound.
	RevokeSession(ctx context.Context, id, reason string, at time.Time) error
	// RevokeSubject revokes every live session of one user of one
	// connection, appends one Revocation each, and returns their ids.
	RevokeSubject(ctx context.Context, connectionID, subject, reason string, at time.Time) ([]string, error)
	// RevokeConnection revokes every live session of a connection, appends
	// one Revocation each, and returns their ids.
	RevokeConnection(ctx context.Context, connectionID, reason string, at time.Time) ([]string, error)
	// FindSessions returns the sessions (any state, oldest first) of a
	// NameID at a connection, for Single Logout. sessionIndex "" matches
	// every SessionIndex.
	FindSessions(ctx context.Context, connectionID, nameID, sessionIndex string) ([]Session, error)
	// Revocations returns up to limit revocations with Seq > afterSeq in
	// increasing Seq order. A revocation is never visible before one with a
	// smaller Seq, so polling with the last Seq seen misses nothing. limit
	// <= 0 means 1000.
	Revocations(ctx context.Context, afterSeq int64, limit int) ([]Revocation, error)

	// PutRefreshToken stores a refresh token by its hash. Its ExpiresAt is
	// capped at its session's ExpiresAt; ErrNotFound if the session does
	// not exist, ErrConflict on a duplicate hash.
	PutRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken spends the token with oldHash and stores next, in
	// one transaction, and returns the old token and next as stored. The
	// old token must be unspent and unexpired and its session live:
	// ErrNotFound, ErrExpired (token or session), ErrRevoked otherwise.
	// next.SessionID is set to the old token's session and next.ExpiresAt
	// is capped at the session's; the old token records next.Hash.
	//
	// If the old token was already spent less than retryWindow ago (now <
	// SpentAt + retryWindow), its successor is still unspent and unexpired
	// and the session live, the presentation is a retry of a rotation whose
	// answer was lost: nothing is stored, and the Rotation carries Retry
	// and the successor as the first rotation stored it (Sealed included).
	//
	// Any other presentation of a spent token is reuse: its session is
	// revoked with reason ReasonRefreshTokenReuse in the same transaction
	// and ErrReused is returned, with a Rotation whose Old carries only
	// that SessionID. This holds for concurrent presentations too: when two
	// callers rotate the same token at once, one wins and the other's
	// attempt is a retry (within the window: both get the same successor)
	// or reuse (the session ends revoked).
	RotateRefreshToken(ctx context.Context, oldHash []byte, next RefreshToken, now time.Time, retryWindow time.Duration) (Rotation, error)

	// PutSigningKey stores a key. ErrConflict on a duplicate id.
	PutSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns every key, oldest CreatedAt first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// UpdateSigningKey replaces every field of the key with k.ID.
	UpdateSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKey removes a key.
	DeleteSigningKey(ctx context.Context, id string) error

	// AppendAudit stores an event that records no other change (see
	// WithEvents for one that does), with the next Sequence. An empty ID is
	// filled with a random one; a zero Time with the store's clock.
	// ErrConflict on a duplicate ID.
	AppendAudit(ctx context.Context, e AuditEvent) error
	// LastEventSequence is the Sequence of the newest event ever appended
	// (0 for none), pruned or not.
	LastEventSequence(ctx context.Context) (int64, error)
	// EventsAfter returns events with Sequence > q.After, in increasing
	// Sequence order. Sequences are assigned in commit order without gaps:
	// an event is never visible before one with a smaller Sequence, so a
	// reader resuming from the last Sequence it saw misses nothing and
	// sees nothing twice.
	EventsAfter(ctx context.Context, q EventsQuery) ([]AuditEvent, error)
	// ListAudit pages through events, newest Time first. The returned token
	// is "" on the last page.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, string, error)
	// CreateWebhook stores a new endpoint in state WebhookActive, whose
	// Cursor says from which event on it receives. ErrConflict on a
	// duplicate id.
	CreateWebhook(ctx context.Context, w Webhook) error
	// GetWebhook returns the endpoint or ErrNotFound.
	GetWebhook(ctx context.Context, id string) (Webhook, error)
	// ListWebhooks returns every endpoint, oldest first.
	ListWebhooks(ctx context.Context) ([]Webhook, error)
	// UpdateWebhook replaces URL, EventTypes, the secrets and State.
	UpdateWebhook(ctx context.Context, w Webhook) error
	// DeleteWebhook removes an endpoint and its deliveries.
	DeleteWebhook(ctx context.Context, id string) error
	// EnqueueWebhookDeliveries moves every endpoint's Cursor over the events
	// appended since, adding a pending delivery (due now) for each event
	// the endpoint subscribes to. Each event is enqueued once per endpoint,
	// whichever replicas run it at once. It returns how many it added.
	EnqueueWebhookDeliveries(ctx context.Context, now time.Time) (int, error)
	// ClaimWebhookDelivery leases one due delivery to owner until
	// leaseUntil: the pending delivery with the smallest EventSequence of an
	// active endpoint, if it is due and not leased. Nobody else can claim it
	// before the lease ends. ErrNotFound when nothing is due.
	ClaimWebhookDelivery(ctx context.Context, owner string, now, leaseUntil time.Time) (WebhookDelivery, error)
	// FinishWebhookDelivery records an attempt's outcome (Status, Attempts,
	// the times and the Last* fields of d) and ends the lease, if owner
	// still holds it (ErrConflict otherwise). failWebhook also marks the
	// endpoint WebhookFailing.
	FinishWebhookDelivery(ctx context.Context, d WebhookDelivery, owner string, failWebhook bool) error
	// ListWebhookDeliveries returns up to limit deliveries of an endpoint,
	// newest event first.
	ListWebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]WebhookDelivery, error)
	// RetryWebhookDelivery makes a delivery pending and due at now (its
	// retry window starts again) and its endpoint active. ErrNotFound.
	RetryWebhookDelivery(ctx context.Context, id string, now time.Time) (WebhookDelivery, error)

	// PruneAudit deletes audit events older than before (retention) and
	// returns how many. Sweep never touches the audit log.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)

	// PutSetupLink stores a setup link by the SHA-256 hash of its secret.
	// ErrConflict on a duplicate id or hash; ErrNotFound when its
	// connection does not exist.
	PutSetupLink(ctx context.Context, l SetupLink) error
	// SetupLinkByHash finds a link by its secret's hash, whatever its
	// state (the caller checks Usable): ErrNotFound.
	SetupLinkByHash(ctx context.Context, hash []byte) (SetupLink, error)
	// ListSetupLinks returns a connection's links, newest CreatedAt first.
	ListSetupLinks(ctx context.Context, connectionID string) ([]SetupLink, error)
	// RevokeSetupLink sets RevokedAt (once; revoking again keeps the first
	// time) and returns the link. ErrNotFound, also for another
	// connection's link.
	RevokeSetupLink(ctx context.Context, connectionID, id string, at time.Time) (SetupLink, error)

	// Sweep deletes what has expired by now: pending requests, assertion
	// IDs, codes, refresh tokens, sessions and the revocations of expired
	// sessions. It returns how many rows it deleted. Any number of replicas
	// may run it at once.
	Sweep(ctx context.Context, now time.Time) (int64, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Page sizes for ListConnections and ListAudit.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Connection is one customer's IdP. The server owns the content (Config,
// JSON); the store indexes the rest.
type Connection struct {
	ID       string
	TenantID string
	State    string
	// Domains are the email domains that discover this connection. They are
	// unique across connections and returned lowercased, deduplicated and
	// sorted.
	Domains []string
	// SPEntityID is the connection's own SP entity ID when it overrides
	// the derived one; "" for none. Unique across connections
	// (ErrConflict), so two replicas cannot both hand it out.
	SPEntityID string
	// ACSKey identifies the connection's overriding ACS URL (the server
	// decides its form: host and path); "" for none. Unique across
	// connections (ErrConflict).
	ACSKey    string
	Config    []byte
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ListConnectionsQuery filters and pages ListConnections.
type ListConnectionsQuery struct {
	TenantID  string // "" for every tenant
	PageSize  int    // <= 0: DefaultPageSize; capped at MaxPageSize
	PageToken string // from the previous page
}

// PendingRequest is an AuthnRequest we sent and have not yet seen answered.
type PendingRequest struct {
	ID           string
	ConnectionID string
	ReturnTo     string
	State        string
	Test         bool
	Data         []byte
	CreatedAt    time.Time
	ExpiresAt    time.Time
	ConsumedAt   time.Time // zero until consumed
}

// Code is a one-time code, kept by the SHA-256 hash of its value.
type Code struct {
	Hash         []byte
	SessionID    string
	ConnectionID string
	Data         []byte
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// Session is one successful SAML login.
type Session struct {
	ID           string
	ConnectionID string
	TenantID     string
	Subject      string
	NameID       string
	NameIDFormat string
	SessionIndex string
	Identity     []byte
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RevokedAt    time.Time // zero unless revoked
	RevokeReason string
}

// Live reports whether the session is neither revoked nor expired at now.
func (s Session) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// Revocation is one entry of the revocation log replicas follow.
type Revocation struct {
	Seq          int64
	SessionID    string
	ConnectionID string
	Subject      string
	Reason       string
	At           time.Time
	// ExpiresAt is the revoked session's ExpiresAt: after it no token of
	// the session verifies anyway, so followers may forget the entry and
	// Sweep deletes it.
	ExpiresAt time.Time
}

// RefreshToken is an opaque refresh token, kept by its SHA-256 hash.
type RefreshToken struct {
	Hash      []byte
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
	SpentAt   time.Time // zero until rotated
	// NextHash is the successor a rotation stored (nil until rotated).
	NextHash []byte
	// Sealed is the token's own value, sealed by the caller under a key
	// derived from its predecessor's value (which the store never holds),
	// so that a retry of the predecessor can be answered with this token.
	// Opaque to the store; nil for a session's first token.
	Sealed []byte
}

// Rotation is what RotateRefreshToken did.
type Rotation struct {
	// Old is the presented token, now spent.
	Old RefreshToken
	// Next is the successor: the one stored now, or on a Retry the one an
	// earlier rotation stored.
	Next RefreshToken
	// Retry: Old was spent moments ago and Next is still unused; nothing
	// was stored and the caller hands Next out again.
	Retry bool
}

// SigningKey is one key of the token signing key set. PrivateSealed is
// already encrypted by the caller.
type SigningKey struct {
	ID            string // kid
	Algorithm     string
	PublicJWK     []byte
	PrivateSealed []byte
	CreatedAt     time.Time
	PublishAt     time.Time
	ActivateAt    time.Time
	RetireAt      time.Time
	ExpireAt      time.Time
}

// AuditEvent is one entry of the audit log, which is also the event log.
type AuditEvent struct {
	// Sequence is assigned by the store when the event is appended: 1, 2,
	// 3, ... in commit order. Ignored on append.
	Sequence      int64
	ID            string
	Time          time.Time
	Type          string
	ConnectionID  string
	TenantID      string
	Subject       string
	Reason        string
	CorrelationID string
	Message       string
	Detail        []byte // JSON
}

// SetupLink grants one connection to whoever holds its secret, until it
// expires or is revoked. Only the secret's SHA-256 is kept.
type SetupLink struct {
	ID           string
	ConnectionID string
	Hash         []byte
	Features     []string
	Creator      string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RevokedAt    time.Time // zero unless revoked
}

// Usable reports whether the link still opens the portal at now.
func (l SetupLink) Usable(now time.Time) bool {
	return l.RevokedAt.IsZero() && now.Before(l.ExpiresAt)
}

// AuditQuery filters and pages ListAudit. Empty fields do not filter.
type AuditQuery struct {
	ConnectionID  string
	Type          string
	CorrelationID string
	Since         time.Time // inclusive
	Until         time.Time // exclusive
	PageSize      int       // <= 0: DefaultPageSize; capped at MaxPageSize
	PageToken     string
}

// Options are the injectable parts of a backend.
type Options struct {
	// Now is the clock for timestamps the caller does not supply
	// (Connection.UpdatedAt, zero CreatedAt, audit Time). Default time.Now.
	Now func() time.Time
	// Rand is the randomness for generated audit IDs. Default crypto/rand.
	Rand io.Reader
}

// Option changes Options.
type Option func(*Options)

// WithClock sets Options.Now.
func WithClock(now func() time.Time) Option { return func(o *Options) { o.Now = now } }

// WithRand sets Options.Rand.
func WithRand(r io.Reader) Option { return func(o *Options) { o.Rand = r } }

// NewOptions applies opts over the defaults.
func NewOptions(opts ...Option) Options {
	o := Options{Now: time.Now, Rand: rand.Reader}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	return o
}
