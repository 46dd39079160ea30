package scim

import "net/http"

func (h *Handler) serviceProviderConfig(rq *request) error {
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/ssogate/ssogate#directory-sync-scim",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": 1000},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{"type": "oauthbearertoken", "name": "Bearer token",
			"description": "A SCIM token made for this connection", "primary": true}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": rq.baseURL() + "/ServiceProviderConfig"},
	})
	return nil
}

func (rq *request) resourceTypeList() []map[string]any {
	return []map[string]any{
		{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"}, "id": "User", "name": "User",
			"endpoint": "/Users", "schema": SchemaUser,
			"schemaExtensions": []any{map[string]any{"schema": SchemaEnterprise, "required": false}},
			"meta":             map[string]any{"resourceType": "ResourceType", "location": rq.baseURL() + "/ResourceTypes/User"}},
		{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"}, "id": "Group", "name": "Group",
			"endpoint": "/Groups", "schema": SchemaGroup,
			"meta": map[string]any{"resourceType": "ResourceType", "location": rq.baseURL() + "/ResourceTypes/Group"}},
	}
}

func (h *Handler) resourceTypes(rq *request) error {
	var out []any
	for _, t := range rq.resourceTypeList() {
		out = append(out, t)
	}
	writeJSON(rq.w, http.StatusOK, listResponse(0, len(out), out))
	return nil
}

func (h *Handler) resourceType(rq *request) error {
	for _, t := range rq.resourceTypeList() {
		if t["id"] == rq.r.PathValue("id") {
			writeJSON(rq.w, http.StatusOK, t)
			return nil
		}
	}
	return &Error{Status: http.StatusNotFound, Detail: "resource types are User and Group"}
}

func (rq *request) schemaDoc(s *schema) map[string]any {
	attrs := make([]any, 0, len(s.attrs))
	for _, a := range s.attrs {
		mut := a.mutable
		if mut == "" {
			mut = "readWrite"
		}
		doc := map[string]any{"name": a.name, "type": a.typ, "multiValued": a.multi, "required": a.name == "userName" ||
			(s.id == SchemaGroup && a.name == "displayName"), "caseExact": a.name == "externalId", "mutability": mut,
			"returned":   map[bool]string{true: "never", false: "default"}[mut == "writeOnly"],
			"uniqueness": map[bool]string{true: "server", false: "none"}[a.name == "userName"]}
		if len(a.sub) > 0 {
			var subs []any
			for _, sub := range a.sub {
				subs = append(subs, map[string]any{"name": sub, "type": map[bool]string{true: "boolean", false: "string"}[sub == "primary"],
					"multiValued": false, "required": false, "mutability": "readWrite", "returned": "default"})
			}
			doc["subAttributes"] = subs
		}
		attrs = append(attrs, doc)
	}
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Schema"}, "id": s.id, "name": s.name,
		"attributes": attrs, "meta": map[string]any{"resourceType": "Schema", "location": rq.baseURL() + "/Schemas/" + s.id}}
}

var allSchemas = []*schema{&userSchema, &enterpriseSchema, &groupSchema}

func (h *Handler) schemas(rq *request) error {
	var out []any
	for _, s := range allSchemas {
		out = append(out, rq.schemaDoc(s))
	}
	writeJSON(rq.w, http.StatusOK, listResponse(0, len(out), out))
	return nil
}

func (h *Handler) schema(rq *request) error {
	for _, s := range allSchemas {
		if s.id == rq.r.PathValue("id") {
			writeJSON(rq.w, http.StatusOK, rq.schemaDoc(s))
			return nil
		}
	}
	return &Error{Status: http.StatusNotFound, Detail: "no such schema"}
}
