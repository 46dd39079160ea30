// Package policy decides whether a verified identity may sign in through a
// connection, and with which roles. It is pure: no I/O, no clock.
//
// Guarantees: a denial always says what the policy wanted and what the
// identity had, in words an IdP admin can act on; matching is exact
// (case-sensitive, as IdPs send group names and IDs verbatim), so that a
// group "Admins" never grants what "admins" was meant to; an empty policy
// admits everyone with no roles.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Policy is one connection's access policy.
type Policy struct {
	// AllowedGroups, when non-empty, admits only members of at least one.
	AllowedGroups []string
	// RequiredAttributes: for every attribute name, the identity must have
	// at least one of the listed values.
	RequiredAttributes map[string][]string
	// RoleMappings grant roles to the members of groups.
	RoleMappings []RoleMapping
}

// RoleMapping grants Roles to members of Group.
type RoleMapping struct {
	Group string
	Roles []string
}

// Subject is what the policy looks at.
type Subject struct {
	Groups     []string
	Attributes map[string][]string
}

// Denied is a refusal with an admin-facing message.
type Denied struct {
	Message string
}

func (d *Denied) Error() string { return "access denied: " + d.Message }

// UsesGroups reports whether the decision depends on the subject's groups:
// an AllowedGroups list, or role mappings (which grant roles by group).
func (p Policy) UsesGroups() bool {
	return len(p.AllowedGroups) > 0 || len(p.RoleMappings) > 0
}

// Decide admits s and returns its roles (sorted, without duplicates), or
// returns a *Denied.
func (p Policy) Decide(s Subject) ([]string, error) {
	if len(p.AllowedGroups) > 0 && !intersects(p.AllowedGroups, s.Groups) {
		return nil, &Denied{Message: fmt.Sprintf("user is in groups %s; the connection admits only members of %s",
			list(s.Groups), list(p.AllowedGroups))}
	}
	names := make([]string, 0, len(p.RequiredAttributes))
	for name := range p.RequiredAttributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := p.RequiredAttributes[name]
		if len(want) == 0 {
			continue
		}
		have := s.Attributes[name]
		if !intersects(want, have) {
			if len(have) == 0 {
				return nil, &Denied{Message: fmt.Sprintf("attribute %q is missing; the connection requires one of %s", name, list(want))}
			}
			return nil, &Denied{Message: fmt.Sprintf("attribute %q was %s; the connection requires one of %s", name, list(have), list(want))}
		}
	}
	var roles []string
	for _, m := range p.RoleMappings {
		if slices.Contains(s.Groups, m.Group) {
			roles = append(roles, m.Roles...)
		}
	}
	sort.Strings(roles)
	return slices.Compact(roles), nil
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// list renders values for a message, bounded so a 2,000-group user does not
// produce a 100 KB audit line.
func list(v []string) string {
	const max = 20
	if len(v) == 0 {
		return "[none]"
	}
	q := make([]string, 0, min(len(v), max))
	for _, s := range v[:min(len(v), max)] {
		q = append(q, fmt.Sprintf("%q", s))
	}
	out := "[" + strings.Join(q, ", ")
	if len(v) > max {
		out += fmt.Sprintf(", … %d more", len(v)-max)
	}
	return out + "]"
}
