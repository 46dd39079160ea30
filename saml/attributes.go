package saml

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
	// Extra holds mapped claims beyond the standard ones, by claim name.
	Extra map[string][]string
}

// Apply maps raw attributes (by attribute Name) into claims.
func (m AttributeMapping) Apply(raw map[string][]string) MappedAttributes {
	first := func(claim string) []string {
		for _, name := range m[claim] {
			if v := raw[name]; len(v) > 0 {
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
	return MappedAttributes{
		Email:      one(ClaimEmail),
		Name:       one(ClaimName),
		GivenName:  one(ClaimGivenName),
		FamilyName: one(ClaimFamilyName),
		Groups:     first(ClaimGroups),
	}
}
