// Package importer turns another SAML Service Provider's export of its
// connections into ssogate CreateConnection requests that keep what each
// customer's IdP already knows: the SP entity ID and ACS URL, the IdP's
// metadata (or its entity ID, SSO URL and certificate), the email domains
// and the attribute mapping. Every item lists what could not be carried
// over, so that a dry run shows the work left before anything is created.
//
// Formats (see docs/migrating.md for the source of each mapping):
//
//   - auth0: the Management API's connection objects (GET
//     /api/v2/connections), strategy samlp or pingfederate;
//   - workos: WorkOS Connection objects (GET /connections), plus the
//     fields its API does not return, added by hand;
//   - jackson (also polis): SAML Jackson / Ory Polis connection records
//     (GET /api/v1/sso);
//   - ssoready: SSOReady's ListOrganizations and ListSAMLConnections
//     responses in one JSON object;
//   - csv, json: ssogate's own plain columns.
package importer

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// Options carry what an export does not say.
type Options struct {
	// Auth0Tenant is the Auth0 tenant name: an Auth0 connection without
	// options.entityId has the SP entity ID urn:auth0:{tenant}:{name}.
	Auth0Tenant string
	// Auth0Domain is the host IdPs post to (the tenant's domain or its
	// custom domain): the ACS URL is https://{domain}/login/callback?connection={name}.
	Auth0Domain string
	// JacksonAudience and JacksonACSURL are a Jackson / Polis deployment's
	// SAML_AUDIENCE and ACS URL ({EXTERNAL_URL}/api/oauth/saml by default),
	// for connections without samlAudienceOverride / acsUrlOverride.
	JacksonAudience, JacksonACSURL string
	// ReturnURLs become allowed_return_urls of every connection that has
	// none from its source.
	ReturnURLs []string
	// State is given to connections whose IdP side is complete; default
	// ACTIVE (the IdP is live and unchanged). Incomplete ones are DRAFT.
	State ssogatev1.ConnectionState
}

// Item is one connection to create.
type Item struct {
	// Source names the record in the export (its id or name).
	Source     string
	Connection *ssogatev1.Connection
	// MetadataXML or MetadataURL, when set, give the IdP side
	// (CreateConnection parses or fetches it).
	MetadataXML, MetadataURL string
	// Lost says, one line each, what could not be carried over or needs
	// the operator's attention.
	Lost []string
}

// Skipped is a record of the export that is not a SAML connection.
type Skipped struct {
	Source, Why string
}

// Plan is what an import would create.
type Plan struct {
	Items   []Item
	Skipped []Skipped
}

// Request is the item's CreateConnection request.
func (it Item) Request() *ssogatev1.CreateConnectionRequest {
	return &ssogatev1.CreateConnectionRequest{Connection: it.Connection, IdpMetadataXml: it.MetadataXML, IdpMetadataUrl: it.MetadataURL}
}

// Formats are the names Parse takes.
func Formats() []string {
	return []string{"auth0", "workos", "jackson", "polis", "ssoready", "csv", "json"}
}

