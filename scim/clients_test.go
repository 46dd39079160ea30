package scim_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/ssogate/ssogate/scim"
)

// The request sequences below are written from the IdPs' published SCIM
// documentation:
//
//   - [entra-tutorial] Microsoft Learn, "Tutorial: Develop and plan
//     provisioning for a SCIM endpoint in Microsoft Entra ID"
//     (learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups),
//     section "User operations" / "Group operations": the GET with a
//     userName filter before each create, PATCH with "Replace"/"Add",
//     emails[type eq "work"].value, the enterprise manager as a bare id,
//     group members added and removed in batches, the membership check
//     "id eq … and members[value eq …]" with excludedAttributes=members.
//   - [entra-known-issues] Microsoft Learn, "Known issues and resolutions
//     with SCIM 2.0 protocol compliance of the Microsoft Entra user
//     provisioning service"
//     (learn.microsoft.com/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility):
//     capitalised ops, "active" as the string "False", a no-path replace
//     whose value object carries dotted and URN-prefixed attribute names,
//     group member removal with path "members" and a value list.
//   - [okta-scim20] Okta Developer, "Okta and SCIM Version 2.0"
//     (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20): GET
//     /Users?filter=userName eq "…"&startIndex=1&count=100 before create,
//     PUT for profile updates, deactivation by PATCH {"op":"replace",
//     "value":{"active":false}} or PUT with active false, no DELETE by
//     default, Group Push (POST /Groups, PATCH members add and
//     members[value eq "…"] remove, no-path replace of displayName with
//     the id in the value).

const aliceJSON = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
 "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"alice@contoso.example","active":true,
 "emails":[{"primary":true,"type":"work","value":"alice@contoso.example"}],
 "displayName":"Alice Smith","name":{"formatted":"Alice Smith","familyName":"Smith","givenName":"Alice"},
 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Finance","employeeNumber":"701984"},
 "password":"never-stored","meta":{"resourceType":"User"}}`

func userJSON(name string) string {
	return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":"ext-%s","active":true,
 "emails":[{"primary":true,"type":"work","value":%q}],"displayName":%q}`, name, name, name, name)
}

func TestEntraSequences(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range entraCases {
				t.Run(tc.name, func(t *testing.T) { newFixture(t, b.open(t)).run(t, tc.steps) })
			}
		})
	}
}

func TestOktaSequences(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range oktaCases {
				t.Run(tc.name, func(t *testing.T) { newFixture(t, b.open(t)).run(t, tc.steps) })
			}
		})
	}
}

type sequence struct {
	name  string
	steps []step
}

