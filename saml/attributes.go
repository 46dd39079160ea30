package saml

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Claim names that attributes map into. Reserved token claims (sub, iss,
// exp, tenant, roles, ...) are never produced by a mapping.
const (
	ClaimEmail      = "email"
	ClaimName       = "name"
	ClaimGivenName  = "given_name"
	ClaimFamilyName = "family_name"
	ClaimGroups     = "groups"
)

// AttributeMapping maps a claim name to the IdP attribute names that may
// carry it, tried in order. A nil or missing entry uses the defaults for
// the common IdPs.
type AttributeMapping map[string][]string

// MappedAttributes are the claims an Identity carries after mapping.
type MappedAttributes struct {
	Email      string
	Name       string
	GivenName  string
	FamilyName string
	Groups     []string
	// GroupsOverage: the IdP sent a link to the user's groups rather than
	// the groups, because there are too many for a token. Entra ID does
	// this beyond 150 groups in a SAML token: no groups attribute, and an
	// attribute EntraGroupsLinkAttribute holding a Graph URL. The OIDC form
	// of the same (_claim_names naming "groups", with _claim_sources) is
	// recognised too when an IdP passes it through as attributes. Groups
	// then holds only what was sent, usually nothing.
	GroupsOverage bool
	// Extra holds mapped claims beyond the standard ones, by claim name.
	Extra map[string][]string
}

// EntraGroupsLinkAttribute is the attribute Entra ID sends instead of the
// groups when a user has more than it puts in a SAML token (150).
const EntraGroupsLinkAttribute = "http://schemas.microsoft.com/claims/groups.link"

// groupsOverage reports whether raw says the groups were left out for
// being too many: Entra ID's groups.link attribute, or the OIDC
// distributed-claims form (_claim_names naming groups).
func groupsOverage(raw map[string][]string) bool {
	for name, vs := range raw {
		if strings.EqualFold(name, EntraGroupsLinkAttribute) && len(cleanValues(vs)) > 0 {
			return true
		}
		if name == "_claim_names" {
			for _, v := range vs {
				if strings.Contains(v, `"groups"`) || strings.TrimSpace(v) == "groups" {
					return true
				}
			}
		}
	}
	return false
}

// ReservedClaims are token claims ssogate sets itself; an AttributeMapping
// can never produce them.
var ReservedClaims = []string{
	"sub", "iss", "aud", "exp", "iat", "nbf", "jti", "sid", "tenant", "conn", "roles", "auth_time", "acr",
}

// maxGroups bounds the groups kept from one assertion; Entra ID sends at
// most 150 in a token, other IdPs a few thousand at worst.
const maxGroups = 5000

// DefaultAttributeMapping is the mapping used for a claim the connection
// does not override: attribute names of Entra ID / ADFS (claim URIs),
// Okta, OneLogin, Google Workspace, PingFederate, Keycloak and Shibboleth
// (LDAP names and their urn:oid forms), tried in order.
func DefaultAttributeMapping() AttributeMapping {
	return AttributeMapping{
		ClaimEmail: {
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
			"urn:oid:0.9.2342.19200300.100.1.3",
			"email", "Email", "emailAddress", "EmailAddress", "mail", "User.email",
			"urn:mace:dir:attribute-def:mail", "urn:mace:dir:attribute-def:email",
			"urn:mace:dir:attribute-def:eduPersonPrincipalName", "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		},
		ClaimName: {
			"http://schemas.microsoft.com/identity/claims/displayname",
			"urn:oid:2.16.840.1.113730.3.1.241",
			"displayName", "DisplayName", "name", "fullName", "cn", "urn:oid:2.5.4.3",
			"urn:mace:dir:attribute-def:displayName", "urn:mace:dir:attribute-def:cn",
		},
		ClaimGivenName: {
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
			"urn:oid:2.5.4.42",
			"givenName", "firstName", "FirstName", "first_name", "given_name", "User.FirstName",
			"urn:mace:dir:attribute-def:givenName",
		},
		ClaimFamilyName: {
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
			"urn:oid:2.5.4.4",
			"sn", "surname", "lastName", "LastName", "last_name", "family_name", "User.LastName",
			"urn:mace:dir:attribute-def:sn",
		},
		ClaimGroups: {
			"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
			"http://schemas.xmlsoap.org/claims/Group",
			"http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
			"urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
			"groups", "Groups", "memberOf", "member_of", "group", "Role",
			"urn:mace:dir:attribute-def:isMemberOf",
		},
	}
}

// NameIDFormatEmail is the emailAddress NameID format.
const NameIDFormatEmail = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"

// withNameIDEmail fills an empty email from a NameID whose format is
// emailAddress (and which looks like one), when the mapping does not name
// the email claim itself.
func (m AttributeMapping) withNameIDEmail(out MappedAttributes, nameID, format string) MappedAttributes {
	if _, overridden := m[ClaimEmail]; overridden || out.Email != "" || format != NameIDFormatEmail {
		return out
	}
	if at := strings.LastIndexByte(nameID, '@'); at > 0 && at < len(nameID)-1 && !strings.ContainsAny(nameID, " \t\r\n") {
		out.Email = nameID
	}
	return out
}

var standardClaims = []string{ClaimEmail, ClaimName, ClaimGivenName, ClaimFamilyName, ClaimGroups}

var claimNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate reports a mapping that Apply could not honour: a reserved claim
// (sub, iss, roles, ...), a claim name outside [a-z][a-z0-9_]{0,62}, or an
// empty attribute name.
func (m AttributeMapping) Validate() error {
	claims := make([]string, 0, len(m))
	for c := range m {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for _, c := range claims {
		if slices.Contains(ReservedClaims, c) {
			return fmt.Errorf("attribute mapping: claim %q is reserved and set by ssogate itself; map the attribute to another name", c)
		}
		if !claimNamePattern.MatchString(c) {
			return fmt.Errorf("attribute mapping: claim name %q must match [a-z][a-z0-9_]{0,62}", c)
		}
		for i, name := range m[c] {
			if strings.TrimSpace(name) == "" {
				return fmt.Errorf("attribute mapping: claim %q: attribute name %d is empty", c, i+1)
			}
		}
	}
	return nil
}

// Apply maps raw attributes (by attribute Name) into claims. A claim the
// mapping names uses only its listed attributes; the standard claims it
// does not name use DefaultAttributeMapping. The first listed attribute
// with a non-empty value wins; values are trimmed and empty ones dropped.
// Groups take every value of that attribute, deduplicated in order. When
// no name is found, it is composed from the given and family names. Other
// claims go to Extra; reserved claims never do, even if Validate was not
// called.
func (m AttributeMapping) Apply(raw map[string][]string) MappedAttributes {
	defaults := DefaultAttributeMapping()
	names := func(claim string) []string {
		if n, ok := m[claim]; ok && len(n) > 0 {
			return n
		}
		return defaults[claim]
	}
	first := func(claim string) []string {
		for _, name := range names(claim) {
			if v := cleanValues(raw[name]); len(v) > 0 {
				return v
			}
		}
		return nil
	}
	one := func(claim string) string {
		if v := first(claim); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	out := MappedAttributes{
		Email:      one(ClaimEmail),
		Name:       one(ClaimName),
		GivenName:  one(ClaimGivenName),
		FamilyName: one(ClaimFamilyName),
		Groups:     dedupe(first(ClaimGroups), maxGroups),
	}
	out.GroupsOverage = groupsOverage(raw)
	if out.Name == "" {
		out.Name = strings.TrimSpace(out.GivenName + " " + out.FamilyName)
	}
	for claim := range m {
		if slices.Contains(standardClaims, claim) || slices.Contains(ReservedClaims, claim) || !claimNamePattern.MatchString(claim) {
			continue
		}
		if v := first(claim); len(v) > 0 {
			if out.Extra == nil {
				out.Extra = map[string][]string{}
			}
			out.Extra[claim] = v
		}
	}
	return out
}

func cleanValues(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func dedupe(vs []string, limit int) []string {
	if len(vs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(vs))
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if !seen[v] && len(out) < limit {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
