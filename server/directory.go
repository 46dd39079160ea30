package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/policy"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/scim"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
)

const (
	auditScimTokenCreated = "scim_token.created"
	auditScimTokenRevoked = "scim_token.revoked"
	// revokeDeprovisioned is the revocation reason when the directory
	// deactivates or deletes a user.
	revokeDeprovisioned = "user deprovisioned by the directory (SCIM)"
)

// linkValue is the value of u that a NameID must equal to be u's login,
// under the connection's scim_match rule.
func linkValue(c *ssogatev1.Connection, u store.DirectoryUser) string {
	switch c.ScimMatch {
	case ssogatev1.ScimMatch_SCIM_MATCH_EXTERNAL_ID:
		return u.ExternalID
	case ssogatev1.ScimMatch_SCIM_MATCH_PRIMARY_EMAIL:
		return u.Email
	}
	return u.UserName
}

// linkedUser finds the directory user a NameID links to: the live one, or
// else the most recent tombstone (a deleted user stays refused).
func (s *Server) linkedUser(ctx context.Context, c *ssogatev1.Connection, nameID string) (store.DirectoryUser, bool, error) {
	q := store.DirectoryUserQuery{ConnectionID: c.Id, IncludeDeleted: true, Limit: 1, SkipTotal: true}
	switch c.ScimMatch {
	case ssogatev1.ScimMatch_SCIM_MATCH_EXTERNAL_ID:
		q.ExternalID = nameID
	case ssogatev1.ScimMatch_SCIM_MATCH_PRIMARY_EMAIL:
		q.Email = nameID
	default:
		q.UserName = nameID
	}
	if nameID == "" {
		return store.DirectoryUser{}, false, nil
	}
	users, _, err := s.store.ListDirectoryUsers(ctx, q)
	if err != nil {
		return store.DirectoryUser{}, false, fmt.Errorf("directory user of NameID: %w", err)
	}
	if len(users) == 0 {
		return store.DirectoryUser{}, false, nil
	}
	return users[0], true, nil
}

func deprovisioned(c *ssogatev1.Connection, u store.DirectoryUser) error {
	what := "deactivated"
	if !u.DeletedAt.IsZero() {
		what = "deleted"
	}
	return saml.Rejectf(saml.ReasonUserDeprovisioned,
		"the directory (SCIM) %s user %q (id %s) of connection %q; the IdP still signed this login, but ssogate refuses it until the user is reactivated in the IdP's provisioning",
		what, u.UserName, u.ID, c.Id)
}

// admitDirectory applies the directory to a verified login: a deactivated
// or deleted user is refused, an unknown one too when the connection
// requires provisioning, and the groups the policy and the token see come
// from groups_source. fromDirectory reports that the groups are the
// directory's (groups_source DIRECTORY or BOTH, and the user is linked).
func (s *Server) admitDirectory(ctx context.Context, c *ssogatev1.Connection, ident *saml.Identity) (fromDirectory bool, err error) {
	u, found, err := s.linkedUser(ctx, c, ident.NameID)
	if err != nil {
		return false, err
	}
	switch {
	case found && (!u.Active || !u.DeletedAt.IsZero()):
		return false, deprovisioned(c, u)
	case !found && c.RequireProvisioned:
		return false, saml.Rejectf(saml.ReasonUserNotProvisioned,
			"connection %q admits only users provisioned over SCIM, and none has %s %q; assign the user to the application in the IdP and let provisioning run",
			c.Id, matchName(c), ident.NameID)
	case !found:
		return false, nil
	}
	switch c.GroupsSource {
	case ssogatev1.GroupsSource_GROUPS_SOURCE_DIRECTORY, ssogatev1.GroupsSource_GROUPS_SOURCE_BOTH:
		groups, err := s.directoryGroupNames(ctx, c.Id, u.ID)
		if err != nil {
			return false, err
		}
		if c.GroupsSource == ssogatev1.GroupsSource_GROUPS_SOURCE_BOTH {
			groups = union(ident.Mapped.Groups, groups)
		}
		ident.Mapped.Groups = groups
		return true, nil
	}
	return false, nil
}

