package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store"
)

// A connection migrated from another SP keeps the SP identity its IdP
// knows: service_provider.entity_id and service_provider.acs_url override
// the derived {external_url}/saml/{id} and .../acs. The store holds each
// override in a unique column (the entity ID as given, the ACS URL as its
// acsKey), so two connections cannot claim one, also not when created at
// once on two replicas. ssogate serves an overriding ACS URL at its path
// on the public listener (see publicRouter).

// routeACSLookup is the rate-limit route of the lookup that finds the
// connection of an overriding ACS path (per client; the ACS route itself
// then applies its own limits).
const routeACSLookup = "acs_lookup"

// overridePattern is the route label of a request served at a
// connection's own ACS path: one label for them all, so metrics stay
// bounded and the paths are not logged as routes.
const overridePattern = "POST {service_provider.acs_url}"

// reservedRoots are the first path segments ssogate's own routes use on
// the public listener (and may use later), /v1/ aside (see reservedPath);
// an overriding ACS path must not shadow them.
var reservedRoots = map[string]bool{
	"saml": true, "setup": true, "scim": true, "healthz": true, "readyz": true, ".well-known": true,
	"metrics": true, "oauth2": true, "dev": true, "demo": true, "debug": true,
}

// reservedPath reports whether p is, or is under, one of ssogate's own
// routes on the public listener (or is the root). /v1/ (the REST API) is
// there only without operator_addr: with it, an old SP's ACS under /v1/
// (SSOReady's /v1/saml/{id}/acs) shadows nothing and may be served.
func (s *Server) reservedPath(p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	first = strings.ToLower(first)
	if first == "v1" {
		return s.cfg.OperatorAddr == ""
	}
	return first == "" || reservedRoots[first]
}

// hostKey is a Host header or URL host in the form the ACS key uses:
// lower case, without the scheme's default port.
func hostKey(h string) string {
	h = strings.ToLower(h)
	for _, port := range []string{":443", ":80"} {
		h = strings.TrimSuffix(h, port)
	}
	return h
}

// canonicalQuery orders a query string's parameters, so that an IdP that
// reorders them still reaches the same ACS.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	v, err := url.ParseQuery(raw)
	if err != nil || len(v) == 0 {
		return "?" + raw
	}
	return "?" + v.Encode()
}

// acsKey is the store's key of an overriding ACS URL: host, path and the
// ordered query (Auth0's ACS URLs tell connections apart by the query,
// /login/callback?connection=acme).
func acsKey(u *url.URL) string {
	return hostKey(u.Host) + u.EscapedPath() + canonicalQuery(u.RawQuery)
}

// requestACSKey is acsKey of the URL a request was posted to.
func requestACSKey(r *http.Request) string {
	return hostKey(r.Host) + r.URL.EscapedPath() + canonicalQuery(r.URL.RawQuery)
}

// derivedEntityID is the entity ID of a connection without an override.
func derivedEntityID(externalURL, id string) string { return externalURL + "/saml/" + id }

// normalizeSPIdentity keeps of service_provider only its inputs (entity_id,
// acs_url), trimmed, and drops a value equal to the derived one: a
// connection read with GetConnection and sent back unchanged keeps
// deriving its identity.
func normalizeSPIdentity(c *ssogatev1.Connection, externalURL string) {
	sp := c.GetServiceProvider()
	entity, acs := strings.TrimSpace(sp.GetEntityId()), strings.TrimSpace(sp.GetAcsUrl())
	derived := derivedEntityID(externalURL, c.Id)
	if entity == derived {
		entity = ""
	}
	if acs == derived+"/acs" {
		acs = ""
	}
	c.ServiceProvider = nil
	if entity != "" || acs != "" {
		c.ServiceProvider = &ssogatev1.ServiceProviderInfo{EntityId: entity, AcsUrl: acs}
	}
}

// servesHost reports whether host (a URL host or Host header) is one the
// public listener answers for: external_url's host or one of public_hosts.
func (s *Server) servesHost(host string) bool {
	h := hostKey(host)
	if u, err := url.Parse(s.cfg.ExternalURL); err == nil && hostKey(u.Host) == h {
		return true
	}
	for _, p := range s.cfg.PublicHosts {
		if hostKey(p) == h {
			return true
		}
	}
	return false
}

