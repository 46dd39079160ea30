package server

// Negative tests of the login flow over the wire: a real IdP, real
// listeners, the browser's side by net/http. Each refusal is checked in
// the three places it must show: the answer (HTTP page or gRPC status),
// the audit log (its reason and an admin-actionable message, found by the
// correlation id the user saw), and /metrics.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

var (
	devAlice = devidp.DefaultUsers[0] // groups eng, admins
	devBob   = devidp.DefaultUsers[1] // group sales
)

// The same SAMLResponse posted twice: the second is refused as
// ASSERTION_REPLAYED. saml.ValidateResponse records the assertion ID in
// the replay cache before it consumes the pending request (InResponseTo),
// so a replay is reported by the replay cache, not as IN_RESPONSE_TO_USED;
// the pending request's single use is the second line of defence.
func TestWireReplayedResponse(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}})
	resp, relay := f.signedResponse(t, "acme", devAlice.Name)
	wantCodeRedirect(t, f.postACS(t, "acme", resp, relay), wireReturnTo)

	before := f.metrics(t)
	again := f.postACS(t, "acme", resp, relay)
	ev := f.auditEvent(t, auditLoginFailed, again.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_ASSERTION_REPLAYED, "acme", "already used")
	wantGenericPage(t, again, http.StatusBadRequest, ev)
	after := f.metrics(t)
	wantDelta(t, before, after, 1, acsOutcome("ASSERTION_REPLAYED"))
	wantDelta(t, before, after, 0, acsOutcome("SUCCESS"))
}

// Two connections on one IdP: a response the IdP addressed to A, posted to
// B's ACS, is refused by B (its Destination is A's ACS, the first value
// checked after the signature), and is still good at A: the refusal
// neither recorded the assertion nor consumed A's pending request.
func TestWireResponseForAnotherConnection(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "tenant-a"}, {id: "tenant-b"}})
	resp, relay := f.signedResponse(t, "tenant-a", devAlice.Name)

	before := f.metrics(t)
	a := f.postACS(t, "tenant-b", resp, relay)
	ev := f.auditEvent(t, auditLoginFailed, a.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_DESTINATION_MISMATCH, "tenant-b",
		"Destination", f.acsURL("tenant-a"), f.acsURL("tenant-b"))
	if ev.TenantId != "tenant-tenant-b" {
		t.Errorf("audit tenant %q, want the connection's", ev.TenantId)
	}
	wantGenericPage(t, a, http.StatusBadRequest, ev, f.acsURL("tenant-a"))
	wantDelta(t, before, f.metrics(t), 1, acsOutcome("DESTINATION_MISMATCH"))

	wantCodeRedirect(t, f.postACS(t, "tenant-a", resp, relay), wireReturnTo)
}

// StartLogin refuses a return_to outside the connection's allowed return
// URLs before anything reaches the IdP: InvalidArgument, audited as
// login.failed (check return_to), counted as a refused login.
func TestWireReturnToNotAllowed(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}})
	for _, tc := range []struct{ name, returnTo string }{
		{"other origin", "https://evil.example.net/cb"},
		{"look-alike host", "https://app.example.com.evil.example.net/cb"},
		{"scheme downgrade", "http://app.example.com/cb"},
		{"sibling path", "https://app.example.com/cbx"},
		{"user info", "https://app.example.com@evil.example.net/cb"},
		{"climbing path", "https://app.example.com/cb/../admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.metrics(t)
			ctx, id := withCallID(context.Background())
			_, err := f.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: tc.returnTo})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "return_to") {
				t.Fatalf("StartLogin(return_to %q) = %v, want InvalidArgument about return_to", tc.returnTo, err)
			}
			ev := f.auditEvent(t, auditLoginFailed, id)
			wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_UNSPECIFIED, "acme", "return_to")
			if got := ev.Detail.GetFields()["check"].GetStringValue(); got != "return_to" {
				t.Errorf("audit detail check = %q, want return_to", got)
			}
			after := f.metrics(t)
			wantDelta(t, before, after, 1, metricSeries("ssogate_logins_refused_total", "check", "return_to"))
			wantDelta(t, before, after, 0, metricSeries("ssogate_logins_started_total", "test", "false"))
		})
	}
}

