package portal

import (
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/saml"
)

func TestEveryReasonHasAFix(t *testing.T) {
	for _, r := range saml.Reasons {
		if _, ok := fixes[r]; !ok {
			t.Errorf("no fix for %s", r)
		}
	}
}

func TestTestResultWarnings(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	good := func() *saml.Identity {
		return &saml.Identity{
			Mapped: saml.MappedAttributes{Email: "a@x.example", Name: "A", Groups: []string{"eng"}},
			Diagnostics: saml.Diagnostics{SignatureAlgorithm: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
				DigestAlgorithm: "http://www.w3.org/2001/04/xmlenc#sha256", CertificateNotAfter: now.AddDate(1, 0, 0)},
		}
	}
	tests := []struct {
		name string
		edit func(*saml.Identity)
		want string // "" = no warning
	}{
		{"clean", func(*saml.Identity) {}, ""},
		{"no email", func(id *saml.Identity) { id.Mapped.Email = "" }, "No email address was mapped"},
		{"no name", func(id *saml.Identity) { id.Mapped.Name = "" }, "No name was mapped"},
		{"object-id groups", func(id *saml.Identity) { id.Mapped.Groups = []string{"8f2c1a2b-0000-4000-8000-000000000001"} }, "Cloud-only group display names"},
		{"group overage", func(id *saml.Identity) {
			id.Attributes = map[string][]string{"http://schemas.microsoft.com/claims/groups.link": {"https://graph"}}
		}, "more than 150 groups"},
		{"certificate expiring", func(id *saml.Identity) { id.Diagnostics.CertificateNotAfter = now.Add(10 * 24 * time.Hour) }, "expires 2026-12-11"},
		{"sha-1", func(id *saml.Identity) {
			id.Diagnostics.SignatureAlgorithm = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
		}, "SHA-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := good()
			tc.edit(id)
			got := strings.Join(warnings(TestResult{Identity: id, Now: now}, "entra"), "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("warnings = %q, want one containing %q", got, tc.want)
			}
		})
	}
}

func TestFixesDifferPerIdP(t *testing.T) {
	okta, entra, other := fixFor(saml.ReasonAudienceMismatch, "okta"), fixFor(saml.ReasonAudienceMismatch, "entra"), fixFor(saml.ReasonAudienceMismatch, "other")
	if !strings.Contains(okta, "Audience URI (SP Entity ID)") || !strings.Contains(entra, "Identifier (Entity ID)") || okta == other {
		t.Errorf("audience fixes: okta %q, entra %q, other %q", okta, entra, other)
	}
}
