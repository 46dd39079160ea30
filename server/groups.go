package server

import (
	"slices"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/policy"
	"github.com/ssogate/ssogate/saml"
)

// nameGroups applies a connection's group_names to the groups an IdP sent
// (Entra ID object IDs to "Engineering"): listed values are replaced by
// their names, others pass unchanged; duplicates that the renaming makes
// are dropped, first one kept.
func nameGroups(names map[string]string, groups []string) []string {
	if len(names) == 0 || len(groups) == 0 {
		return groups
	}
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		if n, ok := names[g]; ok {
			g = n
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// groupOverage refuses a login whose groups the IdP left out for being too
// many (Entra ID's groups.link) when the access policy depends on groups:
// deciding on the groups that are missing would deny members of an
// allowed group and drop their roles. A policy without groups, or groups
// from the directory (groups_source), lets the login proceed.
func groupOverage(c *ssogatev1.Connection, p policy.Policy, ident *saml.Identity, fromDirectory bool) error {
	if !ident.Mapped.GroupsOverage || len(ident.Mapped.Groups) > 0 || fromDirectory || !p.UsesGroups() {
		return nil
	}
	return saml.Rejectf(saml.ReasonGroupOverage,
		"the IdP sent no groups but a link to them (%s: Entra ID does this when the user is in more than 150 groups), "+
			"and connection %q's access policy depends on groups (allowed_groups or role_mappings); "+
			"in Entra ID, edit the groups claim to emit \"Groups assigned to the application\" and assign the groups the policy names to the application, "+
			"or provision groups over SCIM and set the connection's groups_source to GROUPS_SOURCE_DIRECTORY",
		saml.EntraGroupsLinkAttribute, c.Id)
}
