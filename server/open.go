package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/consent"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
)

// Background work cadence.
const (
	revocationPoll       = time.Second
	sweepEvery           = time.Minute
	keyMaintenanceEvery  = time.Minute
	metadataRefreshEvery = time.Hour
)

// open connects the store, loads or creates the key-encryption key and the
// signing keys, builds the token issuer and seeds the configured
// connections.
func (s *Server) open(ctx context.Context) error {
	st, err := openStore(ctx, s.cfg.Store)
	if err != nil {
		return fmt.Errorf("open store %s: %w", config.Config{Store: s.cfg.Store}.Redacted().Store, err)
	}
	s.store = invalidatingStore{Store: tracedStore{Store: st, tracer: s.tracer()}, r: s.registry}
	kek, err := s.loadKEK()
	if err != nil {
		return err
	}
	if s.spCreds, err = s.loadSPCredentials(ctx, kek); err != nil {
		return err
	}
	if err := s.openEvents(kek); err != nil {
		return err
	}
	s.keys, err = token.NewKeySet(token.KeySetConfig{
		Store: keyStore{st}, KEK: kek, Algorithm: s.cfg.Token.Algorithm, RotationPeriod: s.cfg.Token.KeyRotation,
		MaxTokenTTL: s.cfg.Token.AccessTTL, Leeway: token.DefaultLeeway, Now: s.now, Rand: s.rand, Logger: s.log,
	})
	clear(kek)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if err := s.keys.Rotate(ctx); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	s.tokens, err = token.New(token.Config{
		Issuer: s.cfg.Token.Issuer, Audience: s.cfg.Token.Audience, Keys: s.keys,
		Revocation: revocationChecker{s.revoked}, Refresh: refreshStore{s: s},
		AccessTTL: s.cfg.Token.AccessTTL, RefreshTTL: s.cfg.Token.RefreshTTL, Now: s.now, Rand: s.rand,
		RefreshRetryWindow: retryWindow(s.cfg.Token.RefreshRetryWindow),
	})
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	s.consent, err = consent.New(consent.Config{Store: consentStore{st, s.now}, Now: s.now, Rand: s.rand,
		InsecureCookie: strings.HasPrefix(s.cfg.ExternalURL, "http://")})
	if err != nil {
		return err
	}
	if err := s.seedConnections(ctx); err != nil {
		return err
	}
	if err := s.syncRevocations(ctx); err != nil {
		return err
	}
	s.checks = append(s.checks,
		readinessCheck{"store", st.Ping},
		readinessCheck{"signing key", func(context.Context) error {
			for _, k := range s.keys.Keys() {
				if k.Signing {
					return nil
				}
			}
			return errors.New("no active signing key")
		}},
	)
	return nil
}

