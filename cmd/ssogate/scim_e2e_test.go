package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// scimAt sends one SCIM request to connection acme on replica r, as the
// IdP's provisioning client would, and fails unless the status is want.
func scimAt(t *testing.T, r replica, token string, want int, method, path, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.httpAddr+"/scim/v2/acme"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("SCIM %s %s on %s = %d, want %d: %s", method, path, r.httpAddr, resp.StatusCode, want, raw)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// entraActive is Entra ID's deactivation/reactivation PATCH.
func entraActive(active bool) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"` +
		map[bool]string{true: "True", false: "False"}[active] + `"}]}`
}

// replicaLogin signs user in: started on replica 1, ACS on 2, exchange on
// 3. It returns the ACS status and, on success, the token set.
func replicaLogin(t *testing.T, r [3]replica, user string) (int, *ssogatev1.TokenSet) {
	t.Helper()
	ctx := context.Background()
	start, err := r[0].login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	posted, err := devidp.SignIn(ctx, &http.Client{Jar: jar}, start.RedirectUrl, user, user)
	if err != nil {
		t.Fatal(err)
	}
	code, loc := postACS(t, r[1], "acme", posted)
	if code != http.StatusSeeOther {
		return code, nil
	}
	u, _ := url.Parse(loc)
	ex, err := r[2].login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: u.Query().Get("code")})
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	return code, ex.TokenSet
}