// A code works once and for 60 seconds: an expired or a reused code is
// InvalidArgument, audited as code.rejected and counted by reason.
func TestWireCodeExpiredOrReused(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	f := newWireFixture(t, []wireConn{{id: "acme"}}, WithClock(clock.now))
	for _, tc := range []struct {
		reason string
		// spoil makes the code unusable.
		spoil func(t *testing.T, code string)
	}{
		{"expired", func(t *testing.T, _ string) {
			clock.add(codeTTL + time.Second)
			t.Cleanup(func() { clock.add(-codeTTL - time.Second) })
		}},
		{"reused", func(t *testing.T, code string) {
			if _, err := f.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
				t.Fatalf("first ExchangeCode: %v", err)
			}
		}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			code := f.loginCode(t, "acme", devAlice.Name)
			tc.spoil(t, code)
			before := f.metrics(t)
			ctx, id := withCallID(context.Background())
			_, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("ExchangeCode of a %s code = %v, want InvalidArgument naming %q", tc.reason, err, tc.reason)
			}
			if strings.Contains(err.Error(), code) {
				t.Error("the error carries the code")
			}
			ev := f.auditEvent(t, auditCodeRejected, id)
			if got := ev.Detail.GetFields()["code"].GetStringValue(); got != tc.reason || !strings.Contains(ev.Message, tc.reason) {
				t.Errorf("audit detail code %q message %q, want %q", got, ev.Message, tc.reason)
			}
			if strings.Contains(ev.Message, code) {
				t.Error("the audit event carries the code")
			}
			wantDelta(t, before, f.metrics(t), 1, metricSeries("ssogate_codes_rejected_total", "reason", tc.reason))
		})
	}
}

// A spent refresh token presented again while its successor is unused (a
// client retrying after a lost answer, within token.refresh_retry_window)
// gets that same successor back. Presented once the successor is used, it
// fails and revokes its session: the latest token fails too, and
// ValidateToken reports the session's access tokens revoked.
func TestWireRefreshTokenReuseRevokesSession(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}})
	ctx := context.Background()
	ex, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, "acme", devAlice.Name)})
	if err != nil {
		t.Fatal(err)
	}
	spent := ex.TokenSet.RefreshToken
	rotated, err := f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: spent})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: rotated.TokenSet.AccessToken}); err != nil || !v.Valid {
		t.Fatalf("the rotated set's access token before the reuse: %v %v", v, err)
	}

	retried, err := f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: spent})
	if err != nil || retried.TokenSet.RefreshToken != rotated.TokenSet.RefreshToken {
		t.Fatalf("retry of the spent token = %v, %v; want the same successor", retried, err)
	}
	latest, err := f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: rotated.TokenSet.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}

	before := f.metrics(t)
	rctx, id := withCallID(ctx)
	_, err = f.login.RefreshToken(rctx, &ssogatev1.RefreshTokenRequest{RefreshToken: spent})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "reused") {
		t.Fatalf("spent refresh token again = %v, want Unauthenticated (reused)", err)
	}
	ev := f.auditEvent(t, auditRefreshReused, id)
	if !strings.Contains(ev.Message, "revoked") || strings.Contains(ev.Message, spent) {
		t.Errorf("audit message %q: want the revocation said, and no token", ev.Message)
	}
	_, err = f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: latest.TokenSet.RefreshToken})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the latest refresh token after the reuse = %v, want Unauthenticated (revoked)", err)
	}
	for name, access := range map[string]string{"first": ex.TokenSet.AccessToken, "rotated": rotated.TokenSet.AccessToken} {
		v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: access})
		if err != nil || v.Valid || v.Reason != "revoked" {
			t.Errorf("%s access token after the reuse: %v %v, want invalid (revoked)", name, v, err)
		}
	}
	after := f.metrics(t)
	wantDelta(t, before, after, 1,
		metricSeries("ssogate_refresh_rejected_total", "reason", "reused"),
		metricSeries("ssogate_refresh_rejected_total", "reason", "revoked"))
	wantDelta(t, before, after, 2, metricSeries("ssogate_token_validations_total", "result", "revoked"))
}

// A connection that admits only the admins group refuses bob (sales) with
// a 403 page; the audit log says login.denied, POLICY_DENIED, and names
// the groups. alice (admins) gets through the same connection.
func TestWirePolicyDenied(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme", set: map[string]any{
		"access_policy": map[string]any{"allowed_groups": []any{"admins"}},
	}}})
	resp, relay := f.signedResponse(t, "acme", devBob.Name)
	before := f.metrics(t)
	a := f.postACS(t, "acme", resp, relay)
	ev := f.auditEvent(t, auditLoginDenied, a.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_POLICY_DENIED, "acme", "sales", "admins")
	wantGenericPage(t, a, http.StatusForbidden, ev, "sales")
	if !strings.Contains(a.body, "not allowed to use this application") {
		t.Errorf("the denial page does not tell the user to ask for access:\n%s", a.body)
	}
	after := f.metrics(t)
	wantDelta(t, before, after, 1, acsOutcome("POLICY_DENIED"))
	wantDelta(t, before, after, 0, acsOutcome("SUCCESS"))

	f.loginCode(t, "acme", devAlice.Name) // alice (admins) is admitted
}

