package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ssogate/ssogate/events"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/portal"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
)

const (
	auditConnectionCreated = "connection.created"
	auditConnectionUpdated = "connection.updated"
	auditConnectionDeleted = "connection.deleted"
	// Also announced beside connection.updated when the state changes.
	auditConnectionActivated = "connection.activated"
	auditConnectionDisabled  = "connection.disabled"
	// The sessions a disabled connection ended, revoked after the change.
	auditConnectionRevoked = "connection.sessions_revoked"
)

type connectionService struct {
	ssogatev1.UnimplementedConnectionServiceServer
	s *Server
}

// applyIdPMetadata fills the IdP side of a connection from its metadata,
// keeping the metadata URL and its refresh state.
func applyIdPMetadata(c *ssogatev1.Connection, md saml.IdentityProvider) {
	idp := c.IdentityProvider
	if idp == nil {
		idp = &ssogatev1.IdentityProviderSettings{}
		c.IdentityProvider = idp
	}
	from := portal.SettingsFromMetadata(md)
	idp.EntityId, idp.SsoUrl, idp.SsoPostUrl, idp.SloUrl, idp.SloPostUrl, idp.Certificates = from.EntityId, from.SsoUrl, from.SsoPostUrl, from.SloUrl, from.SloPostUrl, from.Certificates
}

// invalid turns validation problems into INVALID_ARGUMENT naming fields.
func invalid(err error) error {
	return invalidFields(reasonConnectionInvalid, "connection.", err)
}

func (s *Server) storeErr(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.AlreadyExists, "%s conflicts with an existing one: %v", what, err)
	case errors.Is(err, store.ErrInvalidArgument):
		return status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	case errors.Is(err, store.ErrUnavailable):
		return status.Error(codes.Unavailable, unavailableMessage)
	}
	return internalError(fmt.Errorf("%s: %w", what, err))
}

func (cs connectionService) CreateConnection(ctx context.Context, req *ssogatev1.CreateConnectionRequest) (*ssogatev1.CreateConnectionResponse, error) {
	s := cs.s
	if req.Connection == nil {
		return nil, badField(reasonFieldRequired, "connection", "connection is required")
	}
	c := proto.Clone(req.Connection).(*ssogatev1.Connection)
	// Output-only fields are ours to set, whatever the caller sent.
	c.CreateTime, c.UpdateTime, c.ScimBaseUrl = nil, nil, ""
	if idp := c.IdentityProvider; idp != nil {
		idp.MetadataRefreshTime, idp.MetadataRefreshError = nil, ""
	}
	switch {
	case req.IdpMetadataXml != "" && req.IdpMetadataUrl != "":
		return nil, apiError(codes.InvalidArgument, reasonMetadataSourceClash, "set idp_metadata_xml or idp_metadata_url, not both")
	case req.IdpMetadataXml != "":
		md, err := saml.ParseIdPMetadata([]byte(req.IdpMetadataXml), req.IdpEntityId)
		if err != nil {
			return nil, badField(reasonIdPMetadataInvalid, "idp_metadata_xml", fmt.Sprintf("idp_metadata_xml: %v", err))
		}
		applyIdPMetadata(c, md)
	case req.IdpMetadataUrl != "":
		md, err := s.fetchIdPMetadata(ctx, req.IdpMetadataUrl, req.IdpEntityId)
		if err != nil {
			return nil, badField(reasonIdPMetadataUnreadable, "idp_metadata_url", fmt.Sprintf("idp_metadata_url: %v", err))
		}
		applyIdPMetadata(c, md)
		c.IdentityProvider.MetadataUrl = req.IdpMetadataUrl
		c.IdentityProvider.MetadataRefreshTime = timestamppb.New(s.now())
	}
	c.LastTestPassTime, c.IdentityProviderChangeTime = nil, nil
	undoKey, err := s.importSPKey(ctx, c, req)
	if err != nil {
		return nil, err
	}
	created := auditEvent{Type: auditConnectionCreated, ConnectionID: c.Id, TenantID: c.TenantId,
		Detail: map[string]any{"caller": caller(ctx), "state": c.State.String()}}
	stored, err := s.saveConnection(s.withAudit(ctx, created), c, saveOptions{})
	if err != nil {
		undoKey()
		return nil, err
	}
	return &ssogatev1.CreateConnectionResponse{Connection: stored}, nil
}

