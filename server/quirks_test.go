package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

// Per-connection IdP quirks: clock_skew, Entra ID's group overage and
// group_names, over the wire (a signing IdP, real listeners, the audit log).

const quirksHome = wireReturnTo + "/home"

// unsolicitedConn is an IdP-initiated connection to idp that answers the
// ACS with a code at once (no consent page), with set on top.
func unsolicitedConn(idp *unsolicitedIdP, id string, set map[string]any) wireConn {
	m := map[string]any{"identity_provider": idp.identityProvider(), "allow_idp_initiated": true,
		"idp_initiated_consent": false, "default_return_url": quirksHome}
	for k, v := range set {
		m[k] = v
	}
	return wireConn{id: id, set: m}
}

// exchange turns an ACS answer that must be a success into its tokens.
func (f *wireFixture) exchange(t *testing.T, a acsAnswer) *ssogatev1.TokenSet {
	t.Helper()
	code := wantCodeRedirect(t, a, quirksHome)
	ex, err := f.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	return ex.TokenSet
}

// tokenGroups reads the groups claim of an access token (its signature is
// other tests' business).
func tokenGroups(t *testing.T, jwt string) []string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Groups []string `json:"groups"`
		Roles  []string `json:"roles"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Groups
}

// An assertion whose NotBefore is 3 minutes ahead (an IdP clock 3 minutes
// fast, stamping NotBefore with no margin) is refused as NOT_YET_VALID
// with the service's 60 s skew, in words that send the IdP admin to the
// clock and to the connection's clock_skew, and accepted by a connection
// with clock_skew 5m.
func TestConnectionClockSkew(t *testing.T) {
	idp := newUnsolicitedIdP(t)
	f := newWireFixture(t, []wireConn{
		unsolicitedConn(idp, "strict", nil),
		unsolicitedConn(idp, "lenient", map[string]any{"clock_skew": "300s"}),
	})
	ahead := func(a *crewsaml.Assertion) {
		now := time.Now()
		a.Conditions.NotBefore = now.Add(3 * time.Minute)
		a.Conditions.NotOnOrAfter = now.Add(8 * time.Minute)
	}

	a := f.postACS(t, "strict", idp.respondEdited(t, f.spMetadata(t, "strict"), devAlice, ahead), "")
	ev := f.auditEvent(t, auditLoginFailed, a.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_NOT_YET_VALID, "strict",
		"NotBefore", "clock skew of 1m0s", "IdP's clock", "clock_skew")
	wantGenericPage(t, a, http.StatusBadRequest, ev)

	ts := f.exchange(t, f.postACS(t, "lenient", idp.respondEdited(t, f.spMetadata(t, "lenient"), devAlice, ahead), ""))
	if ts.Identity.Email != devAlice.Email {
		t.Errorf("identity %v", ts.Identity)
	}
}

// clock_skew outside 0..10m is refused on create and on update with
// CONNECTION_INVALID naming connection.clock_skew.
func TestConnectionQuirkFieldsValidated(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}})
	cc := f.ts.dial(t, testAdminKey)
	methodUpdateConnection := apiMethod{"/ssogate.v1.ConnectionService/UpdateConnection", "",
		func() proto.Message { return &ssogatev1.UpdateConnectionRequest{} }, func() proto.Message { return &ssogatev1.UpdateConnectionResponse{} }}
	bigNames := map[string]string{}
	for i := 0; i <= maxGroupNames; i++ {
		bigNames[fmt.Sprintf("g%d", i)] = "n"
	}
	big, _ := json.Marshal(bigNames)
	for _, tc := range []struct {
		name, set, field string
	}{
		{"skew over 10m", `"clockSkew":"601s"`, "connection.clock_skew"},
		{"negative skew", `"clockSkew":"-1s"`, "connection.clock_skew"},
		{"empty group name", `"groupNames":{"9f1c":""}`, `connection.group_names["9f1c"]`},
		{"empty group key", `"groupNames":{"":"Engineering"}`, "connection.group_names"},
		{"too many group names", `"groupNames":` + string(big), "connection.group_names"},
		{"long group name", `"groupNames":{"9f1c":"` + strings.Repeat("é", 257) + `"}`, `connection.group_names["9f1c"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			create := `{"connection":{"id":"` + id + `","tenantId":"t",` + tc.set + `}}`
			st, info, fields := grpcErrorInfo(t, cc, methodCreateConnection, create)
			if st.Code() != codes.InvalidArgument || info.GetReason() != "CONNECTION_INVALID" || !slices.Contains(fields, tc.field) {
				t.Errorf("create: %v %v %v, want INVALID_ARGUMENT CONNECTION_INVALID naming %s", st, info.GetReason(), fields, tc.field)
			}
			update := `{"connection":{"id":"acme",` + tc.set + `}}`
			st, info, fields = grpcErrorInfo(t, cc, methodUpdateConnection, update)
			if st.Code() != codes.InvalidArgument || info.GetReason() != "CONNECTION_INVALID" || !slices.Contains(fields, tc.field) {
				t.Errorf("update: %v %v %v, want INVALID_ARGUMENT CONNECTION_INVALID naming %s", st, info.GetReason(), fields, tc.field)
			}
		})
	}
	// The bounds themselves are accepted.
	for _, set := range []string{`"clockSkew":"600s"`, `"clockSkew":"0s"`, `"groupNames":{"9f1c":"Engineering"}`} {
		st, _, _ := grpcErrorInfo(t, cc, methodUpdateConnection, `{"connection":{"id":"acme",`+set+`}}`)
		if st.Code() != codes.OK {
			t.Errorf("update with %s: %v", set, st)
		}
	}
}

