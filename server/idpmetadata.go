package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/netguard"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
)

const (
	maxMetadataBytes    = 5 << 20
	metadataTimeout     = 15 * time.Second
	auditMetadataFailed = "metadata.refresh_failed"
	auditMetadataNew    = "metadata.refreshed"
	auditCertExpiring   = "certificate.expiring"
	auditCertRotated    = "certificate.rotated"
)

// fetchIdPMetadata downloads and parses IdP metadata through the guarded
// client (netguard): https only, public addresses only unless
// allow_private_fetch, bounded in time, redirects and size. Its errors
// never echo what the URL answered unless that is SAML metadata, and never
// tell an open port from a closed one.
func (s *Server) fetchIdPMetadata(ctx context.Context, rawURL, entityID string) (saml.IdentityProvider, error) {
	if err := checkEndpoint(rawURL, s.allowHTTP); err != nil {
		return saml.IdentityProvider{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	body, err := netguard.Fetch(ctx, s.fetchClient(), rawURL, "application/samlmetadata+xml, application/xml, text/xml", maxMetadataBytes)
	if err != nil {
		s.log.DebugContext(ctx, "metadata fetch failed", "url", redactURL(rawURL), "detail", errors.Unwrap(err))
		return saml.IdentityProvider{}, fmt.Errorf("metadata could not be fetched: %w", err)
	}
	if !looksLikeMetadata(body) {
		return saml.IdentityProvider{}, errors.New("metadata could not be fetched: the answer is not SAML 2.0 metadata (an EntityDescriptor or EntitiesDescriptor)")
	}
	md, err := saml.ParseIdPMetadataAt(body, entityID, s.now())
	if err != nil {
		return saml.IdentityProvider{}, err
	}
	return md, nil
}

// fetchClient is the client for outbound fetches: the test's when one was
// given, else a guarded one.
func (s *Server) fetchClient() *http.Client {
	if s.httpClient != nil {
		return s.httpClient
	}
	return netguard.NewClient(netguard.Options{AllowPrivate: s.cfg.AllowPrivateFetch, Timeout: metadataTimeout, TLSConfig: s.fetchTLS})
}

// looksLikeMetadata reports whether the document's root element is SAML
// metadata. Anything else is refused without naming what it was: a fetch
// must not become a way to read other servers' documents.
func looksLikeMetadata(body []byte) bool {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Space == "urn:oasis:names:tc:SAML:2.0:metadata" &&
				(se.Name.Local == "EntityDescriptor" || se.Name.Local == "EntitiesDescriptor")
		}
	}
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the metadata URL"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// refreshMetadata refetches one connection's metadata and stores what
// changed. A failure keeps the last good metadata, records the error on the
// connection, and raises a metric and an audit event.
func (s *Server) refreshMetadata(ctx context.Context, id string) (*ssogatev1.Connection, error) {
	cur, err := s.registry.get(ctx, id)
	if err != nil {
		return nil, err
	}
	mdURL := cur.msg.GetIdentityProvider().GetMetadataUrl()
	if mdURL == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "connection %q has no metadata_url", id)
	}
	next := proto.Clone(cur.msg).(*ssogatev1.Connection)
	md, ferr := s.fetchIdPMetadata(ctx, mdURL, cur.msg.IdentityProvider.EntityId)
	var events []auditEvent
	if ferr != nil {
		events = append(events, auditEvent{Type: auditMetadataFailed, ConnectionID: id, TenantID: cur.msg.TenantId,
			Message: ferr.Error() + "; the last good metadata stays in use", Detail: map[string]any{"metadata_url": redactURL(mdURL)}})
		next.IdentityProvider.MetadataRefreshError = ferr.Error()
	} else {
		applyIdPMetadata(next, md)
		next.IdentityProvider.MetadataRefreshError = ""
		next.IdentityProvider.MetadataRefreshTime = timestamppb.New(s.now())
		events = append(events, auditEvent{Type: auditMetadataNew, ConnectionID: id, TenantID: cur.msg.TenantId,
			Detail: map[string]any{"certificates": len(md.Certificates)}})
		if old, fresh := certFingerprints(cur.msg), certFingerprints(next); !slices.Equal(old, fresh) {
			events = append(events, auditEvent{Type: auditCertRotated, ConnectionID: id, TenantID: cur.msg.TenantId,
				Message: "the IdP metadata now lists other signing certificates",
				Detail:  map[string]any{"old_fingerprints": old, "new_fingerprints": fresh}})
		}
	}
	stored, err := s.saveConnection(s.withAudit(ctx, events...), next, saveOptions{prev: cur.msg, version: cur.version})
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		s.metrics.metadataRefresh.WithLabelValues("failure").Inc()
		return stored, status.Errorf(codes.Unavailable, "metadata refresh failed, last good metadata kept: %v", ferr)
	}
	s.metrics.metadataRefresh.WithLabelValues("success").Inc()
	return stored, nil
}