// Parse reads an export in the named format.
func Parse(format string, data []byte, o Options) (*Plan, error) {
	var (
		p   *Plan
		err error
	)
	switch strings.ToLower(format) {
	case "auth0":
		p, err = parseAuth0(data, o)
	case "workos":
		p, err = parseWorkOS(data)
	case "jackson", "polis", "ory-polis", "saml-jackson":
		p, err = parseJackson(data, o)
	case "ssoready":
		p, err = parseSSOReady(data)
	case "csv":
		p, err = parseCSV(data)
	case "json":
		p, err = parseJSON(data)
	default:
		return nil, fmt.Errorf("unknown format %q: want one of %s", format, strings.Join(Formats(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s export: %w", format, err)
	}
	p.finish(o)
	return p, nil
}

// finish gives every item a unique ID, the default return URLs and its
// state, and drops SP identities that several items share (ssogate tells
// connections apart by them).
func (p *Plan) finish(o Options) {
	state := o.State
	if state == ssogatev1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
		state = ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE
	}
	ids := map[string]int{}
	entities, acss := map[string][]int{}, map[string][]int{}
	for i := range p.Items {
		it := &p.Items[i]
		c := it.Connection
		base := c.Id
		if base == "" {
			base = "connection"
		}
		c.Id = base
		for n := 2; ids[c.Id] > 0; n++ {
			// The suffix must survive the 63-character bound, or a long
			// base would come back unchanged and the loop never end.
			suffix := fmt.Sprintf("-%d", n)
			c.Id = strings.TrimRight(base[:min(len(base), 63-len(suffix))], "-") + suffix
		}
		ids[c.Id]++
		if c.TenantId == "" {
			c.TenantId = c.Id
		}
		if len(c.AllowedReturnUrls) == 0 && len(o.ReturnURLs) > 0 {
			c.AllowedReturnUrls = slices.Clone(o.ReturnURLs)
		}
		if len(c.AllowedReturnUrls) == 0 {
			it.lost("%s", "no return URL: set allowed_return_urls (--return-url) before StartLogin can send users back to the product")
		}
		if sp := c.ServiceProvider; sp != nil {
			if sp.EntityId != "" {
				entities[sp.EntityId] = append(entities[sp.EntityId], i)
			}
			if sp.AcsUrl != "" {
				acss[sp.AcsUrl] = append(acss[sp.AcsUrl], i)
			}
		}
		if c.State == ssogatev1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
			if it.complete() {
				c.State = state
			} else {
				c.State = ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT
				it.lost("IdP side incomplete (needs metadata, or entity ID + SSO URL + certificate): created as DRAFT")
			}
		}
	}
	for _, shared := range []struct {
		what  string
		items map[string][]int
		clear func(*ssogatev1.ServiceProviderInfo)
	}{
		{"SP entity ID", entities, func(sp *ssogatev1.ServiceProviderInfo) { sp.EntityId = "" }},
		{"ACS URL", acss, func(sp *ssogatev1.ServiceProviderInfo) { sp.AcsUrl = "" }},
	} {
		for value, idx := range shared.items {
			if len(idx) < 2 {
				continue
			}
			for _, i := range idx {
				shared.clear(p.Items[i].Connection.ServiceProvider)
				p.Items[i].lost("%s %q is shared by %d connections of the export; ssogate tells connections apart by it, so this one gets ssogate's own (%s must change in the IdP)",
					shared.what, value, len(idx), shared.what)
			}
		}
	}
	for i := range p.Items {
		if sp := p.Items[i].Connection.ServiceProvider; sp != nil && sp.EntityId == "" && sp.AcsUrl == "" {
			p.Items[i].Connection.ServiceProvider = nil
		}
	}
}

// complete reports whether the IdP side is whole.
func (it *Item) complete() bool {
	if it.MetadataXML != "" || it.MetadataURL != "" {
		return true
	}
	idp := it.Connection.GetIdentityProvider()
	return idp.GetEntityId() != "" && (idp.GetSsoUrl() != "" || idp.GetSsoPostUrl() != "") && len(idp.GetCertificates()) > 0
}

func (it *Item) lost(format string, args ...any) {
	it.Lost = append(it.Lost, fmt.Sprintf(format, args...))
}

// newItem starts an item.
func newItem(source, id, tenant, display string) Item {
	return Item{Source: source, Connection: &ssogatev1.Connection{Id: slug(id), TenantId: tenant, DisplayName: display,
		IdentityProvider: &ssogatev1.IdentityProviderSettings{}}}
}

// setSP sets the SP identity to keep.
func (it *Item) setSP(entityID, acsURL string) {
	if entityID == "" && acsURL == "" {
		return
	}
	it.Connection.ServiceProvider = &ssogatev1.ServiceProviderInfo{EntityId: strings.TrimSpace(entityID), AcsUrl: strings.TrimSpace(acsURL)}
}

// addCertificate pins an IdP signing certificate given as PEM, base64 of
// PEM or base64 DER.
func (it *Item) addCertificate(field, raw string) {
	if strings.TrimSpace(raw) == "" {
		return
	}
	p, err := certificatePEM(raw)
	if err != nil {
		it.lost("%s: %v; add the IdP's signing certificate by hand", field, err)
		return
	}
	it.Connection.IdentityProvider.Certificates = append(it.Connection.IdentityProvider.Certificates, &ssogatev1.Certificate{Pem: p})
}

var slugJunk = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a connection ID, [a-z0-9-]{1,63}, of a source's name.
func slug(s string) string {
	return trimID(strings.Trim(slugJunk.ReplaceAllString(strings.ToLower(s), "-"), "-"))
}

func trimID(s string) string {
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// certificatePEM normalises a certificate to PEM.
func certificatePEM(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "-----BEGIN") {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return "", errors.New("neither PEM nor base64")
		}
		if strings.Contains(string(der), "-----BEGIN") {
			s = strings.TrimSpace(string(der))
		} else {
			s = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		}
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("not a PEM certificate")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", fmt.Errorf("certificate does not parse: %w", err)
	}
	return string(pem.EncodeToMemory(block)), nil
}

// records reads a JSON array, or the array under one of keys of an
// object, or a single object.
func records(data []byte, keys ...string) ([]map[string]any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case map[string]any:
		found := false
		for _, k := range keys {
			if l, ok := v[k].([]any); ok {
				list, found = l, true
				break
			}
		}
		if !found {
			list = []any{v}
		}
	default:
		return nil, errors.New("want a JSON array or object")
	}
	out := make([]map[string]any, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %d is not an object", i)
		}
		out = append(out, m)
	}
	return out, nil
}

// str reads the first of keys that holds a string (also nested: "a.b").
func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		cur := any(m)
		for _, part := range strings.Split(k, ".") {
			mm, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = mm[part]
		}
		if s, ok := cur.(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// obj reads a nested object.
func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// strs reads a string or a list of strings.
func strs(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func boolean(m map[string]any, key string) bool {
	b, _ := m[key].(bool)
	return b
}
