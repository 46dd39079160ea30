package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// scimClient speaks SCIM to one connection of a running server.
type scimClient struct {
	base, token string
}

func (f *wireFixture) scimClient(t *testing.T, connID string) scimClient {
	t.Helper()
	admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
	resp, err := admin.CreateScimToken(context.Background(), &ssogatev1.CreateScimTokenRequest{ConnectionId: connID})
	if err != nil {
		t.Fatal(err)
	}
	return scimClient{base: f.ts.httpURL + "/scim/v2/" + connID, token: resp.Secret}
}

// do sends a SCIM request and returns the status and the decoded body.
func (c scimClient) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func (c scimClient) must(t *testing.T, want int, method, path, body string) map[string]any {
	t.Helper()
	status, m := c.do(t, method, path, body)
	if status != want {
		t.Fatalf("SCIM %s %s = %d, want %d: %v", method, path, status, want, m)
	}
	return m
}

func (c scimClient) createUser(t *testing.T, email string) string {
	t.Helper()
	m := c.must(t, 201, "POST", "/Users", fmt.Sprintf(`{"userName":%q,"emails":[{"primary":true,"value":%q}],"active":true}`, email, email))
	return m["id"].(string)
}

func (c scimClient) setActive(t *testing.T, id string, active bool) {
	t.Helper()
	// As Entra ID sends it: capitalised op, the boolean as a string.
	v := map[bool]string{true: "True", false: "False"}[active]
	c.must(t, 200, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Replace","path":"active","value":"`+v+`"}]}`)
}

// session logs user in and returns the token set.
func (f *wireFixture) session(t *testing.T, connID, user string) *ssogatev1.TokenSet {
	t.Helper()
	ex, err := f.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, connID, user)})
	if err != nil {
		t.Fatal(err)
	}
	return ex.TokenSet
}

