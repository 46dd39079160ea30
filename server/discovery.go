package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/discovery"
	"github.com/ssogate/ssogate/token"
)

// validateMethod is the RPC whose scope (login) introspection asks of its
// caller.
const validateMethod = "/ssogate.v1.LoginService/ValidateToken"

// discoveryRoutes registers the discovery document and introspection.
func (s *Server) discoveryRoutes(mux *http.ServeMux) error {
	h, err := discovery.New(discovery.Config{
		Issuer:  cmp.Or(s.cfg.Token.Issuer, s.cfg.ExternalURL),
		BaseURL: s.cfg.ExternalURL,
		Algorithms: func(ctx context.Context) ([]string, error) {
			doc, err := s.jwks(ctx)
			if err != nil {
				return nil, err
			}
			var set struct {
				Keys []struct {
					Alg string `json:"alg"`
				} `json:"keys"`
			}
			if err := json.Unmarshal(doc, &set); err != nil {
				return nil, fmt.Errorf("jwks: %w", err)
			}
			algs := []string{s.cfg.Token.Algorithm}
			for _, k := range set.Keys {
				if k.Alg != "" && !slices.Contains(algs, k.Alg) {
					algs = append(algs, k.Alg)
				}
			}
			return algs, nil
		},
		Authorize: func(ctx context.Context, key string) error {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+key))
			if _, err := s.auth.authorize(ctx, validateMethod); err != nil {
				return errors.New(status.Convert(err).Message())
			}
			return nil
		},
		Introspect: func(ctx context.Context, raw string) (map[string]any, bool, error) {
			if _, err := s.verifyAccess(ctx, raw); err != nil {
				if errors.Is(err, token.ErrInvalid) {
					return nil, false, nil
				}
				return nil, false, err
			}
			claims, err := discovery.JWTClaims(raw)
			return claims, err == nil, err
		},
	})
	if err != nil {
		return err
	}
	h.Routes(mux)
	return nil
}
