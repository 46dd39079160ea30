package store

import (
	"context"
	"time"
)

// Directory is what the store keeps of SCIM directory sync: the users and
// groups an IdP provisioned into one connection, their memberships, the
// SCIM bearer tokens, and a log of SCIM requests.
//
// Deleting a user or group leaves a tombstone (DeletedAt set, Resource
// cleared, memberships dropped): its id is never reused or revived, so a
// late full sync that still names it gets ErrNotFound, and a login linked
// to a deleted user can still be refused.
type Directory interface {
	// CreateDirectoryUser stores a new user with Version 1. ErrConflict when
	// a live user of the connection has the same UserName
	// (case-insensitively) or the same non-empty ExternalID, or on a
	// duplicate id.
	CreateDirectoryUser(ctx context.Context, u DirectoryUser) error
	// GetDirectoryUser returns a live user; ErrNotFound for an unknown or
	// deleted one.
	GetDirectoryUser(ctx context.Context, connectionID, id string) (DirectoryUser, error)
	// ListDirectoryUsers returns the users matching q, live ones first and
	// then by creation, and how many match in all.
	ListDirectoryUsers(ctx context.Context, q DirectoryUserQuery) ([]DirectoryUser, int, error)
	// UpdateDirectoryUser replaces a live user's fields if its Version is
	// still expectVersion, bumps Version and returns the stored result.
	// ErrNotFound (unknown or deleted), ErrConflict (version, uniqueness).
	UpdateDirectoryUser(ctx context.Context, u DirectoryUser, expectVersion int64) (DirectoryUser, error)
	// DeleteDirectoryUser turns a live user into a tombstone and drops its
	// memberships; it returns the user as it was. ErrNotFound.
	DeleteDirectoryUser(ctx context.Context, connectionID, id string, at time.Time) (DirectoryUser, error)

	// CreateDirectoryGroup stores a new group with Version 1 and the live
	// users among members. ErrConflict on a duplicate id.
	CreateDirectoryGroup(ctx context.Context, g DirectoryGroup, members []string) error
	// GetDirectoryGroup returns a live group; ErrNotFound otherwise.
	GetDirectoryGroup(ctx context.Context, connectionID, id string) (DirectoryGroup, error)
	// ListDirectoryGroups returns the live groups matching q ordered by
	// creation, and how many match in all.
	ListDirectoryGroups(ctx context.Context, q DirectoryGroupQuery) ([]DirectoryGroup, int, error)
	// UpdateDirectoryGroup replaces a live group's fields (not its members)
	// if its Version is still expectVersion. ErrNotFound, ErrConflict.
	UpdateDirectoryGroup(ctx context.Context, g DirectoryGroup, expectVersion int64) (DirectoryGroup, error)
	// DeleteDirectoryGroup turns a live group into a tombstone and returns
	// the ids of the users who were its members. ErrNotFound.
	DeleteDirectoryGroup(ctx context.Context, connectionID, id string, at time.Time) ([]string, error)
	// ChangeGroupMembers adds and removes members of a live group in one
	// transaction (replace: the group's members become exactly add) and
	// returns the user ids whose membership changed. Ids that are not live
	// users of the connection are skipped. ErrNotFound for the group.
	ChangeGroupMembers(ctx context.Context, connectionID, groupID string, ch MemberChange) ([]string, error)
	// GroupMembers returns the user ids of a group's members, sorted.
	GroupMembers(ctx context.Context, connectionID, groupID string) ([]string, error)

	// CreateScimToken stores a token by the hash of its secret. ErrConflict
	// on a duplicate id.
	CreateScimToken(ctx context.Context, t ScimToken) error
	// GetScimToken returns a token, revoked or not. ErrNotFound.
	GetScimToken(ctx context.Context, id string) (ScimToken, error)
	// ListScimTokens returns a connection's tokens, oldest first.
	ListScimTokens(ctx context.Context, connectionID string) ([]ScimToken, error)
	// RevokeScimToken marks a token of the connection revoked (again: no
	// change). ErrNotFound.
	RevokeScimToken(ctx context.Context, connectionID, id string, at time.Time) error

	// AppendScimRequest records one SCIM request (never its body).
	AppendScimRequest(ctx context.Context, r ScimRequest) error
	// ListScimRequests returns up to limit of a connection's most recent
	// SCIM requests, newest first. limit <= 0 means DefaultPageSize.
	ListScimRequests(ctx context.Context, connectionID string, limit int) ([]ScimRequest, error)
}

// DirectoryUser is a user provisioned over SCIM into one connection. The
// scim package owns Resource (the SCIM JSON); the store indexes the rest.
type DirectoryUser struct {
	ConnectionID string
	ID           string
	UserName     string
	ExternalID   string
	Email        string // primary email
	DisplayName  string
	Active       bool
	Resource     []byte
	Version      int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DeletedAt    time.Time // zero unless a tombstone
}

// DirectoryUserQuery filters and pages ListDirectoryUsers. Empty fields do
// not filter; UserName and Email match case-insensitively.
type DirectoryUserQuery struct {
	ConnectionID   string
	UserName       string
	ExternalID     string
	Email          string
	IncludeDeleted bool
	Offset         int
	Limit          int // <= 0: DefaultPageSize; capped at MaxPageSize
	// SkipTotal leaves the total uncounted (returned as -1): one query
	// instead of two, for lookups that want a page, not a count.
	SkipTotal bool
}

// DirectoryGroup is a group provisioned over SCIM into one connection.
type DirectoryGroup struct {
	ConnectionID string
	ID           string
	DisplayName  string
	ExternalID   string
	Resource     []byte
	Version      int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// DirectoryGroupQuery filters and pages ListDirectoryGroups.
type DirectoryGroupQuery struct {
	ConnectionID string
	DisplayName  string
	ExternalID   string
	MemberID     string // only groups this user belongs to
	Offset       int
	Limit        int // <= 0: DefaultPageSize; capped at MaxPageSize
}

// MemberChange is one edit of a group's members.
type MemberChange struct {
	Add     []string
	Remove  []string
	Replace bool // the members become exactly Add; Remove is ignored
}

// ScimToken is a SCIM bearer token of one connection, kept by the SHA-256
// hash of its secret.
type ScimToken struct {
	ID           string
	ConnectionID string
	Hash         []byte
	CreatedAt    time.Time
	RevokedAt    time.Time // zero unless revoked
}

// ScimRequest is one entry of a connection's SCIM request log.
type ScimRequest struct {
	ConnectionID string
	Time         time.Time
	Method       string
	Path         string
	Status       int
	ScimType     string
}