// saveOptions say what a save replaces.
type saveOptions struct {
	// prev is the stored connection being replaced; nil on create.
	prev *ssogatev1.Connection
	// version is prev's stored version.
	version int64
	// forceActivation moves to ACTIVE without a passing test login.
	forceActivation bool
}

// saveConnection validates and stores a connection: created when o.prev is
// nil, else updated if the version still matches. It keeps the output-only
// test and IdP-change times, refuses IdP certificates that have all
// expired, and refuses activation without a test login that passed since
// the IdP settings last changed (unless forced).
func (s *Server) saveConnection(ctx context.Context, c *ssogatev1.Connection, o saveOptions) (*ssogatev1.Connection, error) {
	c.Etag = ""
	normalizeSPIdentity(c, s.cfg.ExternalURL)
	now := timestamppb.New(s.now())
	if c.CreateTime == nil {
		c.CreateTime = now
	}
	c.UpdateTime = now
	c.LastTestPassTime, c.IdentityProviderChangeTime = o.prev.GetLastTestPassTime(), o.prev.GetIdentityProviderChangeTime()
	idpChanged := o.prev == nil || idpKey(o.prev) != idpKey(c)
	if idpChanged {
		c.IdentityProviderChangeTime = now
	}
	if err := validateConnection(c, s.allowHTTP); err != nil {
		return nil, invalid(err)
	}
	spEntityID, acsKey, err := s.checkSPIdentity(c)
	if err != nil {
		return nil, invalid(err)
	}
	activating := c.State == ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE && o.prev != nil &&
		o.prev.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE
	if idpChanged || activating {
		if err := checkCertificatesUsable(c, s.now()); err != nil {
			return nil, invalid(err)
		}
	}
	if activating && !o.forceActivation && !testedSinceChange(c) {
		return nil, apiError(codes.FailedPrecondition, reasonActivationUntested, fmt.Sprintf("connection %q cannot be activated: no test login has passed since its IdP "+
			"settings last changed (%s); run a test login (StartLogin with test: true, or the setup portal) and check its result "+
			"page, or set force_activation", c.Id, c.IdentityProviderChangeTime.AsTime().UTC().Format(time.RFC3339)), "connection_id", c.Id)
	}
	raw, err := marshalConnection(c)
	if err != nil {
		return nil, internalError(fmt.Errorf("encode connection: %w", err))
	}
	row := store.Connection{ID: c.Id, TenantID: c.TenantId, State: c.State.String(), Domains: c.EmailDomains,
		SPEntityID: spEntityID, ACSKey: acsKey, Config: raw}
	if o.prev == nil {
		if err := s.store.CreateConnection(ctx, row); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, s.conflict(ctx, c, true, row)
			}
			return nil, s.storeErr("connection", err)
		}
		row.Version = 1
	} else {
		stored, err := s.store.UpdateConnection(ctx, row, o.version)
		if errors.Is(err, store.ErrConflict) {
			return nil, s.conflict(ctx, c, false, row)
		}
		if err != nil {
			return nil, s.storeErr("connection", err)
		}
		row = stored
	}
	out := s.connectionOut(c, row.Version)
	own, err := s.ownSPKeys(ctx, c)
	if err != nil {
		s.log.WarnContext(ctx, "SP certificates of a saved connection", "connection_id", c.Id, "error", err)
	}
	return s.withSPCertificates(out, own), nil
}

// conflict explains a store conflict in the caller's terms: which value
// is taken, and by whom; only a lost race is worth retrying.
func (s *Server) conflict(ctx context.Context, c *ssogatev1.Connection, creating bool, row store.Connection) error {
	for _, d := range c.EmailDomains {
		owner, err := s.store.ConnectionByDomain(ctx, d)
		if err == nil && owner.ID != c.Id {
			return apiError(codes.AlreadyExists, reasonEmailDomainTaken, fmt.Sprintf("email domain %s already belongs to connection %s", d, owner.ID),
				"connection_id", c.Id, "email_domain", d, "owner_connection_id", owner.ID)
		}
	}
	if err := s.spIdentityTaken(ctx, c, row.SPEntityID, row.ACSKey); err != nil {
		return err
	}
	if _, err := s.store.GetConnection(ctx, c.Id); err == nil && creating {
		return apiError(codes.AlreadyExists, reasonConnectionExists, fmt.Sprintf("connection %s already exists", c.Id), "connection_id", c.Id)
	}
	return apiError(codes.Aborted, reasonConnectionChanged, fmt.Sprintf("connection %s changed meanwhile; read it again and retry", c.Id), "connection_id", c.Id)
}

