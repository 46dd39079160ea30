package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

func TestBindEmail(t *testing.T) {
	const (
		req  = ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_REQUIRE
		drop = ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_DROP_CLAIM
		any  = ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_ALLOW
		def  = ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_UNSPECIFIED
	)
	for _, tc := range []struct {
		name      string
		policy    ssogatev1.EmailDomainPolicy
		domains   []string
		email     string
		wantErr   bool
		wantEmail string
	}{
		{"listed domain", def, []string{"acme.com"}, "alice@acme.com", false, "alice@acme.com"},
		{"case-insensitive", def, []string{"acme.com"}, "Alice@ACME.com", false, "Alice@ACME.com"},
		{"another customer's domain refused by default", def, []string{"acme.com"}, "ceo@othercustomer.com", true, ""},
		{"a subdomain is not its parent", def, []string{"acme.com"}, "bob@eng.acme.com", true, ""},
		{"a listed subdomain is admitted", def, []string{"acme.com", "eng.acme.com"}, "bob@eng.acme.com", false, "bob@eng.acme.com"},
		{"a suffix is no domain", def, []string{"acme.com"}, "eve@evilacme.com", true, ""},
		{"no domain part", req, []string{"acme.com"}, "alice", true, ""},
		{"two @, the last one counts", req, []string{"acme.com"}, "a@acme.com@evil.com", true, ""},
		{"no email is nothing to check", req, []string{"acme.com"}, "", false, ""},
		{"no domains listed: allow by default", def, nil, "x@anything.com", false, "x@anything.com"},
		{"DROP_CLAIM removes the email", drop, []string{"acme.com"}, "ceo@othercustomer.com", false, ""},
		{"DROP_CLAIM keeps a matching email", drop, []string{"acme.com"}, "alice@acme.com", false, "alice@acme.com"},
		{"ALLOW passes anything", any, []string{"acme.com"}, "ceo@othercustomer.com", false, "ceo@othercustomer.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &ssogatev1.Connection{EmailDomainPolicy: tc.policy, EmailDomains: tc.domains}
			id := &saml.Identity{}
			id.Mapped.Email = tc.email
			err := bindEmail(c, id)
			var se *saml.Error
			if tc.wantErr {
				if !errors.As(err, &se) || se.Reason != saml.ReasonEmailDomainMismatch {
					t.Fatalf("bindEmail = %v, want EMAIL_DOMAIN_MISMATCH", err)
				}
				return
			}
			if err != nil || id.Mapped.Email != tc.wantEmail {
				t.Fatalf("bindEmail = %v, email %q; want nil, %q", err, id.Mapped.Email, tc.wantEmail)
			}
		})
	}
}

// The wire: an IdP asserting an email outside the connection's domains is
// refused (REQUIRE, the default), logs in without email (DROP_CLAIM), or
// passes (ALLOW); the audit message names the asserted and allowed domains.
func TestWireEmailDomainPolicy(t *testing.T) {
	f := newWireFixture(t, []wireConn{
		{id: "strict", set: map[string]any{"email_domains": []any{"acme.test", "acme-corp.test"}}},
		{id: "drop", set: map[string]any{"email_domains": []any{"drop.test"}, "email_domain_policy": "EMAIL_DOMAIN_POLICY_DROP_CLAIM"}},
		{id: "allow", set: map[string]any{"email_domains": []any{"allow.test"}, "email_domain_policy": "EMAIL_DOMAIN_POLICY_ALLOW"}},
		{id: "match", set: map[string]any{"email_domains": []any{"example.com"}}},
	})
	ctx := context.Background()

	resp, relay := f.signedResponse(t, "strict", devAlice.Name) // alice@example.com
	before := f.metrics(t)
	a := f.postACS(t, "strict", resp, relay)
	ev := f.auditEvent(t, auditLoginFailed, a.requestID)
	wantAudit(t, ev, ssogatev1.RejectionReason_REJECTION_REASON_EMAIL_DOMAIN_MISMATCH, "strict", "example.com", "acme.test", "acme-corp.test")
	if strings.Contains(ev.Message, "alice@") {
		t.Errorf("audit message %q holds the whole address; the domain is enough", ev.Message)
	}
	wantGenericPage(t, a, http.StatusForbidden, ev)
	wantDelta(t, before, f.metrics(t), 1, acsOutcome("EMAIL_DOMAIN_MISMATCH"))

	exchange := func(connID string) *ssogatev1.TokenSet {
		t.Helper()
		ex, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, connID, devAlice.Name)})
		if err != nil {
			t.Fatal(err)
		}
		return ex.TokenSet
	}
	for connID, want := range map[string]string{"drop": "", "allow": devAlice.Email, "match": devAlice.Email} {
		set := exchange(connID)
		if set.Identity.Email != want {
			t.Errorf("%s: identity email %q, want %q", connID, set.Identity.Email, want)
		}
		v, err := f.login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: set.AccessToken})
		if err != nil || !v.Valid || v.Identity.Email != want {
			t.Errorf("%s: access token email %q (%v), want %q", connID, v.GetIdentity().GetEmail(), err, want)
		}
	}
}