// entraOverage turns an assertion into what Entra ID sends for a user in
// more than 150 groups: no groups attribute, a groups.link instead.
func entraOverage(a *crewsaml.Assertion) {
	for i := range a.AttributeStatements {
		attrs := a.AttributeStatements[i].Attributes[:0]
		for _, at := range a.AttributeStatements[i].Attributes {
			if at.Name != "urn:oid:1.3.6.1.4.1.5923.1.1.1.1" && at.FriendlyName != "eduPersonAffiliation" {
				attrs = append(attrs, at)
			}
		}
		a.AttributeStatements[i].Attributes = attrs
	}
	a.AttributeStatements[0].Attributes = append(a.AttributeStatements[0].Attributes, crewsaml.Attribute{
		Name: saml.EntraGroupsLinkAttribute,
		Values: []crewsaml.AttributeValue{{Type: "xs:string",
			Value: "https://graph.windows.net/8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b/users/5f2e8b1c-7d3a-4e6f-9a1b-2c3d4e5f6a7b/getMemberObjects"}},
	})
}

// A login with Entra ID's group overage is refused as GROUP_OVERAGE when
// the policy depends on groups (allowed_groups, or role_mappings), with
// the fix in the message; without a group policy it proceeds; with
// groups from the directory (SCIM, groups_source DIRECTORY) the policy
// decides on those.
func TestEntraGroupOverage(t *testing.T) {
	idp := newUnsolicitedIdP(t)
	f := newWireFixture(t, []wireConn{
		unsolicitedConn(idp, "allowed", map[string]any{"access_policy": map[string]any{"allowed_groups": []any{"eng"}}}),
		unsolicitedConn(idp, "roles", map[string]any{"access_policy": map[string]any{
			"role_mappings": []any{map[string]any{"group": "admins", "roles": []any{"admin"}}}}}),
		unsolicitedConn(idp, "open", nil),
		unsolicitedConn(idp, "dir", map[string]any{"groups_source": "GROUPS_SOURCE_DIRECTORY",
			"access_policy": map[string]any{"allowed_groups": []any{"eng"}}}),
	})
	for _, conn := range []string{"allowed", "roles"} {
		t.Run("refused/"+conn, func(t *testing.T) {
			a := f.postACS(t, conn, idp.respondEdited(t, f.spMetadata(t, conn), devAlice, entraOverage), "")
			ev := f.auditEvent(t, auditLoginFailed, a.requestID)
			wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_GROUP_OVERAGE, conn,
				saml.EntraGroupsLinkAttribute, "150 groups", `"Groups assigned to the application"`, "groups_source", "SCIM")
			wantGenericPage(t, a, http.StatusForbidden, ev)
		})
	}
	t.Run("no group policy proceeds", func(t *testing.T) {
		ts := f.exchange(t, f.postACS(t, "open", idp.respondEdited(t, f.spMetadata(t, "open"), devAlice, entraOverage), ""))
		if len(ts.Identity.Groups) != 0 || ts.Identity.Email != devAlice.Email {
			t.Errorf("identity %v", ts.Identity)
		}
	})
	t.Run("directory groups decide", func(t *testing.T) {
		scim := f.scimClient(t, "dir")
		alice := scim.createUser(t, devAlice.Email)
		scim.must(t, 201, "POST", "/Groups", fmt.Sprintf(`{"displayName":"eng","members":[{"value":%q}]}`, alice))
		ts := f.exchange(t, f.postACS(t, "dir", idp.respondEdited(t, f.spMetadata(t, "dir"), devAlice, entraOverage), ""))
		if got := tokenGroups(t, ts.AccessToken); !slices.Equal(got, []string{"eng"}) {
			t.Errorf("token groups %v, want the directory's [eng]", got)
		}
		// bob is in the directory in no group: the directory, not the
		// overage, decides (a policy denial).
		scim.createUser(t, devBob.Email)
		a := f.postACS(t, "dir", idp.respondEdited(t, f.spMetadata(t, "dir"), devBob, entraOverage), "")
		wantAudit(t, f.auditEvent(t, auditLoginDenied, a.requestID), ssogatev1.RejectionReason_REJECTION_REASON_POLICY_DENIED, "dir", "[none]")
	})
}