// checkSPIdentity validates a normalized connection's SP overrides and
// returns their store keys.
func (s *Server) checkSPIdentity(c *ssogatev1.Connection) (entityID, key string, _ error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &fieldError{field, fmt.Sprintf(format, args...)})
	}
	entity, acs := c.GetServiceProvider().GetEntityId(), c.GetServiceProvider().GetAcsUrl()
	if entity != "" {
		// SAML's entityID is an xs:anyURI; IdPs accept plain names too
		// (Oracle Access Manager's "JSAuth"), which a migration must keep.
		_, err := url.Parse(entity)
		switch {
		case err != nil:
			bad("service_provider.entity_id", "%q is not a URI reference (e.g. https://app.example.com/saml or urn:auth0:tenant:acme)", entity)
		case len(entity) > 1024:
			bad("service_provider.entity_id", "is %d characters; SAML allows at most 1024", len(entity))
		case strings.ContainsAny(entity, " \t\r\n"):
			bad("service_provider.entity_id", "%q contains white space", entity)
		case strings.HasPrefix(entity, s.cfg.ExternalURL+"/saml/"):
			bad("service_provider.entity_id", "%q is in the range ssogate derives entity IDs from (%s/saml/{connection_id}); leave it empty to derive this connection's", entity, s.cfg.ExternalURL)
		}
	}
	if acs != "" {
		const field = "service_provider.acs_url"
		u, err := url.Parse(acs)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			bad(field, "%q is not an absolute https URL", acs)
		case u.Scheme == "http" && !loopbackOnly(strings.ToLower(u.Hostname())):
			bad(field, "%q must use https (plain http is allowed only on loopback)", acs)
		case u.User != nil || u.Fragment != "":
			bad(field, "%q must not carry user info or a fragment", acs)
		case !s.servesHost(u.Host):
			bad(field, "%q is on host %q, which ssogate does not answer for: add %q to the service's public_hosts (SSOGATE_PUBLIC_HOSTS) and point it at ssogate, or use external_url's host", acs, u.Host, strings.ToLower(u.Host))
		case s.reservedPath(u.Path):
			bad(field, "%q: the path %q is one of ssogate's own routes (/saml/, /setup/, /scim/, /.well-known/, /healthz, /readyz, /metrics, /oauth2/, and /v1/ unless operator_addr is set) or the root; choose another path", acs, u.EscapedPath())
		case path.Clean(u.Path) != strings.TrimSuffix(u.Path, "/") || strings.Contains(u.Path, "//"):
			bad(field, "%q: the path is not in canonical form (no //, . or .. segments)", acs)
		default:
			key = acsKey(u)
		}
	}
	if len(errs) > 0 {
		return "", "", errors.Join(errs...)
	}
	return entity, key, nil
}

// spIdentityTaken explains a store conflict on an SP override: which value
// another connection holds. nil when neither is taken by another.
func (s *Server) spIdentityTaken(ctx context.Context, c *ssogatev1.Connection, entityID, key string) error {
	type claim struct {
		field, value string
		owner        func() (store.Connection, error)
	}
	for _, cl := range []claim{
		{"service_provider.entity_id", entityID, func() (store.Connection, error) { return s.store.ConnectionBySPEntityID(ctx, entityID) }},
		{"service_provider.acs_url", c.GetServiceProvider().GetAcsUrl(), func() (store.Connection, error) { return s.store.ConnectionByACSKey(ctx, key) }},
	} {
		if cl.value == "" {
			continue
		}
		owner, err := cl.owner()
		if err != nil || owner.ID == c.Id {
			continue
		}
		msg := fmt.Sprintf("%s %q is already used by connection %q; connection %q needs another (each IdP app must reach one connection)",
			cl.field, cl.value, owner.ID, c.Id)
		st, derr := status.New(codes.AlreadyExists, msg).WithDetails(
			errorInfo(reasonConnectionInvalid, "connection_id", c.Id, "field", "connection."+cl.field, "owner_connection_id", owner.ID),
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "connection." + cl.field, Description: msg, Reason: reasonConnectionInvalid}}})
		if derr != nil {
			return status.Error(codes.AlreadyExists, msg)
		}
		return st.Err()
	}
	return nil
}

// byACS finds the connection whose overriding ACS URL is key (acsKey). It
// reads the store every time, as get does: a connection created a moment
// ago on another replica is served at once.
func (r *registry) byACS(ctx context.Context, key string) (*conn, error) {
	return r.load(ctx, fmt.Sprintf("connection with ACS %q", key), func() (store.Connection, error) { return r.s.store.ConnectionByACSKey(ctx, key) })
}

// publicRouter is the public listener's router plus connections' own ACS
// paths: a POST that none of ssogate's routes matches, on a host ssogate
// answers for, goes to the connection whose acs_url it was posted to, if
// any (404 otherwise, as before).
type publicRouter struct {
	mux    *http.ServeMux
	s      *Server
	lookup http.Handler // rate-limited per client, before the store is read
	acs    http.Handler // the ACS route's own limits and gate, then handleACS
}

func (s *Server) newPublicRouter(mux *http.ServeMux) *publicRouter {
	p := &publicRouter{mux: mux, s: s, acs: s.validating(routeACS, s.handleACS)}
	p.lookup = s.limiter.Middleware(routeACSLookup, nil, http.HandlerFunc(p.serveOverride))
	return p
}

func (p *publicRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && !p.s.reservedPath(r.URL.Path) && p.s.servesHost(r.Host) {
		if _, pattern := p.mux.Handler(r); pattern == "" {
			r.Pattern = overridePattern
			p.lookup.ServeHTTP(w, r)
			return
		}
	}
	p.mux.ServeHTTP(w, r)
}

// serveOverride serves a POST to a connection's own ACS URL: the same ACS
// as /saml/{id}/acs, behind the same limits and gate.
func (p *publicRouter) serveOverride(w http.ResponseWriter, r *http.Request) {
	s := p.s
	c, err := s.registry.byACS(r.Context(), requestACSKey(r))
	if errors.Is(err, errConnectionNotFound) {
		r.Pattern = ""
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "ACS lookup failed", "error", err)
		writeText(w, http.StatusServiceUnavailable, "This sign-in address cannot be served right now. Please try again.\n")
		return
	}
	r.SetPathValue("connection_id", c.msg.Id)
	p.acs.ServeHTTP(w, r)
}
