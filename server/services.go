package server

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/token"
)

type keyService struct {
	ssogatev1.UnimplementedKeyServiceServer
	s *Server
}

func (k keyService) GetJWKS(ctx context.Context, _ *ssogatev1.GetJWKSRequest) (*ssogatev1.GetJWKSResponse, error) {
	doc, err := k.s.jwks(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "signing keys: %v", err)
	}
	st := &structpb.Struct{}
	if err := st.UnmarshalJSON(doc); err != nil {
		return nil, internalError(fmt.Errorf("jwks: %w", err))
	}
	return &ssogatev1.GetJWKSResponse{Jwks: st}, nil
}

func keyOut(k token.KeyInfo) *ssogatev1.SigningKey {
	ts := func(t interface{ IsZero() bool }) bool { return !t.IsZero() }
	out := &ssogatev1.SigningKey{Kid: k.ID, Algorithm: k.Algorithm, Status: string(k.State)}
	if ts(k.CreatedAt) {
		out.CreateTime = timestamppb.New(k.CreatedAt)
	}
	if ts(k.PublishAt) {
		out.PublishTime = timestamppb.New(k.PublishAt)
	}
	if ts(k.ActivateAt) {
		out.ActivateTime = timestamppb.New(k.ActivateAt)
	}
	if ts(k.RetireAt) {
		out.RetireTime = timestamppb.New(k.RetireAt)
	}
	if ts(k.ExpireAt) {
		out.ExpireTime = timestamppb.New(k.ExpireAt)
	}
	return out
}

func (k keyService) ListSigningKeys(ctx context.Context, _ *ssogatev1.ListSigningKeysRequest) (*ssogatev1.ListSigningKeysResponse, error) {
	if err := k.s.keys.Reload(ctx); err != nil {
		return nil, status.Errorf(codes.Unavailable, "signing keys: %v", err)
	}
	keys := k.s.keys.Keys()
	sort.Slice(keys, func(i, j int) bool { return keys[i].CreatedAt.After(keys[j].CreatedAt) })
	out := &ssogatev1.ListSigningKeysResponse{}
	for _, ki := range keys {
		out.Keys = append(out.Keys, keyOut(ki))
	}
	return out, nil
}

func (k keyService) RotateSigningKey(ctx context.Context, req *ssogatev1.RotateSigningKeyRequest) (*ssogatev1.RotateSigningKeyResponse, error) {
	if req.Algorithm != "" && req.Algorithm != k.s.cfg.Token.Algorithm {
		return nil, status.Errorf(codes.InvalidArgument, "algorithm %q: this server makes %s keys (token.algorithm)", req.Algorithm, k.s.cfg.Token.Algorithm)
	}
	info, err := k.s.keys.RotateNow(ctx)
	if err != nil {
		return nil, internalError(fmt.Errorf("rotate: %w", err))
	}
	k.s.audit(ctx, auditEvent{Type: auditKeyRotated, Detail: map[string]any{"kid": info.ID, "caller": caller(ctx)}})
	return &ssogatev1.RotateSigningKeyResponse{Key: keyOut(info)}, nil
}