// idpKey is what a test login depends on of the IdP side: a change to any
// of it needs a new test before activation.
func idpKey(c *ssogatev1.Connection) string {
	idp := c.GetIdentityProvider()
	key := strings.Join([]string{idp.GetEntityId(), idp.GetSsoUrl(), idp.GetSsoPostUrl()}, "\n")
	for _, cert := range idp.GetCertificates() {
		key += "\n" + strings.TrimSpace(cert.GetPem())
	}
	return key
}

// testedSinceChange reports whether a test login passed after the IdP
// settings last changed.
func testedSinceChange(c *ssogatev1.Connection) bool {
	pass := c.GetLastTestPassTime()
	if pass == nil {
		return false
	}
	change := c.GetIdentityProviderChangeTime()
	return change == nil || pass.AsTime().After(change.AsTime())
}

// checkCertificatesUsable refuses IdP certificates that have all expired:
// every login would fail. It names each one and its expiry.
func checkCertificatesUsable(c *ssogatev1.Connection, now time.Time) error {
	certs := c.GetIdentityProvider().GetCertificates()
	if len(certs) == 0 {
		return nil
	}
	var expired []string
	for _, pc := range certs {
		if pc.NotAfter == nil || now.Before(pc.NotAfter.AsTime()) {
			return nil
		}
		expired = append(expired, fmt.Sprintf("%q (SHA-256 %s) expired %s", pc.Subject, pc.Sha256Fingerprint,
			pc.NotAfter.AsTime().UTC().Format(time.RFC3339)))
	}
	return &fieldError{"identity_provider.certificates", "every IdP signing certificate has expired, so every login would fail: " +
		strings.Join(expired, "; ") + "; add the IdP's current signing certificate (or its fresh metadata)"}
}

// connectionOut adds the output-only fields.
func (s *Server) connectionOut(c *ssogatev1.Connection, version int64) *ssogatev1.Connection {
	out := withServiceProvider(c, s.cfg.ExternalURL)
	out.Etag = strconv.FormatInt(version, 10)
	return out
}

func (cs connectionService) GetConnection(ctx context.Context, req *ssogatev1.GetConnectionRequest) (*ssogatev1.GetConnectionResponse, error) {
	c, err := cs.s.rpcConnection(ctx, req.ConnectionId)
	if err != nil {
		return nil, err
	}
	return &ssogatev1.GetConnectionResponse{Connection: cs.s.withSPCertificates(cs.s.connectionOut(c.msg, c.version), c.ownKeys)}, nil
}

func (cs connectionService) ListConnections(ctx context.Context, req *ssogatev1.ListConnectionsRequest) (*ssogatev1.ListConnectionsResponse, error) {
	size := pageSize(req.PageSize)
	rows, next, err := cs.s.store.ListConnections(ctx, store.ListConnectionsQuery{TenantID: req.TenantId, PageSize: size, PageToken: req.PageToken})
	if err != nil {
		return nil, cs.s.storeErr("list connections", err)
	}
	out := &ssogatev1.ListConnectionsResponse{NextPageToken: next}
	own, err := cs.s.listSPKeys(ctx)
	if err != nil {
		return nil, cs.s.storeErr("list SP keys", err)
	}
	for _, row := range rows {
		c, err := unmarshalConnection(row.Config)
		if err != nil {
			return nil, internalError(err)
		}
		out.Connections = append(out.Connections, cs.s.withSPCertificates(cs.s.connectionOut(c, row.Version), own[spKeyOwner(c)]))
	}
	return out, nil
}

// updatable are the fields UpdateConnection may change (id and output-only
// fields may not).
var updatable = map[string]bool{
	"tenant_id": true, "display_name": true, "state": true, "identity_provider": true, "email_domains": true,
	"allowed_return_urls": true, "default_return_url": true, "attribute_mapping": true, "access_policy": true,
	"allow_idp_initiated": true, "sign_requests": true, "want_encrypted_assertions": true, "allow_sha1": true,
	"allow_legacy_encryption": true, "name_id_format": true, "max_session_duration": true,
	"service_provider": true, "clock_skew": true, "group_names": true, "publish_encryption_key": true,
}