// certFingerprints lists the SHA-256 fingerprints of a connection's pinned
// IdP certificates, sorted.
func certFingerprints(c *ssogatev1.Connection) []string {
	var out []string
	for _, pc := range c.GetIdentityProvider().GetCertificates() {
		if cert, err := parseCertificatePEM(pc.Pem); err == nil {
			out = append(out, fingerprint(cert.Raw))
		}
	}
	slices.Sort(out)
	return out
}

func (cs connectionService) RefreshIdentityProviderMetadata(ctx context.Context, req *ssogatev1.RefreshIdentityProviderMetadataRequest) (*ssogatev1.RefreshIdentityProviderMetadataResponse, error) {
	c, err := cs.s.refreshMetadata(ctx, req.ConnectionId)
	if errors.Is(err, errConnectionNotFound) {
		return nil, status.Errorf(codes.NotFound, "no connection %q", req.ConnectionId)
	}
	if err != nil {
		return nil, err
	}
	return &ssogatev1.RefreshIdentityProviderMetadataResponse{Connection: c}, nil
}

// maintainConnections refreshes metadata URLs and watches certificate
// expiry, every period, until ctx ends.
func (s *Server) maintainConnections(ctx context.Context, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		s.connectionSweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Server) connectionSweep(ctx context.Context) {
	token := ""
	live := map[string]bool{}
	spKeys, spErr := s.listSPKeys(ctx)
	if spErr != nil && ctx.Err() == nil {
		s.log.Warn("connection maintenance: SP keys", "error", spErr)
	}
	for {
		rows, next, err := s.store.ListConnections(ctx, store.ListConnectionsQuery{PageSize: 200, PageToken: token})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("connection maintenance: list", "error", err)
			}
			return
		}
		for _, row := range rows {
			live[row.ID] = true
			c, err := unmarshalConnection(row.Config)
			if err != nil {
				continue
			}
			// Every replica runs this sweep; one that finds the metadata
			// freshly refreshed by another leaves it (no duplicate fetch
			// and racing write).
			last := c.GetIdentityProvider().GetMetadataRefreshTime()
			fresh := last != nil && s.now().Sub(last.AsTime()) < metadataRefreshEvery/2
			if c.GetIdentityProvider().GetMetadataUrl() != "" && !fresh {
				if _, err := s.refreshMetadata(ctx, c.Id); err != nil {
					s.log.Warn("metadata refresh", "connection_id", c.Id, "error", err)
				}
			}
			s.checkCertificates(ctx, c)
			if spErr == nil {
				s.checkSPCertificates(ctx, c, spKeys[spKeyOwner(c)])
			}
		}
		if next == "" {
			s.metrics.keepConnections(live)
			return
		}
		token = next
	}
}

// certExpiryNotices are the days before expiry at which a certificate is
// announced, once each.
var certExpiryNotices = []int{1, 7, 30}

// checkCertificates exports each pinned certificate's remaining lifetime
// and announces it at 30, 7 and 1 days before expiry, once each across
// every replica and restart: the event id is derived from the connection,
// the certificate and the notice, and the log refuses a second one.
func (s *Server) checkCertificates(ctx context.Context, c *ssogatev1.Connection) {
	now := s.now()
	left := map[string]float64{}
	defer func() { s.metrics.setCertExpiry(c.Id, left) }()
	for _, pc := range c.GetIdentityProvider().GetCertificates() {
		cert, err := parseCertificatePEM(pc.Pem)
		if err != nil {
			continue
		}
		remaining := cert.NotAfter.Sub(now)
		fp := fingerprint(cert.Raw)
		left[fp] = remaining.Seconds()
		if remaining <= 0 {
			continue
		}
		i := slices.IndexFunc(certExpiryNotices, func(days int) bool { return remaining <= time.Duration(days)*24*time.Hour })
		if i < 0 {
			continue
		}
		days := certExpiryNotices[i]
		key := fmt.Sprintf("%s/%s/%d", c.Id, fp, days)
		if !s.warnOnce(key) {
			continue
		}
		sum := sha256.Sum256([]byte(key))
		e := s.auditRecord(ctx, auditEvent{Type: auditCertExpiring, ConnectionID: c.Id, TenantID: c.TenantId,
			Message: fmt.Sprintf("IdP signing certificate %q expires %s (in %s); add its successor to the IdP metadata",
				cert.Subject.String(), cert.NotAfter.UTC().Format(time.RFC3339), remaining.Round(time.Hour)),
			Detail: map[string]any{"fingerprint": fp, "not_after": cert.NotAfter.UTC().Format(time.RFC3339), "days": days}})
		e.ID = "cert-expiring-" + hex.EncodeToString(sum[:16])
		if err := s.store.AppendAudit(ctx, e); err != nil && !errors.Is(err, store.ErrConflict) {
			s.log.ErrorContext(ctx, "audit append failed", "type", e.Type, "error", err)
		}
	}
}

// warnOnce reports whether key is new to this process, and records it, so
// that the sweep does not knock on the log for a notice already given.
func (s *Server) warnOnce(key string) bool {
	s.warnedMu.Lock()
	defer s.warnedMu.Unlock()
	if s.warned == nil {
		s.warned = map[string]time.Time{}
	}
	if _, ok := s.warned[key]; ok {
		return false
	}
	s.warned[key] = s.now()
	return true
}
