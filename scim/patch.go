package scim

import (
	"encoding/json"
	"fmt"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// patchOp is one operation of a PatchOp request.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// parsePatch reads a PatchOp body. Entra ID capitalises op ("Replace").
func parsePatch(body []byte) ([]patchOp, error) {
	var req struct {
		Schemas    []string  `json:"schemas"`
		Operations []patchOp `json:"Operations"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("invalidSyntax", "the body is not a PatchOp request: %v", err)
	}
	if len(req.Operations) == 0 {
		return nil, badRequest("invalidSyntax", "a PatchOp request needs at least one entry in Operations")
	}
	for i := range req.Operations {
		op := strings.ToLower(req.Operations[i].Op)
		if op != "add" && op != "replace" && op != "remove" {
			return nil, badRequest("invalidSyntax", "operation %d: op %q is not add, replace or remove", i, req.Operations[i].Op)
		}
		req.Operations[i].Op = op
	}
	return req.Operations, nil
}

// applyPatch applies ops to res, in order, all or nothing (the caller
// works on a copy).
func applyPatch(res resource, s, ext *schema, ops []patchOp) error {
	for i, op := range ops {
		if err := applyOp(res, s, ext, op); err != nil {
			if e, ok := err.(*Error); ok {
				e.Detail = fmt.Sprintf("operation %d (%s %s): %s", i, op.Op, op.Path, e.Detail)
			}
			return err
		}
	}
	return nil
}

func applyOp(res resource, s, ext *schema, op patchOp) error {
	if op.Path == "" {
		if op.Op == "remove" {
			return badRequest("noTarget", "remove needs a path")
		}
		m, ok := op.Value.(map[string]any)
		if !ok {
			return badRequest("invalidValue", "without a path, value must be an object of attributes")
		}
		// Entra ID's no-path replace: {"displayName": …, "name.givenName": …,
		// "urn:…:enterprise:2.0:User:department": …}; each key is a path.
		for k, v := range m {
			if ext != nil && strings.EqualFold(k, ext.id) {
				sub, ok := v.(map[string]any)
				if !ok {
					return badRequest("invalidValue", "%s must be an object", ext.id)
				}
				for ek, ev := range sub {
					if err := applyOp(res, s, ext, patchOp{Op: op.Op, Path: ext.id + ":" + ek, Value: ev}); err != nil {
						return err
					}
				}
				continue
			}
			if strings.EqualFold(k, "schemas") || strings.EqualFold(k, "id") || strings.EqualFold(k, "meta") {
				continue
			}
			if err := applyOp(res, s, ext, patchOp{Op: op.Op, Path: k, Value: v}); err != nil {
				return err
			}
		}
		return nil
	}
	p, err := filter.ParsePath([]byte(op.Path))
	if err != nil {
		return badRequest("invalidPath", "path %q is not a SCIM attribute path", op.Path)
	}
	target := s
	switch uri := p.AttributePath.URI(); {
	case uri == "" || strings.EqualFold(uri, s.id):
	case ext != nil && strings.EqualFold(uri, ext.id):
		target = ext
	default:
		return badRequest("invalidPath", "schema %q is not one this resource has", uri)
	}
	a, ok := target.lookup(p.AttributePath.AttributeName)
	if !ok {
		return badRequest("invalidPath", "attribute %q is not in schema %s", p.AttributePath.AttributeName, target.id)
	}
	if a.mutable == "readOnly" {
		return badRequest("mutability", "attribute %q is read-only", a.name)
	}
	if a.mutable == "writeOnly" {
		return nil // a password: accepted, never kept
	}
	sub := p.AttributePath.SubAttributeName()
	if sub == "" {
		sub = p.SubAttributeName()
	}
	if sub != "" {
		sub = a.canonicalSub(sub)
		if a.typ != "complex" {
			return badRequest("invalidPath", "attribute %q has no sub-attribute %q", a.name, sub)
		}
	}
	if p.ValueExpression != nil && !a.multi {
		return badRequest("invalidPath", "a value filter needs a multi-valued attribute; %q is single-valued", a.name)
	}
	c := containerOf(res, target, op.Op != "remove")
	if c == nil {
		return nil // removing from an absent extension
	}
	switch {
	case !a.multi:
		return opSingle(c, a, sub, op)
	case p.ValueExpression == nil && sub == "":
		return opMulti(c, a, op)
	default:
		return opElements(c, a, p.ValueExpression, sub, op)
	}
}

// opSingle: a single-valued attribute or one of its sub-attributes.
func opSingle(c map[string]any, a attr, sub string, op patchOp) error {
	if sub == "" {
		if op.Op == "remove" {
			delete(c, a.name)
			return nil
		}
		v, err := a.coerce(op.Value)
		if err != nil {
			return err
		}
		// add/replace of a complex value merges its sub-attributes.
		if nm, ok := v.(map[string]any); ok {
			old, _ := c[a.name].(map[string]any)
			if old == nil {
				old = map[string]any{}
			}
			for k, sv := range nm {
				old[k] = sv
			}
			v = old
		}
		if v == nil {
			delete(c, a.name)
			return nil
		}
		c[a.name] = v
		return nil
	}
	m, _ := c[a.name].(map[string]any)
	if op.Op == "remove" {
		delete(m, sub)
		return nil
	}
	if m == nil {
		m = map[string]any{}
		c[a.name] = m
	}
	v, err := (attr{name: a.name + "." + sub, typ: "string"}).coerce(op.Value)
	if err != nil {
		return err
	}
	m[sub] = v
	return nil
}

// opMulti: a whole multi-valued attribute ("emails", "members").
func opMulti(c map[string]any, a attr, op patchOp) error {
	list, _ := c[a.name].([]any)
	var vals []any
	if op.Value != nil {
		v, err := a.coerceValue(op.Value)
		if err != nil {
			return err
		}
		vals = v.([]any)
	}
	switch op.Op {
	case "add":
		at := make(map[string]int, len(list))
		for i, e := range list {
			at[elementKey(e)] = i
		}
		for _, v := range vals {
			if i, ok := at[elementKey(v)]; ok {
				list[i] = v
				continue
			}
			at[elementKey(v)] = len(list)
			list = append(list, v)
		}
	case "replace":
		list = vals
	case "remove":
		if len(vals) == 0 {
			list = nil // remove all
			break
		}
		// Entra ID removes members as {"path":"members","value":[{"value":id}]}.
		drop := make(map[string]bool, len(vals))
		for _, v := range vals {
			drop[elementKey(v)] = true
		}
		kept := list[:0]
		for _, e := range list {
			if !drop[elementKey(e)] {
				kept = append(kept, e)
			}
		}
		list = kept
	}
	if len(list) == 0 {
		delete(c, a.name)
		return nil
	}
	c[a.name] = list
	return nil
}

// opElements: elements of a multi-valued attribute picked by a filter
// (emails[type eq "work"].value, members[value eq "…"]), or one
// sub-attribute of every element.
func opElements(c map[string]any, a attr, expr filter.Expression, sub string, op patchOp) error {
	list, _ := c[a.name].([]any)
	matched := false
	kept := list[:0:0]
	for _, e := range list {
		m, _ := e.(map[string]any)
		if expr != nil && !matches(expr, m) {
			kept = append(kept, e)
			continue
		}
		matched = true
		switch {
		case op.Op == "remove" && sub == "":
			continue // drop the element
		case op.Op == "remove":
			delete(m, sub)
		case sub != "":
			m[sub] = op.Value
		default:
			v, err := a.coerce(op.Value)
			if err != nil {
				return err
			}
			for k, sv := range v.(map[string]any) {
				m[k] = sv
			}
		}
		kept = append(kept, m)
	}
	if !matched && op.Op != "remove" {
		// Nothing matched: make the element the filter describes, as Entra
		// ID expects of replace emails[type eq "work"].value.
		m := map[string]any{}
		if expr != nil {
			if !equalities(expr, m) {
				return badRequest("noTarget", "no value of %q matches the filter", a.name)
			}
		}
		if sub != "" {
			m[sub] = op.Value
		} else if v, err := a.coerce(op.Value); err != nil {
			return err
		} else {
			for k, sv := range v.(map[string]any) {
				m[k] = sv
			}
		}
		kept = append(kept, m)
	}
	if len(kept) == 0 {
		delete(c, a.name)
		return nil
	}
	c[a.name] = kept
	return nil
}

// elementKey identifies an element of a multi-valued attribute: its
// "value", or else its whole JSON.
func elementKey(e any) string {
	if m, ok := e.(map[string]any); ok {
		if s, ok := m["value"].(string); ok {
			return "v:" + s
		}
	}
	b, _ := json.Marshal(e)
	return "j:" + string(b)
}

// equalities copies the attr eq value terms of an and-only filter into m.
func equalities(expr filter.Expression, m map[string]any) bool {
	switch e := expr.(type) {
	case *filter.AttributeExpression:
		if e.Operator != filter.EQ {
			return false
		}
		m[e.AttributePath.AttributeName] = e.CompareValue
		return true
	case *filter.LogicalExpression:
		return e.Operator == filter.AND && equalities(e.Left, m) && equalities(e.Right, m)
	}
	return false
}

// matches evaluates a value filter on one element. Strings compare
// case-insensitively (the caseExact=false default).
func matches(expr filter.Expression, m map[string]any) bool {
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return matches(e.Left, m) && matches(e.Right, m)
		}
		return matches(e.Left, m) || matches(e.Right, m)
	case *filter.NotExpression:
		return !matches(e.Expression, m)
	case *filter.AttributeExpression:
		var have any
		for k, v := range m {
			if strings.EqualFold(k, e.AttributePath.AttributeName) {
				have = v
			}
		}
		if e.Operator == filter.PR {
			return have != nil && have != ""
		}
		if have == nil {
			return e.Operator == filter.NE
		}
		h, w := strings.ToLower(fmt.Sprint(have)), strings.ToLower(fmt.Sprint(e.CompareValue))
		switch e.Operator {
		case filter.EQ:
			return h == w
		case filter.NE:
			return h != w
		case filter.CO:
			return strings.Contains(h, w)
		case filter.SW:
			return strings.HasPrefix(h, w)
		case filter.EW:
			return strings.HasSuffix(h, w)
		case filter.GT:
			return h > w
		case filter.GE:
			return h >= w
		case filter.LT:
			return h < w
		case filter.LE:
			return h <= w
		}
	}
	return false
}