func matchName(c *ssogatev1.Connection) string {
	switch c.ScimMatch {
	case ssogatev1.ScimMatch_SCIM_MATCH_EXTERNAL_ID:
		return "externalId"
	case ssogatev1.ScimMatch_SCIM_MATCH_PRIMARY_EMAIL:
		return "primary email"
	}
	return "userName"
}

// recheckDirectory runs after the session is stored: a deactivation that
// raced the login either is seen here (and the new session revoked), or
// happened after the session existed, and then its revocation covered it.
func (s *Server) recheckDirectory(ctx context.Context, c *ssogatev1.Connection, sess store.Session) error {
	u, found, err := s.linkedUser(ctx, c, sess.NameID)
	if err != nil || !found || (u.Active && u.DeletedAt.IsZero()) {
		return err
	}
	if err := s.revokeSessions(ctx, []string{sess.ID}, revokeDeprovisioned); err != nil {
		return err
	}
	return deprovisioned(c, u)
}

func (s *Server) directoryGroupNames(ctx context.Context, connectionID, userID string) ([]string, error) {
	groups, _, err := s.store.ListDirectoryGroups(ctx, store.DirectoryGroupQuery{ConnectionID: connectionID, MemberID: userID,
		Limit: store.MaxPageSize})
	if err != nil {
		return nil, fmt.Errorf("directory groups of user %q: %w", userID, err)
	}
	names := make([]string, 0, len(groups))
	for _, g := range groups {
		names = append(names, g.DisplayName)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// linkedSubjects are the token subjects a directory user's logins have:
// NameIDs compare case-insensitively for userName and email, so both the
// value and its lower case are covered.
func linkedNameIDs(c *ssogatev1.Connection, u store.DirectoryUser) []string {
	v := linkValue(c, u)
	if v == "" {
		return nil
	}
	if c.ScimMatch != ssogatev1.ScimMatch_SCIM_MATCH_EXTERNAL_ID && strings.ToLower(v) != v {
		return []string{v, strings.ToLower(v)}
	}
	return []string{v}
}

// scimHooks connect the SCIM service provider to sessions and the audit
// log.
type scimHooks struct{ s *Server }

func (h scimHooks) ConnectionExists(ctx context.Context, id string) error {
	_, err := h.s.store.GetConnection(ctx, id)
	return err
}

// Deprovisioned revokes every session of the user's logins; the
// revocation log carries it to every replica.
func (h scimHooks) Deprovisioned(ctx context.Context, connectionID string, u store.DirectoryUser) error {
	s := h.s
	c, err := s.registry.get(ctx, connectionID)
	if err != nil {
		return err
	}
	for _, nameID := range linkedNameIDs(c.msg, u) {
		subject := token.Subject(connectionID, nameID)
		ids, err := s.store.RevokeSubject(ctx, connectionID, subject, revokeDeprovisioned, s.now())
		if err != nil {
			return fmt.Errorf("revoke sessions of deprovisioned user %q: %w", u.ID, err)
		}
		for _, id := range ids {
			s.revoked.add(id, s.now())
		}
		if len(ids) > 0 {
			s.audit(ctx, auditEvent{Type: auditSubjectRevoked, ConnectionID: connectionID, TenantID: c.msg.TenantId,
				Subject: subject, Message: revokeDeprovisioned, Detail: map[string]any{"sessions": len(ids), "directory_user_id": u.ID}})
		}
	}
	return nil
}

// MembershipChanged re-applies the access policy to the live sessions of
// users who left groups, when directory groups feed the policy.
func (h scimHooks) MembershipChanged(ctx context.Context, connectionID string, left map[string][]string) error {
	s := h.s
	c, err := s.registry.get(ctx, connectionID)
	if err != nil {
		return err
	}
	src := c.msg.GroupsSource
	if src != ssogatev1.GroupsSource_GROUPS_SOURCE_DIRECTORY && src != ssogatev1.GroupsSource_GROUPS_SOURCE_BOTH {
		return nil
	}
	now := s.now()
	for userID, gone := range left {
		u, err := s.store.GetDirectoryUser(ctx, connectionID, userID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		current, err := s.directoryGroupNames(ctx, connectionID, userID)
		if err != nil {
			return err
		}
		for _, nameID := range linkedNameIDs(c.msg, u) {
			sessions, err := s.store.FindSessions(ctx, connectionID, nameID, "")
			if err != nil {
				return fmt.Errorf("sessions of directory user %q: %w", userID, err)
			}
			for _, sess := range sessions {
				if !sess.Live(now) {
					continue
				}
				ident, err := sessionIdentity(sess)
				if err != nil {
					return err
				}
				groups := current
				if src == ssogatev1.GroupsSource_GROUPS_SOURCE_BOTH {
					kept := slices.DeleteFunc(slices.Clone(ident.Groups), func(g string) bool { return slices.Contains(gone, g) })
					groups = union(kept, current)
				}
				attrs := map[string][]string{}
				for k, v := range ident.Attributes {
					attrs[k] = v.GetValues()
				}
				_, err = c.policy.Decide(policy.Subject{Groups: groups, Attributes: attrs})
				var d *policy.Denied
				if !errors.As(err, &d) {
					continue
				}
				reason := "access policy no longer admits the user after a directory group change: " + d.Message
				if err := s.revokeSessions(ctx, []string{sess.ID}, reason); err != nil {
					return err
				}
				s.audit(ctx, auditEvent{Type: auditSessionRevoked, ConnectionID: connectionID, TenantID: c.msg.TenantId,
					Subject: sess.Subject, Message: reason, Detail: map[string]any{"session_id": sess.ID, "directory_user_id": userID}})
			}
		}
	}
	return nil
}

// Audit appends a directory sync event without a change of its own.
func (h scimHooks) Audit(ctx context.Context, e scim.Event) { h.s.audit(ctx, h.event(ctx, e)) }

// WithEvent has the store append e with the user change (the outbox).
func (h scimHooks) WithEvent(ctx context.Context, e scim.Event) context.Context {
	return h.s.withAudit(ctx, h.event(ctx, e))
}

// event is the audit event of e: a user event's data carries the user as
// the directory now has it (user_id, user_name, external_id, email,
// active), so a receiver can act without reading it back.
func (h scimHooks) event(ctx context.Context, e scim.Event) auditEvent {
	ae := auditEvent{Type: e.Type, ConnectionID: e.ConnectionID, Detail: e.Detail}
	if e.User != nil {
		ae.Detail = maps.Clone(e.Detail)
		if ae.Detail == nil {
			ae.Detail = map[string]any{}
		}
		ae.Detail["user_id"], ae.Detail["user_name"], ae.Detail["active"] = e.User.ID, e.User.UserName, e.User.Active
		for k, v := range map[string]string{"external_id": e.User.ExternalID, "email": e.User.Email} {
			if v != "" {
				ae.Detail[k] = v
			}
		}
	}
	if c, err := h.s.registry.get(ctx, e.ConnectionID); err == nil {
		ae.TenantID = c.msg.TenantId
		if e.User != nil {
			if v := linkValue(c.msg, *e.User); v != "" {
				ae.Subject = token.Subject(e.ConnectionID, v)
			}
		}
	}
	return ae
}

// newSCIM builds the SCIM service provider.
func (s *Server) newSCIM() (*scim.Handler, error) {
	if s.scimLimiter == nil && s.limiter != nil {
		// Its own buckets (route "scim"), at the browser routes' rates: an
		// IdP's sync client is one address whose pace the IdP sets (Entra
		// and Okta stay well under 50 requests/s).
		s.scimLimiter = s.limiter.Route("scim")
	}
	return scim.New(scim.Config{Store: s.store, Hooks: scimHooks{s}, Limiter: s.scimLimiter, Now: s.now, Rand: s.rand, Log: s.log})
}

// WithSCIMLimiter rate-limits the SCIM routes.
func WithSCIMLimiter(l scim.Limiter) Option { return func(s *Server) { s.scimLimiter = l } }

func scimTokenOut(t store.ScimToken) *ssogatev1.ScimToken {
	out := &ssogatev1.ScimToken{Id: t.ID, ConnectionId: t.ConnectionID, CreateTime: timestamppb.New(t.CreatedAt)}
	if !t.RevokedAt.IsZero() {
		out.RevokeTime = timestamppb.New(t.RevokedAt)
	}
	return out
}

func (cs connectionService) CreateScimToken(ctx context.Context, req *ssogatev1.CreateScimTokenRequest) (*ssogatev1.CreateScimTokenResponse, error) {
	s := cs.s
	c, err := s.rpcConnection(ctx, req.ConnectionId)
	if err != nil {
		return nil, err
	}
	t, secret, err := scim.CreateToken(ctx, s.store, s.rand, c.msg.Id, s.now())
	if err != nil {
		return nil, internalError(fmt.Errorf("create scim token: %w", err))
	}
	s.audit(ctx, auditEvent{Type: auditScimTokenCreated, ConnectionID: c.msg.Id, TenantID: c.msg.TenantId,
		Detail: map[string]any{"scim_token_id": t.ID, "caller": caller(ctx)}})
	return &ssogatev1.CreateScimTokenResponse{ScimToken: scimTokenOut(t), Secret: secret,
		ScimBaseUrl: scim.BaseURL(s.cfg.ExternalURL, c.msg.Id)}, nil
}

func (cs connectionService) ListScimTokens(ctx context.Context, req *ssogatev1.ListScimTokensRequest) (*ssogatev1.ListScimTokensResponse, error) {
	if _, err := cs.s.rpcConnection(ctx, req.ConnectionId); err != nil {
		return nil, err
	}
	tokens, err := cs.s.store.ListScimTokens(ctx, req.ConnectionId)
	if err != nil {
		return nil, cs.s.storeErr("scim tokens", err)
	}
	out := &ssogatev1.ListScimTokensResponse{}
	for _, t := range tokens {
		out.ScimTokens = append(out.ScimTokens, scimTokenOut(t))
	}
	return out, nil
}

func (cs connectionService) RevokeScimToken(ctx context.Context, req *ssogatev1.RevokeScimTokenRequest) (*ssogatev1.RevokeScimTokenResponse, error) {
	s := cs.s
	if err := s.store.RevokeScimToken(ctx, req.ConnectionId, req.ScimTokenId, s.now()); err != nil {
		return nil, s.storeErr(fmt.Sprintf("scim token %q of connection %q", req.ScimTokenId, req.ConnectionId), err)
	}
	ae := auditEvent{Type: auditScimTokenRevoked, ConnectionID: req.ConnectionId,
		Detail: map[string]any{"scim_token_id": req.ScimTokenId, "caller": caller(ctx)}}
	if c, err := s.registry.get(ctx, req.ConnectionId); err == nil {
		ae.TenantID = c.msg.TenantId
	}
	s.audit(ctx, ae)
	return &ssogatev1.RevokeScimTokenResponse{}, nil
}

func (cs connectionService) ListScimRequests(ctx context.Context, req *ssogatev1.ListScimRequestsRequest) (*ssogatev1.ListScimRequestsResponse, error) {
	if _, err := cs.s.rpcConnection(ctx, req.ConnectionId); err != nil {
		return nil, err
	}
	reqs, err := cs.s.store.ListScimRequests(ctx, req.ConnectionId, int(req.PageSize))
	if err != nil {
		return nil, cs.s.storeErr("scim requests", err)
	}
	out := &ssogatev1.ListScimRequestsResponse{}
	for _, r := range reqs {
		out.Requests = append(out.Requests, &ssogatev1.ScimRequest{Time: timestamppb.New(r.Time), Method: r.Method,
			Path: r.Path, Status: int32(r.Status), ScimType: r.ScimType})
	}
	return out, nil
}

// directoryService is DirectoryService.
type directoryService struct {
	ssogatev1.UnimplementedDirectoryServiceServer
	s *Server
}

func directoryUserOut(u store.DirectoryUser) *ssogatev1.DirectoryUser {
	dept, num, mgr := scim.Enterprise(u.Resource)
	return &ssogatev1.DirectoryUser{Id: u.ID, UserName: u.UserName, ExternalId: u.ExternalID, Email: u.Email,
		DisplayName: u.DisplayName, Active: u.Active, Department: dept, EmployeeNumber: num, ManagerId: mgr,
		CreateTime: timestamppb.New(u.CreatedAt), UpdateTime: timestamppb.New(u.UpdatedAt)}
}

// offsetPage reads an offset page token.
func offsetPage(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(token)
	if err != nil || n < 0 {
		return 0, status.Error(codes.InvalidArgument, "page_token is not one this service returned")
	}
	return n, nil
}

func nextOffset(offset, got, total int) string {
	if offset+got >= total || got == 0 {
		return ""
	}
	return strconv.Itoa(offset + got)
}

func (d directoryService) ListDirectoryUsers(ctx context.Context, req *ssogatev1.ListDirectoryUsersRequest) (*ssogatev1.ListDirectoryUsersResponse, error) {
	if _, err := d.s.rpcConnection(ctx, req.ConnectionId); err != nil {
		return nil, err
	}
	offset, err := offsetPage(req.PageToken)
	if err != nil {
		return nil, err
	}
	users, total, err := d.s.store.ListDirectoryUsers(ctx, store.DirectoryUserQuery{ConnectionID: req.ConnectionId,
		UserName: req.UserName, Offset: offset, Limit: int(req.PageSize)})
	if err != nil {
		return nil, d.s.storeErr("directory users", err)
	}
	out := &ssogatev1.ListDirectoryUsersResponse{TotalSize: int32(total), NextPageToken: nextOffset(offset, len(users), total)}
	for _, u := range users {
		out.Users = append(out.Users, directoryUserOut(u))
	}
	return out, nil
}

func (d directoryService) GetDirectoryUser(ctx context.Context, req *ssogatev1.GetDirectoryUserRequest) (*ssogatev1.GetDirectoryUserResponse, error) {
	u, err := d.s.store.GetDirectoryUser(ctx, req.ConnectionId, req.UserId)
	if err != nil {
		return nil, d.s.storeErr(fmt.Sprintf("directory user %q of connection %q", req.UserId, req.ConnectionId), err)
	}
	out := directoryUserOut(u)
	if out.Groups, err = d.s.directoryGroupNames(ctx, req.ConnectionId, u.ID); err != nil {
		return nil, internalError(err)
	}
	return &ssogatev1.GetDirectoryUserResponse{User: out}, nil
}

func (d directoryService) ListDirectoryGroups(ctx context.Context, req *ssogatev1.ListDirectoryGroupsRequest) (*ssogatev1.ListDirectoryGroupsResponse, error) {
	if _, err := d.s.rpcConnection(ctx, req.ConnectionId); err != nil {
		return nil, err
	}
	offset, err := offsetPage(req.PageToken)
	if err != nil {
		return nil, err
	}
	groups, total, err := d.s.store.ListDirectoryGroups(ctx, store.DirectoryGroupQuery{ConnectionID: req.ConnectionId,
		Offset: offset, Limit: int(req.PageSize)})
	if err != nil {
		return nil, d.s.storeErr("directory groups", err)
	}
	out := &ssogatev1.ListDirectoryGroupsResponse{TotalSize: int32(total), NextPageToken: nextOffset(offset, len(groups), total)}
	for _, g := range groups {
		out.Groups = append(out.Groups, &ssogatev1.DirectoryGroup{Id: g.ID, DisplayName: g.DisplayName, ExternalId: g.ExternalID,
			CreateTime: timestamppb.New(g.CreatedAt), UpdateTime: timestamppb.New(g.UpdatedAt)})
	}
	return out, nil
}
