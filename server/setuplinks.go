package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/portal"
	"github.com/ssogate/ssogate/store"
)

// Setup link lifetimes.
const (
	setupLinkDefaultTTL = 7 * 24 * time.Hour
	setupLinkMaxTTL     = 30 * 24 * time.Hour
)

// ErrorInfo reasons of the setup-link and activation rules.
const (
	reasonEmailDomainTaken   = "EMAIL_DOMAIN_TAKEN"
	reasonConnectionChanged  = "CONNECTION_CHANGED"
	reasonActivationUntested = "ACTIVATION_NEEDS_TEST_LOGIN"
	reasonSetupLinkTTL       = "SETUP_LINK_TTL_INVALID"
	reasonSetupLinkFeature   = "SETUP_LINK_FEATURE_INVALID"
	reasonSetupLinkNotFound  = "SETUP_LINK_NOT_FOUND"
)

const (
	auditSetupLinkCreated = "setup_link.created"
	auditSetupLinkRevoked = "setup_link.revoked"
)

func (cs connectionService) CreateSetupLink(ctx context.Context, req *ssogatev1.CreateSetupLinkRequest) (*ssogatev1.CreateSetupLinkResponse, error) {
	s := cs.s
	c, err := s.rpcConnection(ctx, req.ConnectionId)
	if err != nil {
		return nil, err
	}
	ttl := setupLinkDefaultTTL
	if req.Ttl != nil {
		ttl = req.Ttl.AsDuration()
	}
	if ttl <= 0 || ttl > setupLinkMaxTTL {
		return nil, badField(reasonSetupLinkTTL, "ttl", fmt.Sprintf("ttl %s: want more than 0 and at most 720h (30 days); default 168h", ttl))
	}
	features := []string{}
	for _, f := range req.Features {
		if f == ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_UNSPECIFIED {
			return nil, badField(reasonSetupLinkFeature, "features", "features: SETUP_LINK_FEATURE_UNSPECIFIED is not a feature; list SAML and/or SCIM")
		}
		features = append(features, f.String())
	}
	if len(features) == 0 {
		features = []string{ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SAML.String(), ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SCIM.String()}
	}
	secret, err := portal.NewSecret(s.rand)
	if err != nil {
		return nil, internalError(fmt.Errorf("setup link secret: %w", err))
	}
	id, err := s.randomValue(9)
	if err != nil {
		return nil, internalError(fmt.Errorf("setup link id: %w", err))
	}
	id = "sl_" + id
	now := s.now()
	link := store.SetupLink{ID: id, ConnectionID: c.msg.Id, Hash: portal.HashSecret(secret), Features: features,
		Creator: caller(ctx), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.store.PutSetupLink(ctx, link); err != nil {
		return nil, s.storeErr(fmt.Sprintf("setup link for connection %q", c.msg.Id), err)
	}
	s.audit(ctx, auditEvent{Type: auditSetupLinkCreated, ConnectionID: c.msg.Id, TenantID: c.msg.TenantId,
		Detail: map[string]any{"caller": caller(ctx), "setup_link_id": id, "expire_time": link.ExpiresAt.UTC().Format(time.RFC3339), "features": features}})
	out := setupLinkOut(link)
	out.Url = s.cfg.ExternalURL + portal.Prefix + secret
	return &ssogatev1.CreateSetupLinkResponse{SetupLink: out, Secret: secret}, nil
}

func (cs connectionService) ListSetupLinks(ctx context.Context, req *ssogatev1.ListSetupLinksRequest) (*ssogatev1.ListSetupLinksResponse, error) {
	if _, err := cs.s.rpcConnection(ctx, req.ConnectionId); err != nil {
		return nil, err
	}
	links, err := cs.s.store.ListSetupLinks(ctx, req.ConnectionId)
	if err != nil {
		return nil, cs.s.storeErr("setup links", err)
	}
	out := &ssogatev1.ListSetupLinksResponse{}
	for _, l := range links {
		out.SetupLinks = append(out.SetupLinks, setupLinkOut(l))
	}
	return out, nil
}

func (cs connectionService) RevokeSetupLink(ctx context.Context, req *ssogatev1.RevokeSetupLinkRequest) (*ssogatev1.RevokeSetupLinkResponse, error) {
	s := cs.s
	l, err := s.store.RevokeSetupLink(ctx, req.ConnectionId, req.SetupLinkId, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apiError(codes.NotFound, reasonSetupLinkNotFound, fmt.Sprintf("connection %q has no setup link %q", req.ConnectionId, req.SetupLinkId),
			"connection_id", req.ConnectionId, "setup_link_id", req.SetupLinkId)
	}
	if err != nil {
		return nil, s.storeErr("setup link", err)
	}
	s.audit(ctx, auditEvent{Type: auditSetupLinkRevoked, ConnectionID: l.ConnectionID,
		Detail: map[string]any{"caller": caller(ctx), "setup_link_id": l.ID}})
	return &ssogatev1.RevokeSetupLinkResponse{SetupLink: setupLinkOut(l)}, nil
}

// setupLinkOut is a stored link as the API shows it, without its URL.
func setupLinkOut(l store.SetupLink) *ssogatev1.SetupLink {
	out := &ssogatev1.SetupLink{Id: l.ID, ConnectionId: l.ConnectionID, ExpireTime: timestamppb.New(l.ExpiresAt),
		CreateTime: timestamppb.New(l.CreatedAt), Creator: l.Creator}
	if !l.RevokedAt.IsZero() {
		out.RevokeTime = timestamppb.New(l.RevokedAt)
	}
	for _, f := range l.Features {
		out.Features = append(out.Features, ssogatev1.SetupLinkFeature(ssogatev1.SetupLinkFeature_value[f]))
	}
	return out
}