// refusedEverywhere waits until every replica's ValidateToken refuses the
// token and returns how long that took from since.
func refusedEverywhere(t *testing.T, r [3]replica, access string, since time.Time) time.Duration {
	t.Helper()
	for i := range r {
		for {
			v, err := r[i].login.ValidateToken(context.Background(), &ssogatev1.ValidateTokenRequest{AccessToken: access})
			if err != nil {
				t.Fatal(err)
			}
			if !v.Valid {
				break
			}
			if time.Since(since) > 5*time.Second {
				t.Fatalf("replica %d still accepts the token 5s after the deactivation", i+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return time.Since(since)
}

// TestReplicasDirectorySync: three replicas on PostgreSQL; the IdP's SCIM
// client deactivates alice through one of them and every replica refuses
// her token; her next SAML login is refused; reactivation lets her in;
// bob leaving the group the policy requires loses his session.
func TestReplicasDirectorySync(t *testing.T) {
	rs := startReplicas(t, map[string]any{
		"groups_source": "GROUPS_SOURCE_DIRECTORY",
		"access_policy": map[string]any{"allowed_groups": []string{"eng"}},
	})
	r := rs.r
	ctx := context.Background()
	cc, err := grpc.NewClient(r[0].grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerKey(rs.apiKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	made, err := ssogatev1.NewConnectionServiceClient(cc).CreateScimToken(ctx, &ssogatev1.CreateScimTokenRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if made.ScimBaseUrl != replicaExternal+"/scim/v2/acme" {
		t.Errorf("SCIM base URL %q", made.ScimBaseUrl)
	}
	tok := made.Secret

	// Entra ID's initial cycle: GET with filter, then POST, per user.
	ids := map[string]string{}
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		if got := scimAt(t, r[0], tok, 200, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+u+`"`), ""); got["totalResults"] != 0.0 {
			t.Fatalf("filter before create: %v", got)
		}
		ids[u] = scimAt(t, r[0], tok, 201, "POST", "/Users", fmt.Sprintf(`{"userName":%q,"active":true,"emails":[{"primary":true,"type":"work","value":%q}]}`, u, u))["id"].(string)
	}
	group := scimAt(t, r[1], tok, 201, "POST", "/Groups", `{"displayName":"eng","members":[]}`)["id"].(string)
	scimAt(t, r[2], tok, 200, "PATCH", "/Groups/"+group, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Add","path":"members","value":[{"value":%q},{"value":%q}]}]}`, ids["alice@example.com"], ids["bob@example.com"]))
	dir := ssogatev1.NewDirectoryServiceClient(cc)
	du, err := dir.GetDirectoryUser(ctx, &ssogatev1.GetDirectoryUserRequest{ConnectionId: "acme", UserId: ids["bob@example.com"]})
	if err != nil || !slices.Equal(du.User.Groups, []string{"eng"}) {
		t.Fatalf("GetDirectoryUser: %v %v", du, err)
	}

	_, alice := replicaLogin(t, r, "alice")
	_, bob := replicaLogin(t, r, "bob")
	if alice == nil || bob == nil {
		t.Fatal("logins of provisioned users in eng refused")
	}

	scimAt(t, r[1], tok, 200, "PATCH", "/Users/"+ids["alice@example.com"], entraActive(false))
	t.Logf("alice refused on every replica %v after the SCIM response", refusedEverywhere(t, r, alice.AccessToken, time.Now()).Round(time.Millisecond))
	if _, err := r[0].login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: alice.RefreshToken}); err == nil {
		t.Fatal("RefreshToken works after SCIM deactivated alice")
	}
	if code, _ := replicaLogin(t, r, "alice"); code != http.StatusForbidden {
		t.Fatalf("new login of deactivated alice: ACS %d, want 403", code)
	}
	ev, err := r[0].audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: "acme", Type: "login.failed"})
	if err != nil || len(ev.Events) == 0 || ev.Events[0].Reason != ssogatev1.RejectionReason_REJECTION_REASON_USER_DEPROVISIONED {
		t.Fatalf("audit of the refused login: %v %v", ev, err)
	}
	scimAt(t, r[2], tok, 200, "PATCH", "/Users/"+ids["alice@example.com"], entraActive(true))
	if code, ts := replicaLogin(t, r, "alice"); code != http.StatusSeeOther || ts == nil {
		t.Fatalf("reactivated alice: ACS %d", code)
	}

	scimAt(t, r[0], tok, 200, "PATCH", "/Groups/"+group, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Remove","path":"members","value":[{"value":%q}]}]}`, ids["bob@example.com"]))
	t.Logf("bob refused on every replica %v after leaving eng", refusedEverywhere(t, r, bob.AccessToken, time.Now()).Round(time.Millisecond))

	// Measured: SCIM response to "refused on every replica", against
	// RevokeSubject over the API as the baseline, alternating, same run.
	rounds := 20
	if n, err := strconv.Atoi(os.Getenv("SSOGATE_DEPROVISION_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	var viaSCIM, viaAPI []time.Duration
	for i := range rounds {
		_, ts := replicaLogin(t, r, "alice")
		if ts == nil {
			t.Fatal("login refused")
		}
		if i%2 == 0 {
			scimAt(t, r[i%3], tok, 200, "PATCH", "/Users/"+ids["alice@example.com"], entraActive(false))
			viaSCIM = append(viaSCIM, refusedEverywhere(t, r, ts.AccessToken, time.Now()))
			scimAt(t, r[i%3], tok, 200, "PATCH", "/Users/"+ids["alice@example.com"], entraActive(true))
		} else {
			if _, err := r[i%3].login.RevokeSubject(ctx, &ssogatev1.RevokeSubjectRequest{ConnectionId: "acme", NameId: "alice@example.com"}); err != nil {
				t.Fatal(err)
			}
			viaAPI = append(viaAPI, refusedEverywhere(t, r, ts.AccessToken, time.Now()))
		}
	}
	p := func(d []time.Duration, q float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	t.Logf("refused on all 3 replicas after SCIM deactivation: p50 %v p99 %v (n=%d); after RevokeSubject: p50 %v p99 %v (n=%d); p50 ratio %.2f",
		p(viaSCIM, 0.5), p(viaSCIM, 0.99), len(viaSCIM), p(viaAPI, 0.5), p(viaAPI, 0.99), len(viaAPI),
		float64(p(viaSCIM, 0.5))/float64(p(viaAPI, 0.5)))
}
