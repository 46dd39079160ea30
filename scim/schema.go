package scim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Schema URNs.
const (
	SchemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// attr is one attribute of a schema: enough to canonicalize names (SCIM
// names are case-insensitive), coerce types and tell multi-valued ones.
type attr struct {
	name    string
	typ     string // string, boolean, complex, reference
	multi   bool
	sub     []string
	mutable string // readWrite (default), readOnly, immutable, writeOnly
}

type schema struct {
	id, name string
	attrs    []attr
}

var multiSub = []string{"value", "display", "type", "primary", "$ref"}

var userSchema = schema{id: SchemaUser, name: "User", attrs: []attr{
	{name: "userName", typ: "string"},
	{name: "name", typ: "complex", sub: []string{"formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"}},
	{name: "displayName", typ: "string"},
	{name: "nickName", typ: "string"},
	{name: "profileUrl", typ: "reference"},
	{name: "title", typ: "string"},
	{name: "userType", typ: "string"},
	{name: "preferredLanguage", typ: "string"},
	{name: "locale", typ: "string"},
	{name: "timezone", typ: "string"},
	{name: "active", typ: "boolean"},
	{name: "password", typ: "string", mutable: "writeOnly"},
	{name: "emails", typ: "complex", multi: true, sub: multiSub},
	{name: "phoneNumbers", typ: "complex", multi: true, sub: multiSub},
	{name: "ims", typ: "complex", multi: true, sub: multiSub},
	{name: "photos", typ: "complex", multi: true, sub: multiSub},
	{name: "addresses", typ: "complex", multi: true, sub: []string{"formatted", "streetAddress", "locality", "region",
		"postalCode", "country", "type", "primary"}},
	{name: "groups", typ: "complex", multi: true, sub: multiSub, mutable: "readOnly"},
	{name: "entitlements", typ: "complex", multi: true, sub: multiSub},
	{name: "roles", typ: "complex", multi: true, sub: multiSub},
	{name: "x509Certificates", typ: "complex", multi: true, sub: multiSub},
	{name: "externalId", typ: "string"},
}}

var enterpriseSchema = schema{id: SchemaEnterprise, name: "EnterpriseUser", attrs: []attr{
	{name: "employeeNumber", typ: "string"},
	{name: "costCenter", typ: "string"},
	{name: "organization", typ: "string"},
	{name: "division", typ: "string"},
	{name: "department", typ: "string"},
	{name: "manager", typ: "complex", sub: []string{"value", "$ref", "displayName"}},
}}

var groupSchema = schema{id: SchemaGroup, name: "Group", attrs: []attr{
	{name: "displayName", typ: "string"},
	{name: "members", typ: "complex", multi: true, sub: []string{"value", "display", "type", "$ref"}},
	{name: "externalId", typ: "string"},
}}

func (s *schema) lookup(name string) (attr, bool) {
	for _, a := range s.attrs {
		if strings.EqualFold(a.name, name) {
			return a, true
		}
	}
	return attr{}, false
}

func (a attr) canonicalSub(name string) string {
	for _, s := range a.sub {
		if strings.EqualFold(s, name) {
			return s
		}
	}
	return name
}

// coerce checks and converts one (single) value of a.
func (a attr) coerce(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.typ {
	case "boolean":
		switch b := v.(type) {
		case bool:
			return b, nil
		case string: // Entra ID sends "True"/"False"
			switch strings.ToLower(b) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, badRequest("invalidValue", "%s must be a boolean, got %s", a.name, show(v))
	case "complex":
		m, ok := v.(map[string]any)
		if s, isString := v.(string); isString && !a.multi && slices.Contains(a.sub, "value") {
			// Entra ID sends the manager as the bare id.
			m, ok = map[string]any{"value": s}, true
		}
		if !ok {
			return nil, badRequest("invalidValue", "%s must be an object, got %s", a.name, show(v))
		}
		out := make(map[string]any, len(m))
		for k, sv := range m {
			k = a.canonicalSub(k)
			if k == "primary" {
				b, err := attr{name: a.name + ".primary", typ: "boolean"}.coerce(sv)
				if err != nil {
					return nil, err
				}
				sv = b
			}
			out[k] = sv
		}
		return out, nil
	default:
		switch s := v.(type) {
		case string:
			return s, nil
		case json.Number, bool:
			return fmt.Sprint(s), nil
		}
		return nil, badRequest("invalidValue", "%s must be a string, got %s", a.name, show(v))
	}
}

// coerceValue converts a whole value of a: a list for a multi-valued
// attribute (a single object is taken as a list of one).
func (a attr) coerceValue(v any) (any, error) {
	if !a.multi || v == nil {
		return a.coerce(v)
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		c, err := a.coerce(e)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 80 {
		return fmt.Sprintf("a %T", v)
	}
	return string(b)
}

// resource is a SCIM resource's attributes, canonical names as keys; the
// extension's attributes under its URN.
type resource map[string]any

// normalize reads a POST/PUT body: known attributes canonicalized and
// type-checked, read-only and unknown ones dropped, never the password.
func normalize(in map[string]any, s *schema, ext *schema) (resource, error) {
	out := resource{}
	for k, v := range in {
		switch {
		case strings.EqualFold(k, "schemas"), strings.EqualFold(k, "id"), strings.EqualFold(k, "meta"):
			continue
		case ext != nil && strings.EqualFold(k, ext.id):
			m, ok := v.(map[string]any)
			if !ok {
				return nil, badRequest("invalidValue", "%s must be an object", ext.id)
			}
			for ek, ev := range m {
				if err := setAttr(out, ext, ek, ev); err != nil {
					return nil, err
				}
			}
		default:
			if err := setAttr(out, s, k, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// setAttr stores one attribute of s (in the extension's object when s is
// an extension).
func setAttr(res resource, s *schema, name string, v any) error {
	a, ok := s.lookup(name)
	if !ok || a.mutable == "readOnly" || a.mutable == "writeOnly" {
		return nil
	}
	c, err := a.coerceValue(v)
	if err != nil {
		return err
	}
	container := containerOf(res, s, true)
	if c == nil {
		delete(container, a.name)
		return nil
	}
	container[a.name] = c
	return nil
}

// containerOf returns where s's attributes live in res.
func containerOf(res resource, s *schema, create bool) map[string]any {
	if s.id != SchemaEnterprise {
		return res
	}
	m, ok := res[SchemaEnterprise].(map[string]any)
	if !ok && create {
		m = map[string]any{}
		res[SchemaEnterprise] = m
	}
	return m
}

func (r resource) str(name string) string {
	s, _ := r[name].(string)
	return s
}

// primaryEmail is the email marked primary, else the work one, else the
// first.
func (r resource) primaryEmail() string {
	list, _ := r["emails"].([]any)
	var work, first string
	for _, e := range list {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if v == "" {
			continue
		}
		if p, _ := m["primary"].(bool); p {
			return v
		}
		if t, _ := m["type"].(string); strings.EqualFold(t, "work") && work == "" {
			work = v
		}
		if first == "" {
			first = v
		}
	}
	if work != "" {
		return work
	}
	return first
}

// active is true unless the resource says false.
func (r resource) active() bool {
	b, ok := r["active"].(bool)
	return !ok || b
}

// clone deep-copies r through JSON.
func (r resource) clone() resource {
	b, _ := json.Marshal(r)
	var out resource
	_ = json.Unmarshal(b, &out)
	return out
}

// Enterprise reads the enterprise extension's department, employee number
// and manager id from a stored user resource.
func Enterprise(raw []byte) (department, employeeNumber, managerID string) {
	ext, _ := decodeResource(raw)[SchemaEnterprise].(map[string]any)
	department, _ = ext["department"].(string)
	employeeNumber, _ = ext["employeeNumber"].(string)
	manager, _ := ext["manager"].(map[string]any)
	managerID, _ = manager["value"].(string)
	return department, employeeNumber, managerID
}