// An IdP-initiated response (no InResponseTo, signed by a pinned IdP key)
// is refused as IDP_INITIATED_FORBIDDEN by a connection that does not
// allow it; one that does lands on its default_return_url with a code
// that works, and the replay cache refuses the same response twice.
func TestWireIdPInitiated(t *testing.T) {
	idp := newUnsolicitedIdP(t)
	const home = wireReturnTo + "/home"
	f := newWireFixture(t, []wireConn{
		{id: "closed", set: map[string]any{"identity_provider": idp.identityProvider()}},
		// Opted out of the consent page: the code comes with the ACS answer.
		{id: "open", set: map[string]any{"identity_provider": idp.identityProvider(),
			"allow_idp_initiated": true, "default_return_url": home, "idp_initiated_consent": false}},
		{id: "nowhere", set: map[string]any{"identity_provider": idp.identityProvider(), "allow_idp_initiated": true}},
	})

	t.Run("allowed but nowhere to land issues nothing", func(t *testing.T) {
		before := f.metrics(t)
		a := f.postACS(t, "nowhere", idp.respond(t, f.spMetadata(t, "nowhere"), devAlice), "")
		ev := f.auditEvent(t, auditLoginFailed, a.requestID)
		wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_CONNECTION_INACTIVE, "nowhere", "default_return_url")
		wantGenericPage(t, a, http.StatusForbidden, ev)
		after := f.metrics(t)
		wantDelta(t, before, after, 0, acsOutcome("SUCCESS"))
		wantDelta(t, before, after, 1, acsOutcome("CONNECTION_INACTIVE"))
	})

	t.Run("refused", func(t *testing.T) {
		before := f.metrics(t)
		a := f.postACS(t, "closed", idp.respond(t, f.spMetadata(t, "closed"), devAlice), "")
		ev := f.auditEvent(t, auditLoginFailed, a.requestID)
		wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_IDP_INITIATED_FORBIDDEN, "closed", "InResponseTo", "IdP-initiated")
		wantGenericPage(t, a, http.StatusBadRequest, ev)
		wantDelta(t, before, f.metrics(t), 1, acsOutcome("IDP_INITIATED_FORBIDDEN"))
	})

	t.Run("allowed", func(t *testing.T) {
		before := f.metrics(t)
		resp := idp.respond(t, f.spMetadata(t, "open"), devAlice)
		a := f.postACS(t, "open", resp, "")
		code := wantCodeRedirect(t, a, home)
		ex, err := f.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: code})
		if err != nil {
			t.Fatal(err)
		}
		if ex.ReturnTo != home || ex.TokenSet.Identity.Email != devAlice.Email || ex.TokenSet.Identity.ConnectionId != "open" {
			t.Errorf("ExchangeCode = return_to %q identity %v", ex.ReturnTo, ex.TokenSet.Identity)
		}
		ok := f.auditEvent(t, auditLoginSucceeded, a.requestID)
		if !ok.Detail.GetFields()["idp_initiated"].GetBoolValue() {
			t.Errorf("login.succeeded detail %v, want idp_initiated true", ok.Detail)
		}
		wantDelta(t, before, f.metrics(t), 1, acsOutcome("SUCCESS"))

		// Without a pending request to consume, the replay cache is the
		// defence.
		again := f.postACS(t, "open", resp, "")
		ev := f.auditEvent(t, auditLoginFailed, again.requestID)
		wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_ASSERTION_REPLAYED, "open")
		wantGenericPage(t, again, http.StatusBadRequest, ev)
		wantDelta(t, before, f.metrics(t), 1, acsOutcome("ASSERTION_REPLAYED"))
	})
}

