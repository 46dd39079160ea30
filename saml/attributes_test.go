package saml

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestAttributeMappingDefaultsPerIdP(t *testing.T) {
	const ms = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
	tests := []struct {
		idp  string
		raw  map[string][]string
		want MappedAttributes
	}{
		{"Entra ID", map[string][]string{
			ms + "emailaddress": {"alice@contoso.com"},
			ms + "name":         {"alice@contoso.onmicrosoft.com"},
			ms + "givenname":    {"Alice"},
			ms + "surname":      {"Liddell"},
			"http://schemas.microsoft.com/identity/claims/displayname": {"Alice Liddell"},
			"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": {
				"8f2c1a2b-0000-4000-8000-000000000001", "8f2c1a2b-0000-4000-8000-000000000002"},
			"http://schemas.microsoft.com/identity/claims/tenantid": {"4f7c1a2b"},
		}, MappedAttributes{Email: "alice@contoso.com", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"8f2c1a2b-0000-4000-8000-000000000001", "8f2c1a2b-0000-4000-8000-000000000002"}}},
		{"Entra ID without email claim uses the UPN name claim", map[string][]string{
			ms + "name": {"bob@contoso.com"},
		}, MappedAttributes{Email: "bob@contoso.com"}},
		{"ADFS", map[string][]string{
			ms + "upn":          {"alice@corp.contoso.com"},
			ms + "emailaddress": {"alice@contoso.com"},
			ms + "givenname":    {"Alice"},
			ms + "surname":      {"Liddell"},
			"http://schemas.xmlsoap.org/claims/Group": {"Domain Users", "Finance"},
		}, MappedAttributes{Email: "alice@contoso.com", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"Domain Users", "Finance"}}},
		{"Okta", map[string][]string{
			"email": {"alice@acme.com"}, "firstName": {"Alice"}, "lastName": {"Liddell"}, "groups": {"Everyone", "eng"},
		}, MappedAttributes{Email: "alice@acme.com", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"Everyone", "eng"}}},
		{"OneLogin", map[string][]string{
			"User.email": {"alice@acme.com"}, "User.FirstName": {"Alice"}, "User.LastName": {"Liddell"}, "memberOf": {"admins"},
		}, MappedAttributes{Email: "alice@acme.com", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"admins"}}},
		{"Google Workspace", map[string][]string{
			"Email": {"alice@example.org"}, "FirstName": {"Alice"}, "LastName": {"Liddell"},
		}, MappedAttributes{Email: "alice@example.org", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell"}},
		{"PingFederate", map[string][]string{
			"mail": {"alice@ping.example"}, "givenName": {"Alice"}, "sn": {"Liddell"}, "displayName": {"Dr. Alice Liddell"},
			"memberOf": {"cn=eng,ou=groups,dc=ping,dc=example"},
		}, MappedAttributes{Email: "alice@ping.example", Name: "Dr. Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"cn=eng,ou=groups,dc=ping,dc=example"}}},
		{"Shibboleth (urn:oid names)", map[string][]string{
			"urn:oid:0.9.2342.19200300.100.1.3": {"alice@uni.example"},
			"urn:oid:2.5.4.42":                  {"Alice"},
			"urn:oid:2.5.4.4":                   {"Liddell"},
			"urn:oid:2.16.840.1.113730.3.1.241": {"Alice Liddell"},
			"urn:oid:1.3.6.1.4.1.5923.1.5.1.1":  {"staff"},
		}, MappedAttributes{Email: "alice@uni.example", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"staff"}}},
		{"pysaml2 / Shibboleth (urn:mace:dir names)", map[string][]string{
			"urn:mace:dir:attribute-def:uid":         {"alice"},
			"urn:mace:dir:attribute-def:mail":        {"alice@uni.example"},
			"urn:mace:dir:attribute-def:givenName":   {"Alice"},
			"urn:mace:dir:attribute-def:sn":          {"Liddell"},
			"urn:mace:dir:attribute-def:displayName": {"Alice P. Liddell"},
			"urn:mace:dir:attribute-def:isMemberOf":  {"staff"},
		}, MappedAttributes{Email: "alice@uni.example", Name: "Alice P. Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"staff"}}},
		{"urn:mace:dir email and eduPersonPrincipalName", map[string][]string{
			"urn:mace:dir:attribute-def:eduPersonPrincipalName": {"alice@uni.example"},
		}, MappedAttributes{Email: "alice@uni.example"}},
		{"Keycloak", map[string][]string{
			"email": {"alice@kc.example"}, "givenName": {"Alice"}, "surname": {"Liddell"}, "Role": {"user", "admin"},
		}, MappedAttributes{Email: "alice@kc.example", Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell",
			Groups: []string{"user", "admin"}}},
		{"values trimmed, empty skipped, groups deduplicated", map[string][]string{
			"email": {"  ", ""}, "mail": {" alice@x.example "}, "groups": {"a", " b ", "a", ""},
		}, MappedAttributes{Email: "alice@x.example", Groups: []string{"a", "b"}}},
		{"nothing known", map[string][]string{"favouriteColour": {"blue"}}, MappedAttributes{}},
		{"only given name", map[string][]string{"givenName": {"Alice"}}, MappedAttributes{Name: "Alice", GivenName: "Alice"}},
	}
	for _, tc := range tests {
		t.Run(tc.idp, func(t *testing.T) {
			for _, m := range []AttributeMapping{nil, {}} {
				if got := m.Apply(tc.raw); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Apply (mapping %#v)\n got  %+v\n want %+v", m, got, tc.want)
				}
			}
		})
	}
}

func TestNameIDEmailFallback(t *testing.T) {
	tests := []struct {
		name    string
		m       AttributeMapping
		raw     map[string][]string
		nameID  string
		format  string
		wantOut string
	}{
		{"emailAddress NameID fills a missing email", nil, nil, "alice@acme.com", NameIDFormatEmail, "alice@acme.com"},
		{"an email attribute wins", nil, map[string][]string{"mail": {"a@x.example"}}, "alice@acme.com", NameIDFormatEmail, "a@x.example"},
		{"other formats do not count", nil, nil, "alice@acme.com", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", ""},
		{"not an address", nil, nil, "alice", NameIDFormatEmail, ""},
		{"a mapping naming email is obeyed", AttributeMapping{ClaimEmail: {"workEmail"}}, nil, "alice@acme.com", NameIDFormatEmail, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.withNameIDEmail(tc.m.Apply(tc.raw), tc.nameID, tc.format)
			if got.Email != tc.wantOut {
				t.Errorf("email = %q, want %q", got.Email, tc.wantOut)
			}
		})
	}
}

func TestAttributeMappingOverrides(t *testing.T) {
	raw := map[string][]string{
		"email":          {"default@x.example"},
		"workEmail":      {"work@x.example"},
		"givenName":      {"Alice"},
		"department":     {"Finance", "Audit"},
		"employeeNumber": {"42"},
		"teams":          {"red", "blue"},
		"uid":            {"attacker-chosen"},
	}
	tests := []struct {
		name string
		m    AttributeMapping
		want MappedAttributes
	}{
		{"override email, rest default", AttributeMapping{ClaimEmail: {"workEmail"}},
			MappedAttributes{Email: "work@x.example", Name: "Alice", GivenName: "Alice"}},
		{"override is exclusive, no fallback to defaults", AttributeMapping{ClaimEmail: {"missing"}},
			MappedAttributes{Name: "Alice", GivenName: "Alice"}},
		{"ordered alternatives", AttributeMapping{ClaimEmail: {"missing", "workEmail", "email"}},
			MappedAttributes{Email: "work@x.example", Name: "Alice", GivenName: "Alice"}},
		{"groups from another multi-valued attribute", AttributeMapping{ClaimGroups: {"teams"}},
			MappedAttributes{Email: "default@x.example", Name: "Alice", GivenName: "Alice", Groups: []string{"red", "blue"}}},
		{"empty list means default", AttributeMapping{ClaimEmail: {}},
			MappedAttributes{Email: "default@x.example", Name: "Alice", GivenName: "Alice"}},
		{"extra claims", AttributeMapping{"department": {"department"}, "employee_id": {"employeeNumber"}, "absent": {"nope"}},
			MappedAttributes{Email: "default@x.example", Name: "Alice", GivenName: "Alice",
				Extra: map[string][]string{"department": {"Finance", "Audit"}, "employee_id": {"42"}}}},
		{"reserved claims never produced, even unvalidated", AttributeMapping{"sub": {"uid"}, "roles": {"teams"}, "tenant": {"uid"}},
			MappedAttributes{Email: "default@x.example", Name: "Alice", GivenName: "Alice"}},
		{"invalid claim names never produced", AttributeMapping{"Bad-Name": {"uid"}},
			MappedAttributes{Email: "default@x.example", Name: "Alice", GivenName: "Alice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Apply(raw); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAttributeMappingValidate(t *testing.T) {
	for _, c := range ReservedClaims {
		t.Run("reserved "+c, func(t *testing.T) {
			err := AttributeMapping{c: {"x"}}.Validate()
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("claim %q is reserved", c)) {
				t.Fatalf("error = %v", err)
			}
		})
	}
	tests := []struct {
		name string
		m    AttributeMapping
		want string
	}{
		{"nil", nil, ""},
		{"defaults", DefaultAttributeMapping(), ""},
		{"extra", AttributeMapping{"department": {"dept"}, ClaimEmail: {"mail"}}, ""},
		{"upper case", AttributeMapping{"Department": {"dept"}}, "must match"},
		{"leading digit", AttributeMapping{"1x": {"dept"}}, "must match"},
		{"empty claim", AttributeMapping{"": {"dept"}}, "must match"},
		{"empty attribute name", AttributeMapping{"department": {"dept", " "}}, `claim "department": attribute name 2 is empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAttributeMappingGroupsBounded(t *testing.T) {
	groups := make([]string, maxGroups+10)
	for i := range groups {
		groups[i] = fmt.Sprintf("g%d", i)
	}
	got := AttributeMapping(nil).Apply(map[string][]string{"groups": groups})
	if len(got.Groups) != maxGroups || got.Groups[1999] != "g1999" {
		t.Fatalf("%d groups kept", len(got.Groups))
	}
}

// Entra ID's group overage (a groups.link instead of the groups) and the
// OIDC distributed-claims form are recognised; an ordinary groups
// attribute, or none, is not an overage.
func TestGroupsOverage(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string][]string
		want bool
	}{
		{"entra groups.link", map[string][]string{EntraGroupsLinkAttribute: {"https://graph.windows.net/t/users/u/getMemberObjects"}}, true},
		{"groups.link, other case", map[string][]string{"http://schemas.microsoft.com/claims/Groups.Link": {"https://graph.microsoft.com/v1.0/users/u/getMemberObjects"}}, true},
		{"empty groups.link", map[string][]string{EntraGroupsLinkAttribute: {" "}}, false},
		{"_claim_names", map[string][]string{"_claim_names": {`{"groups":"src1"}`}, "_claim_sources": {`{"src1":{"endpoint":"https://graph.microsoft.com/v1.0/users/u/getMemberObjects"}}`}}, true},
		{"_claim_names without groups", map[string][]string{"_claim_names": {`{"roles":"src1"}`}}, false},
		{"groups sent", map[string][]string{"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": {"a", "b"}}, false},
		{"nothing", map[string][]string{}, false},
	} {
		if got := (AttributeMapping{}).Apply(tc.raw).GroupsOverage; got != tc.want {
			t.Errorf("%s: GroupsOverage = %v, want %v", tc.name, got, tc.want)
		}
	}
}