func (cs connectionService) UpdateConnection(ctx context.Context, req *ssogatev1.UpdateConnectionRequest) (*ssogatev1.UpdateConnectionResponse, error) {
	s := cs.s
	if req.Connection == nil || req.Connection.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "connection.id is required")
	}
	cur, err := s.rpcConnection(ctx, req.Connection.Id)
	if err != nil {
		return nil, err
	}
	if req.Connection.Etag != "" && req.Connection.Etag != strconv.FormatInt(cur.version, 10) {
		return nil, status.Errorf(codes.Aborted, "etag %q is stale (now %d): read the connection again", req.Connection.Etag, cur.version)
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = populatedFields(req.Connection)
	}
	next := proto.Clone(cur.msg).(*ssogatev1.Connection)
	for _, p := range paths {
		top, _, _ := strings.Cut(p, ".")
		if !updatable[top] {
			return nil, status.Errorf(codes.InvalidArgument, "update_mask: %q cannot be changed", p)
		}
	}
	mask, err := fieldmaskpb.New(next, paths...)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "update_mask: %v", err)
	}
	applyMask(next, req.Connection, mask.GetPaths())
	// Output-only fields keep their stored values.
	next.CreateTime = cur.msg.CreateTime
	if next.IdentityProvider != nil {
		next.IdentityProvider.MetadataRefreshTime = cur.msg.GetIdentityProvider().GetMetadataRefreshTime()
		next.IdentityProvider.MetadataRefreshError = cur.msg.GetIdentityProvider().GetMetadataRefreshError()
	}
	detail := map[string]any{"caller": caller(ctx), "fields": paths}
	if req.ForceActivation && next.State != cur.msg.State && next.State == ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		detail["force_activation"] = true
	}
	if cur.msg.State != next.State {
		detail["state_from"], detail["state_to"] = cur.msg.State.String(), next.State.String()
	}
	stored, err := s.saveConnection(s.withAudit(ctx, connectionEvents(cur.msg, next, detail)...), next,
		saveOptions{prev: cur.msg, version: cur.version, forceActivation: req.ForceActivation})
	if err != nil {
		return nil, err
	}
	if next.State == ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED && cur.msg.State != next.State {
		// Switching a connection off ends its sessions everywhere at once.
		ids, err := s.store.RevokeConnection(ctx, next.Id, "connection disabled", s.now())
		if err != nil {
			return nil, s.storeErr("revoke the connection's sessions", err)
		}
		for _, id := range ids {
			s.revoked.add(id, s.now())
		}
		if len(ids) > 0 {
			s.audit(ctx, auditEvent{Type: auditConnectionRevoked, ConnectionID: next.Id, TenantID: next.TenantId,
				Message: "connection disabled", Detail: map[string]any{"sessions_revoked": len(ids), "caller": caller(ctx)}})
		}
	}
	return &ssogatev1.UpdateConnectionResponse{Connection: stored}, nil
}

// connectionEvents are the events of one change of a connection from cur
// to next: connection.updated, and connection.activated or
// connection.disabled when the state became ACTIVE or DISABLED.
func connectionEvents(cur, next *ssogatev1.Connection, detail map[string]any) []auditEvent {
	events := []auditEvent{{Type: auditConnectionUpdated, ConnectionID: next.Id, TenantID: next.TenantId, Detail: detail}}
	if cur.GetState() == next.State {
		return events
	}
	switch next.State {
	case ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE:
		events = append(events, auditEvent{Type: auditConnectionActivated, ConnectionID: next.Id, TenantID: next.TenantId,
			Detail: map[string]any{"caller": detail["caller"], "state_from": cur.GetState().String()}})
	case ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED:
		events = append(events, auditEvent{Type: auditConnectionDisabled, ConnectionID: next.Id, TenantID: next.TenantId,
			Detail: map[string]any{"caller": detail["caller"], "state_from": cur.GetState().String()}})
	}
	return events
}

// populatedFields lists the top-level fields set in m, for an update
// without a mask.
func populatedFields(m *ssogatev1.Connection) []string {
	var paths []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if name := string(fd.Name()); updatable[name] {
			paths = append(paths, name)
		}
		return true
	})
	return paths
}

