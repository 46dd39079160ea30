package scim

import (
	"fmt"
	"regexp"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// listFilter is what a list request may filter on: equality terms joined
// by "and", which the store answers from its indexes.
type listFilter struct {
	id, userName, externalID, email, displayName, member string
}

// subAfterFilter matches emails[type eq "work"].value eq "…", which
// clients send though the filter grammar has no sub-attribute after a
// value path; it is rewritten to emails[type eq "work" and value eq "…"].
var subAfterFilter = regexp.MustCompile(`^\s*([A-Za-z][\w:.-]*)\[([^\]]*)\]\.(\w+)\s+(?i:eq)\s+(.+?)\s*$`)

// parseListFilter reads the filter parameter for users (group false) or
// groups.
func parseListFilter(raw string, group bool) (listFilter, error) {
	var f listFilter
	if strings.TrimSpace(raw) == "" {
		return f, nil
	}
	if m := subAfterFilter.FindStringSubmatch(raw); m != nil {
		raw = fmt.Sprintf("%s[%s and %s eq %s]", m[1], m[2], m[3], m[4])
	}
	expr, err := filter.ParseFilter([]byte(raw))
	if err != nil {
		return f, badRequest("invalidFilter", "filter %q does not parse: %v", raw, err)
	}
	if err := f.add(expr, group); err != nil {
		return f, err
	}
	return f, nil
}

func unsupported(expr any) error {
	return badRequest("invalidFilter",
		"filter %v is not supported; use eq on id, userName, externalId, emails.value, emails[type eq \"work\"].value (Users) "+
			"or id, displayName, externalId, members[value eq \"…\"] (Groups), joined by and", expr)
}

func (f *listFilter) add(expr filter.Expression, group bool) error {
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if e.Operator != filter.AND {
			return unsupported(e)
		}
		if err := f.add(e.Left, group); err != nil {
			return err
		}
		return f.add(e.Right, group)
	case *filter.ValuePath:
		// emails[type eq "work" and value eq "x"] or members[value eq "x"]
		var terms map[string]any = map[string]any{}
		if !equalities(e.ValueFilter, terms) {
			return unsupported(e)
		}
		var value string
		for k, v := range terms {
			switch {
			case strings.EqualFold(k, "value"):
				value = fmt.Sprint(v)
			case strings.EqualFold(k, "type") && strings.EqualFold(fmt.Sprint(v), "work") && !group:
			default:
				return unsupported(e)
			}
		}
		name := e.AttributePath.AttributeName
		switch {
		case value == "":
			return unsupported(e)
		case !group && strings.EqualFold(name, "emails"):
			f.email = value
		case group && strings.EqualFold(name, "members"):
			f.member = value
		default:
			return unsupported(e)
		}
		return nil
	case *filter.AttributeExpression:
		if e.Operator != filter.EQ {
			return unsupported(e)
		}
		v, ok := e.CompareValue.(string)
		if !ok {
			return badRequest("invalidFilter", "filter %v: compare with a string", e)
		}
		name, sub := e.AttributePath.AttributeName, e.AttributePath.SubAttributeName()
		if uri := e.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, SchemaUser) && !strings.EqualFold(uri, SchemaGroup) {
			return unsupported(e)
		}
		switch {
		case sub == "" && strings.EqualFold(name, "id"):
			f.id = v
		case sub == "" && strings.EqualFold(name, "externalId"):
			f.externalID = v
		case !group && sub == "" && strings.EqualFold(name, "userName"):
			f.userName = v
		case !group && strings.EqualFold(name, "emails") && (sub == "" || strings.EqualFold(sub, "value")):
			f.email = v
		case group && sub == "" && strings.EqualFold(name, "displayName"):
			f.displayName = v
		case group && strings.EqualFold(name, "members") && strings.EqualFold(sub, "value"):
			f.member = v
		default:
			return unsupported(e)
		}
		return nil
	}
	return unsupported(expr)
}