// Each sequence runs on a fresh store.
var entraCases = []sequence{
	{"create: filter by userName first, then POST [entra-tutorial]", []step{
		{method: "GET", path: `/Users?filter=userName+eq+%22alice@contoso.example%22`, status: 200, check: total(0)},
		{method: "POST", path: "/Users", body: aliceJSON, status: 201, save: "alice", check: all(
			field("userName", "alice@contoso.example"), field("active", true),
			field(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.department`, "Finance"),
			field("password", nil), field("meta.resourceType", "User"), field("meta.version", `W/"1"`))},
		{method: "GET", path: `/Users?filter=userName+eq+%22ALICE@contoso.example%22`, status: 200, check: total(1, "{alice}")},
		{method: "GET", path: `/Users?filter=externalId+eq+%220a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef%22`, status: 200, check: total(1, "{alice}")},
		{method: "GET", path: `/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22alice@contoso.example%22`, status: 200, check: total(1, "{alice}")},
		{method: "GET", path: "/Users/{alice}", status: 200, check: all(field("name.givenName", "Alice"), field("groups", []any{}))},
	}},
	{"disable: Replace active \"False\" as a string, then \"True\" [entra-known-issues]", []step{
		{method: "POST", path: "/Users", body: userJSON("dis@contoso.example"), status: 201, save: "u"},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, check: all(field("active", false), deprovisioned("u"))},
		{method: "GET", path: `/Users?filter=userName+eq+%22dis@contoso.example%22`, status: 200, check: all(total(1, "{u}"))},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"active","value":"True"}]}`, check: all(field("active", true), deprovisioned("u"))},
	}},
	{"no-path Replace with an object of attributes [entra-known-issues]", []step{
		{method: "POST", path: "/Users", body: userJSON("np@contoso.example"), status: 201, save: "u"},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","value":{"displayName":"Nora P","name.givenName":"Nora","name.familyName":"P",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Sales","active":false}}]}`,
			check: all(field("displayName", "Nora P"), field("name.givenName", "Nora"), field("name.familyName", "P"),
				field(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.department`, "Sales"),
				field("active", false), deprovisioned("u"))},
	}},
	{"userName changes with the email [entra-tutorial]", []step{
		{method: "POST", path: "/Users", body: userJSON("old@contoso.example"), status: 201, save: "u"},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"userName","value":"new@contoso.example"},
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@contoso.example"}]}`,
			check: all(field("userName", "new@contoso.example"), field("emails", []any{map[string]any{"primary": true, "type": "work", "value": "new@contoso.example"}}))},
		{method: "GET", path: `/Users?filter=userName+eq+%22old@contoso.example%22`, status: 200, check: total(0)},
		{method: "GET", path: `/Users?filter=userName+eq+%22new@contoso.example%22`, status: 200, check: total(1, "{u}")},
		{method: "GET", path: `/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22new@contoso.example%22`, status: 200, check: total(1, "{u}")},
	}},
	{"work email added when there was none, manager as a bare id [entra-tutorial]", []step{
		{method: "POST", path: "/Users", body: `{"userName":"noemail@contoso.example"}`, status: 201, save: "u"},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"ne@contoso.example"},
			{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"mgr-1"},
			{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"42"}]}`,
			check: all(field("emails", []any{map[string]any{"type": "work", "value": "ne@contoso.example"}}),
				field(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager.value`, "mgr-1"),
				field(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.employeeNumber`, "42"))},
		{method: "GET", path: `/Users?filter=emails.value+eq+%22NE@contoso.example%22`, status: 200, check: total(1, "{u}")},
	}},
	{"group: create, members in batches, Remove by value list and by value filter [entra-tutorial, entra-known-issues]", []step{
		{method: "POST", path: "/Users", body: userJSON("g1@contoso.example"), status: 201, save: "u1"},
		{method: "POST", path: "/Users", body: userJSON("g2@contoso.example"), status: 201, save: "u2"},
		{method: "POST", path: "/Users", body: userJSON("g3@contoso.example"), status: 201, save: "u3"},
		{method: "GET", path: `/Groups?excludedAttributes=members&filter=displayName+eq+%22Finance%22`, status: 200, check: total(0)},
		{method: "POST", path: "/Groups", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
			"displayName":"Finance","members":[]}`, status: 201, save: "g", check: all(field("displayName", "Finance"), members())},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Add","path":"members","value":[{"value":"{u1}"},{"value":"{u2}"}]}]}`, check: members("{u1}", "{u2}")},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Add","path":"members","value":[{"value":"{u3}"},{"value":"{u1}"}]}]}`, check: members("{u1}", "{u2}", "{u3}")},
		{method: "GET", path: `/Groups?excludedAttributes=members&filter=id+eq+%22{g}%22+and+members%5Bvalue+eq+%22{u3}%22%5D`, status: 200,
			check: all(total(1, "{g}"), func(t *testing.T, f *fixture, r response) {
				if _, ok := r.body["Resources"].([]any)[0].(map[string]any)["members"]; ok {
					t.Fatal("excludedAttributes=members still lists members")
				}
			})},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Remove","path":"members","value":[{"value":"{u1}"}]}]}`, check: members("{u2}", "{u3}")},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Remove","path":"members[value eq \"{u2}\"]"}]}`, check: members("{u3}")},
		{method: "GET", path: `/Groups?excludedAttributes=members&filter=id+eq+%22{g}%22+and+members%5Bvalue+eq+%22{u1}%22%5D`, status: 200, check: total(0)},
		{method: "GET", path: "/Users/{u3}", status: 200, check: func(t *testing.T, f *fixture, r response) {
			groups, _ := r.body["groups"].([]any)
			if len(groups) != 1 || groups[0].(map[string]any)["display"] != "Finance" {
				t.Fatalf("groups of u3 = %v", r.body["groups"])
			}
		}},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"displayName","value":"Finance EMEA"}]}`, check: all(field("displayName", "Finance EMEA"), members("{u3}"),
			func(t *testing.T, f *fixture, r response) {
				f.hooks.mu.Lock()
				defer f.hooks.mu.Unlock()
				want := map[string][]string{f.ids["u1"]: {"Finance"}, f.ids["u2"]: {"Finance"}, f.ids["u3"]: {"Finance"}}
				if !equalJSON(f.hooks.left, want) {
					t.Fatalf("MembershipChanged saw %v, want %v (removals, then the rename)", f.hooks.left, want)
				}
			})},
		{method: "DELETE", path: "/Groups/{g}", status: 204},
		{method: "GET", path: "/Groups/{g}", status: 404},
	}},
	{"delete: 204, then the id is gone for good [entra-tutorial]", []step{
		{method: "POST", path: "/Users", body: userJSON("del@contoso.example"), status: 201, save: "u"},
		{method: "DELETE", path: "/Users/{u}", status: 204, check: deprovisioned("u")},
		{method: "GET", path: "/Users/{u}", status: 404},
		{method: "PATCH", path: "/Users/{u}", status: 404, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"active","value":true}]}`},
		{method: "PUT", path: "/Users/{u}", status: 404, body: userJSON("del@contoso.example")},
		{method: "GET", path: `/Users?filter=userName+eq+%22del@contoso.example%22`, status: 200, check: total(0)},
	}},
}

var oktaCases = []sequence{
	{"create: filter with startIndex=1&count=100, then POST [okta-scim20]", []step{
		{method: "GET", path: `/Users?filter=userName+eq+%22dave@okta.example%22&startIndex=1&count=100`, status: 200,
			check: all(total(0), field("startIndex", 1), field("itemsPerPage", 0),
				field("schemas", []any{"urn:ietf:params:scim:api:messages:2.0:ListResponse"}))},
		{method: "POST", path: "/Users", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dave@okta.example",
			"name":{"givenName":"Dave","familyName":"Jones"},"emails":[{"primary":true,"value":"dave@okta.example","type":"work"}],
			"displayName":"Dave Jones","locale":"en-US","externalId":"00u1abcd","groups":[],"password":"x","active":true}`, status: 201, save: "dave"},
		{method: "GET", path: `/Users?filter=userName+eq+%22dave@okta.example%22&startIndex=1&count=100`, status: 200, check: total(1, "{dave}")},
	}},
	{"PUT replaces the whole user; active false by PUT deactivates [okta-scim20]", []step{
		{method: "POST", path: "/Users", body: aliceJSON, status: 201, save: "u"},
		{method: "PUT", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"{u}",
			"userName":"alice@contoso.example","name":{"givenName":"Alicia","familyName":"Smith"},
			"emails":[{"primary":true,"value":"alice@contoso.example","type":"work"}],"active":true}`,
			check: all(field("name.givenName", "Alicia"), field("displayName", nil),
				field(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`, nil), deprovisioned())},
		{method: "PUT", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"{u}",
			"userName":"alice@contoso.example","active":false}`, check: all(field("active", false), deprovisioned("u"))},
	}},
	{"deactivate by no-path PATCH replace {active:false}, reactivate [okta-scim20]", []step{
		{method: "POST", path: "/Users", body: userJSON("erin@okta.example"), status: 201, save: "u"},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"replace","value":{"active":false}}]}`, check: all(field("active", false), deprovisioned("u"))},
		{method: "PATCH", path: "/Users/{u}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"replace","value":{"active":true}}]}`, check: field("active", true)},
	}},
	{"Group Push: create with members, rename with id in value, add and remove members [okta-scim20]", []step{
		{method: "POST", path: "/Users", body: userJSON("p1@okta.example"), status: 201, save: "u1"},
		{method: "POST", path: "/Users", body: userJSON("p2@okta.example"), status: 201, save: "u2"},
		{method: "GET", path: `/Groups?startIndex=1&count=100`, status: 200},
		{method: "POST", path: "/Groups", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering",
			"members":[{"value":"{u1}","display":"p1@okta.example"}]}`, status: 201, save: "g", check: members("{u1}")},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"replace","value":{"id":"{g}","displayName":"Engineering Team"}}]}`, check: all(field("displayName", "Engineering Team"), members("{u1}"))},
		{method: "PATCH", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"remove","path":"members[value eq \"{u1}\"]"},{"op":"add","path":"members","value":[{"value":"{u2}","display":"p2@okta.example"}]}]}`,
			check: members("{u2}")},
		{method: "PUT", path: "/Groups/{g}", status: 200, body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"{g}","displayName":"Engineering Team",
			"members":[{"value":"{u1}"},{"value":"{u2}"}]}`, check: members("{u1}", "{u2}")},
	}},
	{"paging with startIndex and count [okta-scim20]", func() []step {
		var s []step
		for i := range 5 {
			s = append(s, step{method: "POST", path: "/Users", body: userJSON(fmt.Sprintf("page%d@okta.example", i)), status: 201,
				save: fmt.Sprintf("p%d", i)})
		}
		return append(s,
			step{method: "GET", path: "/Users?startIndex=2&count=2", status: 200, check: all(total(5, "{p1}", "{p2}"),
				field("startIndex", 2), field("itemsPerPage", 2))},
			step{method: "GET", path: "/Users?startIndex=5&count=2", status: 200, check: total(5, "{p4}")},
			step{method: "GET", path: "/Users?count=0", status: 200, check: total(5)},
		)
	}()},
}