// group_names renames group values (Entra ID object IDs) before the
// policy and the token: a GUID mapped to "Engineering" passes
// allowed_groups ["Engineering"] and is "Engineering" in the token;
// unlisted values pass unchanged.
func TestGroupNames(t *testing.T) {
	const engGUID, otherGUID = "9f1c2e4a-7b3d-4c5e-8f6a-1b2c3d4e5f60", "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
	idp := newUnsolicitedIdP(t)
	f := newWireFixture(t, []wireConn{
		unsolicitedConn(idp, "named", map[string]any{
			"group_names":   map[string]any{engGUID: "Engineering"},
			"access_policy": map[string]any{"allowed_groups": []any{"Engineering"}}}),
		unsolicitedConn(idp, "unnamed", map[string]any{
			"access_policy": map[string]any{"allowed_groups": []any{"Engineering"}}}),
	})
	guids := func(a *crewsaml.Assertion) {
		for i := range a.AttributeStatements {
			for j, at := range a.AttributeStatements[i].Attributes {
				if at.Name == "urn:oid:1.3.6.1.4.1.5923.1.1.1.1" || at.FriendlyName == "eduPersonAffiliation" {
					a.AttributeStatements[i].Attributes[j].Values = []crewsaml.AttributeValue{
						{Type: "xs:string", Value: engGUID}, {Type: "xs:string", Value: otherGUID}}
				}
			}
		}
	}
	ts := f.exchange(t, f.postACS(t, "named", idp.respondEdited(t, f.spMetadata(t, "named"), devAlice, guids), ""))
	want := []string{"Engineering", otherGUID}
	if got := tokenGroups(t, ts.AccessToken); !slices.Equal(got, want) {
		t.Errorf("token groups %v, want %v", got, want)
	}
	if !slices.Equal(ts.Identity.Groups, want) {
		t.Errorf("identity groups %v, want %v", ts.Identity.Groups, want)
	}

	// Without the mapping the GUID is not "Engineering": denied.
	a := f.postACS(t, "unnamed", idp.respondEdited(t, f.spMetadata(t, "unnamed"), devAlice, guids), "")
	ev := f.auditEvent(t, auditLoginDenied, a.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_POLICY_DENIED, "unnamed", engGUID)
}