// retryWindow turns the setting (0: off) into token.Config's (negative:
// off, 0: the default).
func retryWindow(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// loadKEK returns the configured key-encryption key. Without one, a SQLite
// store gets a generated key in a 0600 file beside the database (said
// loudly in the log); PostgreSQL, shared by replicas, requires a
// configured key.
func (s *Server) loadKEK() ([]byte, error) {
	if s.cfg.KEK != "" || s.cfg.KEKFile != "" {
		kek, err := token.LoadKEK(s.cfg.KEK, s.cfg.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("invalid setting kek (SSOGATE_KEK) / kek_file: %w", err)
		}
		return kek, nil
	}
	kind, dsn, _ := config.ParseStore(s.cfg.Store)
	if kind != "sqlite" {
		return nil, errors.New("invalid setting kek (SSOGATE_KEK, --kek): required with a PostgreSQL store, so that every replica can open the signing keys; generate one with: openssl rand -base64 32")
	}
	path := dsn + ".kek"
	if raw, err := os.ReadFile(path); err == nil {
		return token.ParseKEK(strings.TrimSpace(string(raw)))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read generated key-encryption key: %w", err)
	}
	kek, encoded, err := token.GenerateKEK(s.rand)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(encoded+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write generated key-encryption key: %w", err)
	}
	s.log.Warn("no key-encryption key configured: generated one for this SQLite store; set SSOGATE_KEK or kek_file in production", "kek_file", path)
	return kek, nil
}

// seedConnections creates or updates the connections declared in the
// config file (GitOps style): the file wins over earlier API edits of the
// same connection. One whose IdP metadata cannot be fetched waits as
// pending (see pending.go) instead of stopping the start.
func (s *Server) seedConnections(ctx context.Context) error {
	for i, m := range s.cfg.Connections {
		err := s.seedConnection(ctx, i, m)
		if errors.Is(err, errMetadataUnreachable) {
			c, _ := connectionFromMap(m) // parsed by seedConnection already
			s.addPending(ctx, i, m, c.Id, c.TenantId, err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// seedConnection creates or updates the i-th declared connection.
func (s *Server) seedConnection(ctx context.Context, i int, m map[string]any) error {
	c, err := connectionFromMap(m)
	if err != nil {
		return fmt.Errorf("invalid setting connections[%d]: %w", i, err)
	}
	cur, err := s.store.GetConnection(ctx, c.Id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("seed connection %q: %w", c.Id, err)
	}
	if err := s.seedIdPFromMetadata(ctx, c, cur); err != nil {
		return fmt.Errorf("invalid setting connections[%d] (%s): %w", i, c.Id, err)
	}
	if err := validateConnection(c, s.allowHTTP); err != nil {
		return fmt.Errorf("invalid setting connections[%d] (%s): %w", i, c.Id, err)
	}
	detail := map[string]any{"caller": "config file", "state": c.State.String()}
	switch {
	case errors.Is(err, store.ErrNotFound):
		created := auditEvent{Type: auditConnectionCreated, ConnectionID: c.Id, TenantID: c.TenantId, Detail: detail}
		_, err = s.saveConnection(s.withAudit(ctx, created), c, saveOptions{})
	default:
		stored, uerr := unmarshalConnection(cur.Config)
		prev := stored
		if prev == nil {
			prev = &ssogatev1.Connection{}
		}
		if uerr == nil {
			stored = proto.Clone(stored).(*ssogatev1.Connection)
			stored.LastTestPassTime, stored.IdentityProviderChangeTime = nil, nil
			c.CreateTime = stored.CreateTime
			probe := proto.Clone(c).(*ssogatev1.Connection)
			for _, x := range []*ssogatev1.Connection{probe, stored} {
				x.UpdateTime = nil
				if x.IdentityProvider != nil {
					x.IdentityProvider.MetadataRefreshTime = nil
				}
			}
			if proto.Equal(probe, stored) {
				return nil // unchanged: no write, no audit
			}
		}
		// A config file states the intended state: activation from it
		// is the operator's decision, as force_activation is.
		_, err = s.saveConnection(s.withAudit(ctx, connectionEvents(stored, c, detail)...), c,
			saveOptions{prev: prev, version: cur.Version, forceActivation: true})
	}
	if err != nil {
		// Another replica seeding the same file at once is fine.
		if st, ok := statusOf(err); ok && (st == "AlreadyExists" || st == "Aborted") {
			return nil
		}
		return fmt.Errorf("seed connection %q: %w", c.Id, err)
	}
	return nil
}

// periodically runs job every interval until ctx ends, logging (not
// returning) its failures: background work must not stop the server.
func (s *Server) periodically(ctx context.Context, name string, interval time.Duration, job func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := job(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn(name+" failed", "error", err)
			}
		}
	}
}

// maintainKeys rotates signing keys on schedule and picks up keys other
// replicas made.
func (s *Server) maintainKeys(ctx context.Context) error {
	return s.periodically(ctx, "signing key maintenance", keyMaintenanceEvery, s.keys.Rotate)
}

// sweep deletes expired rows and forgets revocations no token can outlive.
func (s *Server) sweep(ctx context.Context, every time.Duration) error {
	return s.periodically(ctx, "sweep", every, func(ctx context.Context) error {
		n, err := s.store.Sweep(ctx, s.now())
		if n > 0 {
			s.log.Debug("sweep", "deleted", n)
		}
		if pruned, perr := s.store.PruneAudit(ctx, s.now().Add(-s.cfg.AuditRetention)); perr != nil {
			err = errors.Join(err, perr)
		} else if pruned > 0 {
			s.log.Info("audit events past retention deleted", "deleted", pruned, "retention", s.cfg.AuditRetention.String())
		}
		s.revoked.forgetBefore(s.now().Add(-s.cfg.Token.AccessTTL - 2*token.DefaultLeeway))
		s.limiter.Sweep() // refilled rate-limit buckets
		return err
	})
}

// seedIdPFromMetadata fills a declared connection's IdP side from its
// metadata_url when the file lists no certificates: fetched now, or, if the
// IdP cannot be reached, the copy stored by an earlier start (so an IdP
// outage never stops a restart).
func (s *Server) seedIdPFromMetadata(ctx context.Context, c *ssogatev1.Connection, stored store.Connection) error {
	idp := c.GetIdentityProvider()
	if idp.GetMetadataUrl() == "" || len(idp.GetCertificates()) > 0 {
		return nil
	}
	if err := checkEndpoint(idp.MetadataUrl, s.allowHTTP); err != nil {
		return fmt.Errorf("identity_provider.metadata_url: %w", err) // waiting will not cure it
	}
	md, err := s.fetchIdPMetadata(ctx, idp.MetadataUrl, idp.EntityId)
	if err == nil {
		applyIdPMetadata(c, md)
		c.IdentityProvider.MetadataRefreshTime = timestamppb.New(s.now())
		return nil
	}
	if prev, perr := unmarshalConnection(stored.Config); perr == nil && len(prev.GetIdentityProvider().GetCertificates()) > 0 {
		s.log.Warn("IdP metadata unreachable at start; keeping the stored copy", "connection_id", c.Id, "error", err)
		keepURL := idp.MetadataUrl
		c.IdentityProvider = prev.IdentityProvider
		c.IdentityProvider.MetadataUrl = keepURL
		c.IdentityProvider.MetadataRefreshError = err.Error()
		return nil
	}
	if c.State == ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT || c.State == ssogatev1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
		return nil // a draft may wait for its metadata
	}
	return fmt.Errorf("identity_provider.metadata_url: %w: %w", errMetadataUnreachable, err)
}