// TestErrors: every SCIM error case, with its status and scimType
// (RFC 7644 section 3.12).
func TestErrors(t *testing.T) {
	patch := func(ops string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + ops + `]}`
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			f := newFixture(t, st)
			f.run(t, []step{
				{method: "POST", path: "/Users", body: userJSON("taken@err.example"), status: 201, save: "u"},
				{method: "POST", path: "/Users", body: userJSON("other@err.example"), status: 201, save: "other"},
			})
			for _, tc := range []struct {
				name string
				step step
			}{
				{"409 uniqueness: userName taken (other case)", step{method: "POST", path: "/Users", body: userJSON("TAKEN@err.example"), status: 409, scimType: "uniqueness"}},
				{"409 uniqueness: rename onto a taken userName", step{method: "PATCH", path: "/Users/{other}", body: patch(`{"op":"replace","path":"userName","value":"taken@err.example"}`), status: 409, scimType: "uniqueness"}},
				{"404 unknown user", step{method: "GET", path: "/Users/nope", status: 404}},
				{"404 unknown group", step{method: "PATCH", path: "/Groups/nope", body: patch(`{"op":"add","path":"members","value":[]}`), status: 404}},
				{"404 unknown endpoint", step{method: "GET", path: "/Bulk", status: 404}},
				{"400 invalidFilter: unsupported operator", step{method: "GET", path: `/Users?filter=userName+co+%22a%22`, status: 400, scimType: "invalidFilter"}},
				{"400 invalidFilter: or", step{method: "GET", path: `/Users?filter=userName+eq+%22a%22+or+userName+eq+%22b%22`, status: 400, scimType: "invalidFilter"}},
				{"400 invalidFilter: does not parse", step{method: "GET", path: `/Users?filter=userName+eq`, status: 400, scimType: "invalidFilter"}},
				{"400 invalidFilter: group attribute on users", step{method: "GET", path: `/Users?filter=displayName+eq+%22x%22`, status: 400, scimType: "invalidFilter"}},
				{"400 invalidValue: no userName", step{method: "POST", path: "/Users", body: `{"displayName":"x"}`, status: 400, scimType: "invalidValue"}},
				{"400 invalidValue: active not a boolean", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"active","value":"maybe"}`), status: 400, scimType: "invalidValue"}},
				{"400 invalidValue: no-path op without an object", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","value":"x"}`), status: 400, scimType: "invalidValue"}},
				{"400 invalidValue: group without displayName", step{method: "POST", path: "/Groups", body: `{"members":[]}`, status: 400, scimType: "invalidValue"}},
				{"400 invalidValue: startIndex not a number", step{method: "GET", path: "/Users?startIndex=x", status: 400, scimType: "invalidValue"}},
				{"400 invalidPath: unknown attribute", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"favouriteColour","value":"x"}`), status: 400, scimType: "invalidPath"}},
				{"400 invalidPath: unparsable path", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"emails[type eq","value":"x"}`), status: 400, scimType: "invalidPath"}},
				{"400 invalidPath: unknown schema", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"urn:example:other:2.0:User:x","value":"x"}`), status: 400, scimType: "invalidPath"}},
				{"400 invalidPath: filter on a single-valued attribute", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"userName[value eq \"x\"]","value":"x"}`), status: 400, scimType: "invalidPath"}},
				{"400 mutability: groups is read-only", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"add","path":"groups","value":[{"value":"g"}]}`), status: 400, scimType: "mutability"}},
				{"400 noTarget: remove without path", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"remove"}`), status: 400, scimType: "noTarget"}},
				{"400 invalidSyntax: unknown op", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"move","path":"userName"}`), status: 400, scimType: "invalidSyntax"}},
				{"400 invalidSyntax: no operations", step{method: "PATCH", path: "/Users/{u}", body: patch(``), status: 400, scimType: "invalidSyntax"}},
				{"400 invalidSyntax: not JSON", step{method: "POST", path: "/Users", body: `{"userName":`, status: 400, scimType: "invalidSyntax"}},
				{"412 stale If-Match", step{method: "PUT", path: "/Users/{u}", body: userJSON("taken@err.example"), headers: []string{"If-Match", `W/"99"`}, status: 412}},
				{"412 stale If-Match on PATCH", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"displayName","value":"x"}`), headers: []string{"If-Match", `W/"99"`}, status: 412}},
				{"412 stale If-Match on DELETE", step{method: "DELETE", path: "/Users/{u}", headers: []string{"If-Match", `W/"99"`}, status: 412}},
				{"200 current If-Match", step{method: "PATCH", path: "/Users/{u}", body: patch(`{"op":"replace","path":"displayName","value":"x"}`), headers: []string{"If-Match", `W/"1"`}, status: 200,
					check: func(t *testing.T, f *fixture, r response) {
						if r.header.Get("ETag") != `W/"2"` {
							t.Fatalf("ETag after update = %q", r.header.Get("ETag"))
						}
					}}},
				{"413 body too large", step{method: "POST", path: "/Users", body: `{"userName":"big","displayName":"` + string(make([]byte, 300<<10)) + `"}`, status: 413}},
				{"401 no token", step{method: "GET", path: "/Users", headers: []string{"Authorization", ""}, status: 401}},
				{"401 wrong secret", step{method: "GET", path: "/Users", headers: []string{"Authorization", "Bearer {badsecret}"}, status: 401}},
				{"401 not a bearer token", step{method: "GET", path: "/Users", headers: []string{"Authorization", "Basic {token}"}, status: 401}},
				{"401 token of another connection", step{method: "GET", path: "/scim/v2/globex/Users", status: 401}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					f.ids["token"] = f.token
					f.ids["badsecret"] = f.token[:len(f.token)-2] + "xx"
					f.run(t, []step{tc.step})
				})
			}
			t.Run("401 revoked token", func(t *testing.T) {
				tok, secret, err := scim.CreateToken(t.Context(), st, rand.Reader, "acme", time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if err := st.RevokeScimToken(t.Context(), "acme", tok.ID, time.Now()); err != nil {
					t.Fatal(err)
				}
				f.run(t, []step{{method: "GET", path: "/Users", headers: []string{"Authorization", "Bearer " + secret}, status: 401}})
			})
			t.Run("404 connection that no longer exists", func(t *testing.T) {
				_, secret, err := scim.CreateToken(t.Context(), st, rand.Reader, "gone", time.Now())
				if err != nil {
					t.Fatal(err)
				}
				f.run(t, []step{{method: "GET", path: "/scim/v2/gone/Users", headers: []string{"Authorization", "Bearer " + secret}, status: 404}})
			})
			t.Run("429 rate limited, with Retry-After", func(t *testing.T) {
				f.limiter.deny = true
				t.Cleanup(func() { f.limiter.deny = false })
				f.run(t, []step{{method: "GET", path: "/Users", status: 429, check: func(t *testing.T, f *fixture, r response) {
					if r.header.Get("Retry-After") != "3" {
						t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
					}
				}}})
			})
			t.Run("500 when the hook fails; the retry runs it", func(t *testing.T) {
				f.hooks.failNext = true
				body := patch(`{"op":"Replace","path":"active","value":false}`)
				f.run(t, []step{
					{method: "PATCH", path: "/Users/{other}", body: body, status: 500},
					{method: "PATCH", path: "/Users/{other}", body: body, status: 200, check: deprovisioned("other")},
				})
			})
		})
	}
}
