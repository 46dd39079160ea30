package scim_test

import (
	"strings"
	"testing"
)

func TestDiscovery(t *testing.T) {
	f := newFixture(t, backends[0].open(t))
	f.run(t, []step{
		{method: "GET", path: "/ServiceProviderConfig", status: 200, check: all(field("patch.supported", true),
			field("filter.supported", true), field("bulk.supported", false), field("etag.supported", true))},
		{method: "GET", path: "/ResourceTypes", status: 200, check: func(t *testing.T, f *fixture, r response) {
			if r.body["totalResults"] != 2.0 {
				t.Fatalf("ResourceTypes: %s", r.raw)
			}
		}},
		{method: "GET", path: "/ResourceTypes/User", status: 200, check: field("schemaExtensions", []any{map[string]any{
			"required": false, "schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}})},
		{method: "GET", path: "/Schemas", status: 200, check: field("totalResults", 3)},
		{method: "GET", path: "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", status: 200,
			check: field("name", "EnterpriseUser")},
		{method: "GET", path: "/Schemas/nope", status: 404},
	})
}

// TestRequestLog: method, path, status and scimType of each request, never
// the query string, the body or the token.
func TestRequestLog(t *testing.T) {
	st := backends[0].open(t)
	f := newFixture(t, st)
	f.run(t, []step{
		{method: "POST", path: "/Users", body: userJSON("log@example.com"), status: 201, save: "u"},
		{method: "GET", path: `/Users?filter=userName+co+%22secret-filter%22`, status: 400, scimType: "invalidFilter"},
		{method: "GET", path: "/Users", headers: []string{"Authorization", "Bearer nope"}, status: 401},
	})
	log, err := st.ListScimRequests(t.Context(), "acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 {
		t.Fatalf("log has %d entries, want 2 (the 401 is nobody's): %+v", len(log), log)
	}
	if log[0].Method != "GET" || log[0].Path != "/Users" || log[0].Status != 400 || log[0].ScimType != "invalidFilter" {
		t.Fatalf("newest entry = %+v", log[0])
	}
	if log[1].Method != "POST" || log[1].Path != "/Users" || log[1].Status != 201 {
		t.Fatalf("older entry = %+v", log[1])
	}
	for _, e := range log {
		if strings.Contains(e.Path, "secret") || strings.Contains(e.Path, f.token) || strings.Contains(e.Path, "?") {
			t.Fatalf("log entry leaks the query or token: %+v", e)
		}
	}
	types := f.hooks.eventTypes()
	if len(types) != 1 || types[0] != "user.provisioned" {
		t.Fatalf("audit events = %v", types)
	}
}
