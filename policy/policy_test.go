package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	p := Policy{
		AllowedGroups:      []string{"eng", "admins"},
		RequiredAttributes: map[string][]string{"department": {"R&D", "IT"}},
		RoleMappings: []RoleMapping{
			{Group: "admins", Roles: []string{"admin", "viewer"}},
			{Group: "eng", Roles: []string{"viewer", "editor"}},
			{Group: "sales", Roles: []string{"crm"}},
		},
	}
	tests := []struct {
		name      string
		policy    Policy
		subject   Subject
		wantRoles []string
		wantDeny  []string // substrings of the denial message
	}{
		{name: "empty policy admits", policy: Policy{}, subject: Subject{}, wantRoles: nil},
		{name: "member with attribute", policy: p,
			subject:   Subject{Groups: []string{"eng", "admins"}, Attributes: map[string][]string{"department": {"IT"}}},
			wantRoles: []string{"admin", "editor", "viewer"}},
		{name: "not in an allowed group", policy: p,
			subject:  Subject{Groups: []string{"sales"}, Attributes: map[string][]string{"department": {"IT"}}},
			wantDeny: []string{`"sales"`, `"eng", "admins"`}},
		{name: "group match is case-sensitive", policy: p,
			subject:  Subject{Groups: []string{"Admins"}, Attributes: map[string][]string{"department": {"IT"}}},
			wantDeny: []string{`"Admins"`}},
		{name: "attribute missing", policy: p,
			subject:  Subject{Groups: []string{"eng"}},
			wantDeny: []string{`attribute "department" is missing`, `"R&D", "IT"`}},
		{name: "attribute wrong value", policy: p,
			subject:  Subject{Groups: []string{"eng"}, Attributes: map[string][]string{"department": {"Sales"}}},
			wantDeny: []string{`attribute "department" was ["Sales"]`}},
		{name: "roles only from mapping", policy: Policy{RoleMappings: p.RoleMappings},
			subject: Subject{Groups: []string{"sales", "unknown"}}, wantRoles: []string{"crm"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roles, err := tc.policy.Decide(tc.subject)
			if tc.wantDeny != nil {
				var d *Denied
				if !errors.As(err, &d) {
					t.Fatalf("Decide = %v, %v; want a denial", roles, err)
				}
				for _, w := range tc.wantDeny {
					if !strings.Contains(d.Message, w) {
						t.Errorf("denial %q lacks %q", d.Message, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if !reflect.DeepEqual(roles, tc.wantRoles) {
				t.Errorf("roles = %v, want %v", roles, tc.wantRoles)
			}
		})
	}
}

func TestDenialMessageIsBounded(t *testing.T) {
	groups := make([]string, 2000)
	for i := range groups {
		groups[i] = fmt.Sprintf("group-%04d", i)
	}
	_, err := Policy{AllowedGroups: []string{"admins"}}.Decide(Subject{Groups: groups})
	if err == nil || len(err.Error()) > 1000 || !strings.Contains(err.Error(), "1980 more") {
		t.Fatalf("denial for 2,000 groups: %d bytes: %.200v", len(fmt.Sprint(err)), err)
	}
}

func TestUsesGroups(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want bool
	}{
		{Policy{}, false},
		{Policy{RequiredAttributes: map[string][]string{"dept": {"eng"}}}, false},
		{Policy{AllowedGroups: []string{"eng"}}, true},
		{Policy{RoleMappings: []RoleMapping{{Group: "admins", Roles: []string{"admin"}}}}, true},
	} {
		if got := tc.p.UsesGroups(); got != tc.want {
			t.Errorf("%+v.UsesGroups() = %v, want %v", tc.p, got, tc.want)
		}
	}
}
