package server

import (
	"strings"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

// emailDomainPolicy is the connection's policy with the default applied:
// REQUIRE when it lists email domains, ALLOW otherwise.
func emailDomainPolicy(c *ssogatev1.Connection) ssogatev1.EmailDomainPolicy {
	if p := c.GetEmailDomainPolicy(); p != ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_UNSPECIFIED {
		return p
	}
	if len(c.GetEmailDomains()) > 0 {
		return ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_REQUIRE
	}
	return ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_ALLOW
}

// bindEmail applies the connection's email domain policy to a verified
// identity: the email's domain must equal one of email_domains
// (case-insensitively; a subdomain only when it is listed itself, since
// "eng.acme.com" may be run by someone other than "acme.com"'s IdP admin).
// REQUIRE refuses a mismatch, DROP_CLAIM removes the email, ALLOW passes.
func bindEmail(c *ssogatev1.Connection, id *saml.Identity) error {
	email := id.Mapped.Email
	policy := emailDomainPolicy(c)
	if email == "" || policy == ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_ALLOW {
		return nil
	}
	domain := ""
	if at := strings.LastIndexByte(email, '@'); at >= 0 {
		domain = strings.ToLower(strings.TrimSuffix(email[at+1:], "."))
	}
	for _, d := range c.GetEmailDomains() {
		if domain != "" && domain == strings.ToLower(d) {
			return nil
		}
	}
	if policy == ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_DROP_CLAIM {
		id.Mapped.Email = ""
		return nil
	}
	asserted := "an email without a domain"
	if domain != "" {
		asserted = "an email at " + clipValue(domain)
	}
	return saml.Rejectf(saml.ReasonEmailDomainMismatch,
		"the IdP asserted %s, but this connection serves only %s (email_domains); assert users of those domains only, list the domain in email_domains, or set email_domain_policy",
		asserted, strings.Join(c.GetEmailDomains(), ", "))
}

// clipValue shortens an IdP-chosen value before it goes into a message.
func clipValue(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