func (f *wireFixture) valid(t *testing.T, ts *ssogatev1.TokenSet) bool {
	t.Helper()
	v, err := f.login.ValidateToken(context.Background(), &ssogatev1.ValidateTokenRequest{AccessToken: ts.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	return v.Valid
}

// directoryConn is a connection whose policy admits members of the
// directory group "eng" only.
var directoryConn = wireConn{id: "dir", set: map[string]any{
	"groups_source": "GROUPS_SOURCE_DIRECTORY",
	"access_policy": map[string]any{"allowed_groups": []any{"eng"}},
}}

func TestOffboarding(t *testing.T) {
	f := newWireFixture(t, []wireConn{directoryConn, {id: "strict", set: map[string]any{"require_provisioned": true}}})
	scim := f.scimClient(t, "dir")
	alice := scim.createUser(t, "alice@example.com")
	bob := scim.createUser(t, "bob@example.com")
	g := scim.must(t, 201, "POST", "/Groups", fmt.Sprintf(`{"displayName":"eng","members":[{"value":%q},{"value":%q}]}`, alice, bob))["id"].(string)

	// bob's assertion says "sales"; the directory says "eng": the directory
	// decides, and the token's groups claim follows it.
	aliceTokens, bobTokens := f.session(t, "dir", "alice"), f.session(t, "dir", "bob")
	if !f.valid(t, aliceTokens) || !f.valid(t, bobTokens) {
		t.Fatal("fresh tokens not valid")
	}
	v, _ := f.login.ValidateToken(context.Background(), &ssogatev1.ValidateTokenRequest{AccessToken: bobTokens.AccessToken})
	if strings.Join(v.GetIdentity().GetGroups(), ",") != "eng" {
		t.Fatalf("bob's groups = %v, want the directory's [eng]", v.GetIdentity().GetGroups())
	}

	t.Run("deactivation revokes and refuses; reactivation lets in", func(t *testing.T) {
		scim.setActive(t, alice, false)
		if f.valid(t, aliceTokens) {
			t.Fatal("ValidateToken accepts alice's token after SCIM deactivated her")
		}
		if _, err := f.login.RefreshToken(context.Background(), &ssogatev1.RefreshTokenRequest{RefreshToken: aliceTokens.RefreshToken}); err == nil {
			t.Fatal("RefreshToken works after SCIM deactivated her")
		}
		if !f.valid(t, bobTokens) {
			t.Fatal("bob's token was revoked with alice's")
		}
		resp, relay := f.signedResponse(t, "dir", "alice")
		a := f.postACS(t, "dir", resp, relay)
		ev := f.auditEvent(t, "login.failed", a.requestID)
		wantGenericPage(t, a, http.StatusForbidden, ev)
		wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_USER_DEPROVISIONED, "dir", "alice@example.com", "reactivated")

		scim.setActive(t, alice, true)
		aliceTokens = f.session(t, "dir", "alice")
		if !f.valid(t, aliceTokens) {
			t.Fatal("reactivated alice's new token is not valid")
		}
	})

	t.Run("leaving the required group revokes the session", func(t *testing.T) {
		scim.must(t, 200, "PATCH", "/Groups/"+g, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Remove","path":"members","value":[{"value":%q}]}]}`, bob))
		if f.valid(t, bobTokens) {
			t.Fatal("bob's token still valid after he left the group the policy requires")
		}
		if !f.valid(t, aliceTokens) {
			t.Fatal("alice, still in eng, lost her session")
		}
		resp, relay := f.signedResponse(t, "dir", "bob")
		a := f.postACS(t, "dir", resp, relay)
		wantAudit(t, f.auditEvent(t, "login.denied", a.requestID), ssogatev1.RejectionReason_REJECTION_REASON_POLICY_DENIED, "dir", "eng")
	})

	t.Run("deletion revokes and the tombstone keeps refusing", func(t *testing.T) {
		scim.must(t, 204, "DELETE", "/Users/"+alice, "")
		if f.valid(t, aliceTokens) {
			t.Fatal("token valid after SCIM deleted the user")
		}
		// Repeated refusals of one client are audited once a window, so
		// this one shows on the page and the request's log line.
		resp, relay := f.signedResponse(t, "dir", "alice")
		a := f.postACS(t, "dir", resp, relay)
		if a.status != http.StatusForbidden || !strings.Contains(a.body, "deactivated by your organisation") {
			t.Fatalf("login of a deleted user: %d\n%s", a.status, a.body)
		}
	})

	t.Run("require_provisioned refuses users the directory never saw", func(t *testing.T) {
		resp, relay := f.signedResponse(t, "strict", "alice")
		a := f.postACS(t, "strict", resp, relay)
		wantAudit(t, f.auditEvent(t, "login.failed", a.requestID), ssogatev1.RejectionReason_REJECTION_REASON_USER_NOT_PROVISIONED, "strict", "alice@example.com")
		strict := f.scimClient(t, "strict")
		strict.createUser(t, "alice@example.com")
		f.session(t, "strict", "alice")
	})

	t.Run("tokens: listed without secrets, revoked at once; directory needs its scope", func(t *testing.T) {
		admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
		other := f.scimClient(t, "dir")
		list, err := admin.ListScimTokens(context.Background(), &ssogatev1.ListScimTokensRequest{ConnectionId: "dir"})
		if err != nil || len(list.ScimTokens) != 2 {
			t.Fatalf("ListScimTokens: %v %v", list, err)
		}
		last := list.ScimTokens[1]
		if !strings.HasPrefix(other.token, "scim_"+last.Id+".") || strings.Contains(fmt.Sprint(list), other.token) {
			t.Fatalf("token list %v does not name the new token or leaks it", list)
		}
		other.must(t, 200, "GET", "/Users", "")
		if _, err := admin.RevokeScimToken(context.Background(), &ssogatev1.RevokeScimTokenRequest{ConnectionId: "dir", ScimTokenId: last.Id}); err != nil {
			t.Fatal(err)
		}
		other.must(t, 401, "GET", "/Users", "")
		scim.must(t, 200, "GET", "/Users", "")
		if _, err := admin.RevokeScimToken(context.Background(), &ssogatev1.RevokeScimTokenRequest{ConnectionId: "strict", ScimTokenId: last.Id}); status.Code(err) != codes.NotFound {
			t.Fatalf("revoking dir's token through connection strict = %v, want NotFound", err)
		}
		dir := ssogatev1.NewDirectoryServiceClient(f.ts.dial(t, testAdminKey))
		if _, err := dir.ListDirectoryUsers(context.Background(), &ssogatev1.ListDirectoryUsersRequest{ConnectionId: "dir"}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("ListDirectoryUsers with an admin-only key = %v, want PermissionDenied", err)
		}
	})

	t.Run("audit and request log", func(t *testing.T) {
		for _, typ := range []string{"user.provisioned", "user.deprovisioned", "user.updated", "group.updated"} {
			ev, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{ConnectionId: "dir", Type: typ})
			if err != nil || len(ev.Events) == 0 {
				t.Fatalf("no %s audit event: %v", typ, err)
			}
		}
		admin := ssogatev1.NewConnectionServiceClient(f.ts.dial(t, testAdminKey))
		log, err := admin.ListScimRequests(context.Background(), &ssogatev1.ListScimRequestsRequest{ConnectionId: "dir"})
		if err != nil || len(log.Requests) < 5 || !slices.ContainsFunc(log.Requests, func(r *ssogatev1.ScimRequest) bool {
			return r.Method == "DELETE" && r.Status == 204 && strings.HasPrefix(r.Path, "/Users/")
		}) {
			t.Fatalf("SCIM request log: %v %v", log, err)
		}
		if strings.Contains(f.ts.logs.String(), scim.token) {
			t.Fatal("the server log holds the SCIM token")
		}
	})
}

// TestDeactivationRacingLogin: logins and a deactivation at once never
// leave a live session of the deactivated user.
func TestDeactivationRacingLogin(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "race"}})
	scim := f.scimClient(t, "race")
	alice := scim.createUser(t, "alice@example.com")
	const logins = 49 // and one deactivation: 50 goroutines
	for round := range 2 {
		if round > 0 {
			scim.setActive(t, alice, true)
		}
		type signed struct{ resp, relay string }
		var forms []signed
		for range logins {
			r, relay := f.signedResponse(t, "race", "alice")
			forms = append(forms, signed{r, relay})
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, form := range forms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				f.postACS(t, "race", form.resp, form.relay)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			scim.setActive(t, alice, false)
		}()
		close(start)
		wg.Wait()
		sessions, err := f.ts.srv.store.FindSessions(context.Background(), "race", "alice@example.com", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sessions {
			if s.Live(f.ts.srv.now()) {
				t.Fatalf("round %d: session %s of the deactivated user is live", round, s.ID)
			}
		}
		t.Logf("round %d: %d sessions, all revoked", round, len(sessions))
	}
}

// TestDeactivationBetweenAdmissionAndSession pins the race's worst order:
// the directory deactivates the user after the login was admitted and
// before its session exists. The login must end refused, its session
// revoked.
func TestDeactivationBetweenAdmissionAndSession(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "race"}})
	scim := f.scimClient(t, "race")
	alice := scim.createUser(t, "alice@example.com")
	var once sync.Once
	f.ts.srv.beforeSession = func() { once.Do(func() { scim.setActive(t, alice, false) }) }
	resp, relay := f.signedResponse(t, "race", "alice")
	a := f.postACS(t, "race", resp, relay)
	wantAudit(t, f.auditEvent(t, "login.failed", a.requestID), ssogatev1.RejectionReason_REJECTION_REASON_USER_DEPROVISIONED, "race")
	sessions, err := f.ts.srv.store.FindSessions(context.Background(), "race", "alice@example.com", "")
	if err != nil || len(sessions) != 1 || sessions[0].Live(f.ts.srv.now()) {
		t.Fatalf("sessions after the race: %+v %v", sessions, err)
	}
}