func (cs connectionService) DeleteConnection(ctx context.Context, req *ssogatev1.DeleteConnectionRequest) (*ssogatev1.DeleteConnectionResponse, error) {
	s := cs.s
	ids, err := s.store.RevokeConnection(ctx, req.ConnectionId, "connection deleted", s.now())
	if err != nil {
		return nil, s.storeErr("revoke sessions", err)
	}
	for _, id := range ids {
		s.revoked.add(id, s.now())
	}
	deleted := auditEvent{Type: auditConnectionDeleted, ConnectionID: req.ConnectionId,
		Detail: map[string]any{"caller": caller(ctx), "sessions_revoked": len(ids)}}
	if err := s.store.DeleteConnection(s.withAudit(ctx, deleted), req.ConnectionId); err != nil {
		return nil, s.storeErr(fmt.Sprintf("connection %q", req.ConnectionId), err)
	}
	s.metrics.dropConnection(req.ConnectionId)
	// Its own SP keys go too; any left behind by a failure here cannot
	// serve a new connection of the same id (spkeys.go: incarnation).
	if err := s.deleteSPKeys(ctx, req.ConnectionId); err != nil {
		s.log.WarnContext(ctx, "delete the SP keys of a deleted connection", "connection_id", req.ConnectionId, "error", err)
	}
	return &ssogatev1.DeleteConnectionResponse{}, nil
}

func (cs connectionService) GetServiceProviderMetadata(ctx context.Context, req *ssogatev1.GetServiceProviderMetadataRequest) (*ssogatev1.GetServiceProviderMetadataResponse, error) {
	c, err := cs.s.rpcConnection(ctx, req.ConnectionId)
	if err != nil {
		return nil, err
	}
	md, err := c.sp.Metadata()
	if err != nil {
		return nil, internalError(fmt.Errorf("SP metadata: %w", err))
	}
	return &ssogatev1.GetServiceProviderMetadataResponse{MetadataXml: string(md),
		ServiceProvider: cs.s.withSPCertificates(withServiceProvider(c.msg, cs.s.cfg.ExternalURL), c.ownKeys).ServiceProvider}, nil
}

type auditService struct {
	ssogatev1.UnimplementedAuditServiceServer
	s *Server
}

func (as auditService) ListAuditEvents(ctx context.Context, req *ssogatev1.ListAuditEventsRequest) (*ssogatev1.ListAuditEventsResponse, error) {
	size := pageSize(req.PageSize)
	if req.After != nil {
		q := store.EventsQuery{After: req.GetAfter(), ConnectionID: req.ConnectionId, Limit: size}
		if req.Type != "" {
			q.Types = []string{req.Type}
		}
		rows, err := as.s.store.EventsAfter(ctx, q)
		if err != nil {
			return nil, as.s.storeErr("audit log", err)
		}
		return &ssogatev1.ListAuditEventsResponse{Events: auditEventsProto(rows)}, nil
	}
	q := store.AuditQuery{ConnectionID: req.ConnectionId, Type: req.Type, CorrelationID: req.CorrelationId, PageSize: size, PageToken: req.PageToken}
	if req.StartTime != nil {
		q.Since = req.StartTime.AsTime()
	}
	if req.EndTime != nil {
		q.Until = req.EndTime.AsTime()
	}
	rows, next, err := as.s.store.ListAudit(ctx, q)
	if err != nil {
		return nil, as.s.storeErr("audit log", err)
	}
	return &ssogatev1.ListAuditEventsResponse{Events: auditEventsProto(rows), NextPageToken: next}, nil
}

func auditEventsProto(rows []store.AuditEvent) []*ssogatev1.AuditEvent {
	out := make([]*ssogatev1.AuditEvent, len(rows))
	for i, e := range rows {
		out[i] = events.Proto(e)
	}
	return out
}

// applyMask copies the masked fields from src into dst; a path may name a
// nested field ("identity_provider.sso_url"). A field unset in src is
// cleared in dst.
func applyMask(dst, src proto.Message, paths []string) {
	for _, p := range paths {
		copyPath(dst.ProtoReflect(), src.ProtoReflect(), strings.Split(p, "."))
	}
}

func copyPath(dst, src protoreflect.Message, path []string) {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if fd == nil {
		return
	}
	if len(path) == 1 {
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
		return
	}
	if fd.Message() == nil || fd.IsList() || fd.IsMap() {
		return
	}
	copyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), path[1:])
}

// statusOf returns the gRPC code name of a status error.
func statusOf(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return "", false
	}
	return st.Code().String(), true
}

// pageSize applies the API's paging bounds: default 50, at most 500.
func pageSize(n int32) int {
	switch {
	case n <= 0:
		return 50
	case n > 500:
		return 500
	}
	return int(n)
}
