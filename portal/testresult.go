package portal

import (
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ssogate/ssogate/page"
	"github.com/ssogate/ssogate/saml"
)

// TestResult is one test login's outcome, for its result page.
type TestResult struct {
	ConnectionID string
	// State is the pending request's state; a test started from the
	// portal carries TestState and the chosen IdP.
	State string
	// Identity is set when the response verified.
	Identity *saml.Identity
	Roles    []string
	// Denied is the access policy's refusal of a verified identity.
	Denied string
	// Reason and Message explain a refusal (Identity nil).
	Reason        saml.Reason
	Message       string
	CorrelationID string
	Now           time.Time
}

type attr struct {
	Name   string
	Values []string
}

type resultView struct {
	R        TestResult
	Passed   bool
	IdPName  string
	Fix      string
	Warnings []string
	Attrs    []attr
	Portal   bool
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// RenderTestResult writes the test-login result page: what the IdP sent
// and what we made of it, with warnings, or why it was refused and what
// to change in the IdP console.
func (p *Portal) RenderTestResult(w http.ResponseWriter, r *http.Request, res TestResult) {
	RenderTestResult(p.pages, w, res)
}

// RenderTestResult is Portal.RenderTestResult for a page set alone.
func RenderTestResult(pages *page.Set, w http.ResponseWriter, res TestResult) {
	key, fromPortal := strings.CutPrefix(res.State, TestState)
	chosen, ok := idpByKey(key)
	if !ok {
		chosen, _ = idpByKey("other")
	}
	v := resultView{R: res, IdPName: chosen.Name, Portal: fromPortal}
	title := "Test login refused"
	status := http.StatusBadRequest
	if res.Identity != nil {
		v.Passed = res.Denied == ""
		v.Warnings = warnings(res, chosen.Key)
		title, status = "Test login succeeded", http.StatusOK
		if !v.Passed {
			title = "Test login verified, but the access rules deny this user"
			v.Fix = fixFor(saml.ReasonPolicyDenied, chosen.Key)
		}
		for name, vals := range res.Identity.Attributes {
			v.Attrs = append(v.Attrs, attr{name, vals})
		}
		sort.Slice(v.Attrs, func(i, j int) bool { return v.Attrs[i].Name < v.Attrs[j].Name })
	} else {
		v.Fix = fixFor(res.Reason, chosen.Key)
	}
	pages.Render(w, status, "result", title, v, page.Options{})
}

// warnings are what will bite after activation although the test passed.
func warnings(res TestResult, idpKey string) []string {
	id := res.Identity
	var out []string
	if id.Mapped.Email == "" {
		out = append(out, "No email address was mapped: the product receives users without an email. Add an attribute statement named \"email\" with the user's email, or send the email as NameID with format emailAddress.")
	}
	if id.Mapped.Name == "" {
		out = append(out, "No name was mapped. Add attribute statements \"firstName\" and \"lastName\" (or \"displayName\").")
	}
	guids := 0
	for _, g := range id.Mapped.Groups {
		if guidPattern.MatchString(g) {
			guids++
		}
	}
	if guids > 0 {
		msg := "The groups look like object IDs (GUIDs), not names: access rules that name groups will not match them."
		if idpKey == "entra" || idpKey == "other" {
			msg += " In Entra ID: Attributes & Claims → edit the group claim → Source attribute \"Cloud-only group display names\" (or sAMAccountName for synced groups)."
		}
		out = append(out, msg)
	}
	if _, ok := id.Attributes["http://schemas.microsoft.com/claims/groups.link"]; ok {
		out = append(out, "Entra ID sent a groups.link instead of groups: the user is in more than 150 groups. Choose \"Groups assigned to the application\" in the group claim.")
	}
	d := id.Diagnostics
	if !d.CertificateNotAfter.IsZero() && d.CertificateNotAfter.Sub(res.Now) < certWarning {
		out = append(out, "The IdP's signing certificate "+d.CertificateSubject+" expires "+d.CertificateNotAfter.UTC().Format("2006-01-02")+
			": sign-ins stop then. Create its successor in your IdP and give us the new metadata before that day.")
	}
	if strings.Contains(strings.ToLower(d.SignatureAlgorithm+d.DigestAlgorithm), "sha1") {
		out = append(out, "Your IdP signs with SHA-1, which is weak and accepted here only because this connection allows it. Switch to SHA-256: "+
			fixFor(saml.ReasonAlgorithmNotAllowed, idpKey))
	}
	return out
}