// The lifecycle over the wire: DRAFT refuses StartLogin and its ACS
// refuses anything posted; TESTING refuses ordinary logins, but a test
// login completes at the ACS with the diagnostic page and issues no code.
func TestWireConnectionLifecycle(t *testing.T) {
	f := newWireFixture(t, []wireConn{
		{id: "draft", set: map[string]any{"state": "CONNECTION_STATE_DRAFT"}},
		{id: "trial", set: map[string]any{"state": "CONNECTION_STATE_TESTING",
			"access_policy": map[string]any{"allowed_groups": []any{"admins"}}}},
	})

	for _, tc := range []struct {
		name, conn, mentions string
	}{
		{"draft", "draft", "DRAFT"},
		{"testing without test", "trial", "TESTING"},
	} {
		t.Run(tc.name+" refuses StartLogin", func(t *testing.T) {
			before := f.metrics(t)
			ctx, id := withCallID(context.Background())
			_, err := f.login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: tc.conn, ReturnTo: wireReturnTo})
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), tc.mentions) {
				t.Fatalf("StartLogin on %s = %v, want FailedPrecondition naming %s", tc.conn, err, tc.mentions)
			}
			ev := f.auditEvent(t, auditLoginFailed, id)
			wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_CONNECTION_INACTIVE, tc.conn, tc.mentions)
			// A refusal before the IdP counts as a refused login, not as
			// an ACS outcome: no response reached the ACS.
			after := f.metrics(t)
			wantDelta(t, before, after, 1, metricSeries("ssogate_logins_refused_total", "check", "lifecycle"))
			wantDelta(t, before, after, 0, acsOutcome("CONNECTION_INACTIVE"))
			wantDelta(t, before, after, 0, metricSeries("ssogate_logins_started_total", "test", "false"))
		})
	}

	t.Run("draft ACS refuses before reading the response", func(t *testing.T) {
		a := f.postACS(t, "draft", "not even base64!", "")
		ev := f.auditEvent(t, auditLoginFailed, a.requestID)
		wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_CONNECTION_INACTIVE, "draft", "DRAFT")
		wantGenericPage(t, a, http.StatusForbidden, ev)
	})

	for _, tc := range []struct {
		user   devidp.User
		policy string // on the page
	}{
		{devAlice, "Admitted"},
		{devBob, "Denied:"},
	} {
		t.Run("test login of "+tc.user.Name, func(t *testing.T) {
			before := f.metrics(t)
			start := f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: "trial", Test: true})
			resp, relay := f.loginAtIdP(t, "trial", start.RedirectUrl, tc.user.Name)
			a := f.postACS(t, "trial", resp, relay)
			if a.status != http.StatusOK || a.header.Get("Location") != "" {
				t.Fatalf("test login ACS = %d Location %q, want the 200 diagnostic page", a.status, a.header.Get("Location"))
			}
			for _, want := range []string{
				`<td id="nameid" class="long">` + tc.user.Email + `</td>`,
				`<tr><th scope="row">email</th><td>` + tc.user.Email + `</td></tr>`,
				"Access rules", tc.policy,
				`<code id="correlation-id">` + a.requestID + `</code>`,
			} {
				if !strings.Contains(a.body, want) {
					t.Errorf("diagnostic page lacks %q:\n%s", want, a.body)
				}
			}
			if strings.Contains(a.body, "code=") {
				t.Errorf("diagnostic page carries a code:\n%s", a.body)
			}
			ev := f.auditEvent(t, auditLoginTested, a.requestID)
			if admitted := ev.Detail.GetFields()["admitted"].GetBoolValue(); admitted != (tc.policy == "Admitted") {
				t.Errorf("login.tested admitted = %v, message %q", admitted, ev.Message)
			}
			after := f.metrics(t)
			wantDelta(t, before, after, 1, acsOutcome("TEST"), metricSeries("ssogate_logins_started_total", "test", "true"))
			wantDelta(t, before, after, 0, acsOutcome("SUCCESS"), acsOutcome("POLICY_DENIED"))
		})
	}
	evs, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{ConnectionId: "trial", Type: auditLoginSucceeded})
	if err != nil || len(evs.Events) != 0 {
		t.Errorf("test logins created sessions: %v %v", evs, err)
	}
}

// Every ACS answer (redirect, rejection page, diagnostic page) is
// unframable, uncacheable and loads nothing foreign.
func TestWireACSPageSecurityHeaders(t *testing.T) {
	f := newWireFixture(t, []wireConn{{id: "acme"}, {id: "trial", set: map[string]any{"state": "CONNECTION_STATE_TESTING"}}})
	for _, tc := range []struct {
		name   string
		status int
		answer func(t *testing.T) acsAnswer
	}{
		{"redirect with code", http.StatusSeeOther, func(t *testing.T) acsAnswer {
			resp, relay := f.signedResponse(t, "acme", devAlice.Name)
			return f.postACS(t, "acme", resp, relay)
		}},
		{"rejection page", http.StatusBadRequest, func(t *testing.T) acsAnswer {
			return f.postACS(t, "acme", "not even base64!", "")
		}},
		{"test login page", http.StatusOK, func(t *testing.T) acsAnswer {
			start := f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: "trial", Test: true})
			resp, relay := f.loginAtIdP(t, "trial", start.RedirectUrl, devAlice.Name)
			return f.postACS(t, "trial", resp, relay)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.answer(t)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", a.status, tc.status, a.body)
			}
			csp := a.header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
				}
			}
			for name, want := range map[string]string{
				"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			} {
				if got := a.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}
