package importer

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/token"
)

// mapAttribute adds claim ← names to the connection's attribute mapping,
// unless the claim is one ssogate sets itself.
func (it *Item) mapAttribute(claim string, names []string) {
	claim = strings.TrimSpace(claim)
	if claim == "" || len(names) == 0 {
		return
	}
	switch claim {
	case saml.ClaimEmail, saml.ClaimName, saml.ClaimGivenName, saml.ClaimFamilyName, saml.ClaimGroups:
	default:
		if token.ReservedClaim(claim) {
			it.lost("attribute mapping of %q (from %s) is not carried over: ssogate sets that token claim itself", claim, strings.Join(names, ", "))
			return
		}
	}
	c := it.Connection
	if c.AttributeMapping == nil {
		c.AttributeMapping = map[string]*ssogatev1.AttributeNames{}
	}
	c.AttributeMapping[claim] = &ssogatev1.AttributeNames{Names: names}
}

// --- Auth0 ---------------------------------------------------------------

// auth0Claims are the Auth0 normalized-profile fields that are ssogate
// claims of another name.
var auth0Claims = map[string]string{"family_name": saml.ClaimFamilyName, "given_name": saml.ClaimGivenName}

func parseAuth0(data []byte, o Options) (*Plan, error) {
	recs, err := records(data, "connections")
	if err != nil {
		return nil, err
	}
	p := &Plan{}
	for _, r := range recs {
		name := str(r, "name")
		strategy := str(r, "strategy")
		if strategy != "samlp" && strategy != "pingfederate" {
			p.Skipped = append(p.Skipped, Skipped{Source: cmp.Or(name, str(r, "id")), Why: fmt.Sprintf("strategy %q is not a SAML connection", strategy)})
			continue
		}
		opt := obj(r, "options")
		it := newItem(name, name, name, str(r, "display_name"))
		c, idp := it.Connection, it.Connection.IdentityProvider
		switch {
		case str(opt, "metadataXml") != "":
			it.MetadataXML = str(opt, "metadataXml")
		case str(opt, "metadataUrl") != "":
			it.MetadataURL = str(opt, "metadataUrl")
		default:
			it.addCertificate("options.signingCert", str(opt, "signingCert"))
			if len(idp.Certificates) == 0 {
				it.addCertificate("options.cert", str(opt, "cert"))
			}
			if len(idp.Certificates) == 0 {
				it.lost("no IdP signing certificate in options (signingCert, cert); options.thumbprints cannot verify a signature: add the certificate")
			}
			if str(opt, "protocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" {
				idp.SsoPostUrl = str(opt, "signInEndpoint")
			} else {
				idp.SsoUrl = str(opt, "signInEndpoint")
			}
			if so := str(opt, "signOutEndpoint"); so != "" && !boolean(opt, "disableSignout") {
				idp.SloUrl = so
			}
			it.lost("the IdP's entity ID (Issuer) is not in Auth0's connection options: set identity_provider.entity_id (or give the IdP's metadata), then activate")
		}
		c.SignRequests = boolean(opt, "signSAMLRequest")
		if strings.Contains(str(opt, "signatureAlgorithm"), "sha1") {
			c.AllowSha1 = true
			it.lost("options.signatureAlgorithm is RSA-SHA1: allow_sha1 is on; move the IdP to SHA-256")
		}
		if ip := obj(opt, "idpinitiated"); boolean(ip, "enabled") {
			c.AllowIdpInitiated = true
			it.lost("IdP-initiated login was on (client %q): set default_return_url, where such logins land in the product", str(ip, "client_id"))
		}
		for _, d := range append(strs(opt["domain_aliases"]), strs(opt["tenant_domain"])...) {
			if !slices.Contains(c.EmailDomains, strings.ToLower(d)) {
				c.EmailDomains = append(c.EmailDomains, strings.ToLower(d))
			}
		}
		fields := obj(opt, "fieldsMap")
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			claim := k
			if alt, ok := auth0Claims[k]; ok {
				claim = alt
			}
			it.mapAttribute(claim, strs(fields[k]))
		}
		if u := str(opt, "user_id_attribute"); u != "" {
			it.lost("options.user_id_attribute %q is not carried over: ssogate's subject is derived from the NameID", u)
		}
		entity := str(opt, "entityId")
		if entity == "" && o.Auth0Tenant != "" {
			entity = "urn:auth0:" + o.Auth0Tenant + ":" + name
		}
		acs := ""
		if o.Auth0Domain != "" {
			acs = "https://" + o.Auth0Domain + "/login/callback?connection=" + name
		}
		if entity == "" {
			it.lost("SP entity ID unknown: the connection has no options.entityId; give --auth0-tenant to keep urn:auth0:{tenant}:%s", name)
		}
		if acs == "" {
			it.lost("ACS URL unknown: give --auth0-domain (the tenant's domain or custom domain) to keep https://{domain}/login/callback?connection=%s", name)
		}
		it.setSP(entity, acs)
		if len(strs(opt["decryptionKey"])) > 0 || obj(opt, "decryptionKey") != nil || obj(opt, "signing_key") != nil {
			it.lost("Auth0's own SP keys (decryptionKey, signing_key) are not exported: an IdP that encrypts to Auth0's certificate or checks its request signatures needs ssogate's")
		}
		it.lost("Auth0 Rules and Actions are not part of the connection: whatever they added to the profile is not carried over")
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// --- WorkOS ----------------------------------------------------------------

func parseWorkOS(data []byte) (*Plan, error) {
	recs, err := records(data, "data", "connections")
	if err != nil {
		return nil, err
	}
	p := &Plan{}
	for _, r := range recs {
		name, id := str(r, "name"), str(r, "id")
		typ := str(r, "connection_type", "type", "connectionType")
		if !strings.HasSuffix(typ, "SAML") {
			p.Skipped = append(p.Skipped, Skipped{Source: cmp.Or(name, id), Why: fmt.Sprintf("connection_type %q is not SAML", typ)})
			continue
		}
		it := newItem(cmp.Or(id, name), cmp.Or(name, id), str(r, "organization_id", "organizationId"), name)
		c, idp := it.Connection, it.Connection.IdentityProvider
		domains, _ := r["domains"].([]any)
		for _, d := range domains {
			if dm, ok := d.(map[string]any); ok && str(dm, "domain") != "" {
				c.EmailDomains = append(c.EmailDomains, strings.ToLower(str(dm, "domain")))
			}
		}
		switch str(r, "state") {
		case "inactive":
			c.State = ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED
		case "draft", "validating":
			c.State = ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT
		}
		// Not in WorkOS's Connection object: added to the export by hand.
		it.MetadataXML = str(r, "idp_metadata_xml")
		it.MetadataURL = str(r, "idp_metadata_url", "saml_options.idp_metadata_url")
		if it.MetadataXML == "" && it.MetadataURL == "" {
			idp.EntityId, idp.SsoUrl = str(r, "idp_entity_id"), str(r, "idp_sso_url")
			if cert := str(r, "options.signing_cert"); cert != "" {
				it.addCertificate("options.signing_cert", cert)
				it.lost("options.signing_cert is taken as the IdP's signing certificate; WorkOS's public docs do not say whose it is: compare it with the IdP's metadata")
			}
			if idp.EntityId == "" || idp.SsoUrl == "" {
				it.lost("the IdP's metadata, entity ID and SSO URL are not in WorkOS's API: add idp_metadata_url (or idp_metadata_xml, or idp_entity_id and idp_sso_url) to the record")
			}
		}
		entity, acs := str(r, "sp_entity_id"), str(r, "acs_url")
		if entity == "" || acs == "" {
			it.lost("WorkOS's API does not return the SP entity ID and ACS URL it manages: copy them from the WorkOS dashboard (connection settings) into sp_entity_id and acs_url, else the IdP must be given ssogate's")
		}
		it.setSP(entity, acs)
		it.lost("WorkOS's attribute mapping is not in its API: check email, name and groups arrive under names ssogate reads (attribute_mapping)")
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// --- SAML Jackson / Ory Polis ------------------------------------------------

func parseJackson(data []byte, o Options) (*Plan, error) {
	recs, err := records(data, "connections", "data")
	if err != nil {
		return nil, err
	}
	p := &Plan{}
	for _, r := range recs {
		tenant, product := str(r, "tenant"), str(r, "product")
		source := cmp.Or(str(r, "name"), tenant+"/"+product)
		md := obj(r, "idpMetadata")
		if md == nil {
			p.Skipped = append(p.Skipped, Skipped{Source: source, Why: "no idpMetadata: not a SAML connection (OIDC?)"})
			continue
		}
		id := str(r, "name")
		if id == "" {
			id = tenant + "-" + product
		}
		it := newItem(source, id, tenant, cmp.Or(str(r, "name"), str(r, "label")))
		c, idp := it.Connection, it.Connection.IdentityProvider
		if u := str(r, "metadataUrl"); u != "" {
			it.MetadataURL = u
		} else {
			idp.EntityId = str(md, "entityID")
			idp.SsoUrl, idp.SsoPostUrl = str(md, "sso.redirectUrl"), str(md, "sso.postUrl")
			idp.SloUrl, idp.SloPostUrl = str(md, "slo.redirectUrl"), str(md, "slo.postUrl")
			it.addCertificate("idpMetadata.publicKey", str(md, "publicKey"))
			if len(idp.Certificates) == 0 {
				it.lost("idpMetadata has no publicKey (only a thumbprint, which cannot verify a signature): add the IdP's certificate or metadata")
			}
		}
		c.AllowedReturnUrls = strs(r["redirectUrl"])
		c.DefaultReturnUrl = str(r, "defaultRedirectUrl")
		if len(c.AllowedReturnUrls) > 0 {
			it.lost("redirectUrl and defaultRedirectUrl (OAuth redirect URIs of your app) became allowed_return_urls and default_return_url: check they are where logins should return")
		}
		c.NameIdFormat = str(r, "identifierFormat")
		if f, _ := r["forceAuthn"].(bool); f || str(r, "forceAuthn") == "true" {
			it.lost("forceAuthn is not carried over: ssogate does not ask the IdP to re-authenticate")
		}
		if d, _ := r["deactivated"].(bool); d {
			c.State = ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED
		}
		entity := cmp.Or(str(r, "samlAudienceOverride"), o.JacksonAudience)
		acs := cmp.Or(str(r, "acsUrlOverride"), o.JacksonACSURL)
		if entity == "" {
			it.lost("SP entity ID unknown: no samlAudienceOverride; give --jackson-audience (the deployment's SAML_AUDIENCE)")
		}
		if acs == "" {
			it.lost("ACS URL unknown: no acsUrlOverride; give --jackson-acs-url (the deployment's ACS_URL, by default {EXTERNAL_URL}/api/oauth/saml)")
		}
		it.setSP(entity, acs)
		it.lost("Jackson has no email domains per connection (tenant %q, product %q): set email_domains for discovery", tenant, product)
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// --- SSOReady ----------------------------------------------------------------

func parseSSOReady(data []byte) (*Plan, error) {
	conns, err := records(data, "samlConnections", "saml_connections")
	if err != nil {
		return nil, err
	}
	orgList, _ := records(data, "organizations")
	orgs := map[string]map[string]any{}
	for _, o := range orgList {
		if id := str(o, "id"); id != "" {
			orgs[id] = o
		}
	}
	p := &Plan{}
	for _, r := range conns {
		connID := str(r, "id")
		if connID == "" {
			continue // an organization, when the file holds only those
		}
		orgID := str(r, "organizationId", "organization_id")
		org := orgs[orgID]
		name := cmp.Or(str(org, "externalId", "external_id"), cmp.Or(str(org, "displayName", "display_name"), connID))
		it := newItem(connID, name, cmp.Or(str(org, "externalId", "external_id"), orgID), str(org, "displayName", "display_name"))
		c, idp := it.Connection, it.Connection.IdentityProvider
		if org == nil {
			it.lost("organization %q is not in the file: no email domains (add the ListOrganizations response under \"organizations\")", orgID)
		}
		for _, d := range strs(org["domains"]) {
			c.EmailDomains = append(c.EmailDomains, strings.ToLower(d))
		}
		idp.EntityId = str(r, "idpEntityId", "idp_entity_id")
		idp.SsoUrl = str(r, "idpRedirectUrl", "idp_redirect_url")
		it.addCertificate("idpCertificate", str(r, "idpCertificate", "idp_certificate"))
		acs := str(r, "spAcsUrl", "sp_acs_url")
		it.setSP(str(r, "spEntityId", "sp_entity_id"), acs)
		if strings.Contains(acs, "/v1/") {
			it.lost("the ACS path is under /v1/: ssogate serves it only with operator_addr set (the REST API then leaves the public listener)")
		}
		it.lost("SSOReady's ACS host must reach ssogate: add it to public_hosts and point its DNS (a custom auth domain) at ssogate")
		p.Items = append(p.Items, it)
	}
	return p, nil
}
