package portal

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/netguard"
	"github.com/ssogate/ssogate/page"
	"github.com/ssogate/ssogate/saml"
)

// certWarning is how close to expiry a certificate earns a warning.
const certWarning = 30 * 24 * time.Hour

// view is what every portal page gets.
type view struct {
	Step    string
	CSRF    string
	Conn    *ssogatev1.Connection
	SP      *ssogatev1.ServiceProviderInfo
	IdP     idp
	IdPs    []idp
	State   string
	Tested  bool
	Product string
	// Page-specific data.
	Form    metadataForm
	Notice  string
	Error   string
	Certs   []certView
	Events  []eventView
	Notices []noticeView
	Ref     string
	Found   []eventView
	Done    bool
	Expires time.Time
	// HasSAML shows the single sign-on steps, HasSCIM the SCIM step; SCIM
	// is its data.
	HasSAML  bool
	HasSCIM  bool
	SCIM     scimView
	ScimIdPs []scimIdP
}

type certView struct {
	Subject, Fingerprint string
	NotAfter             time.Time
	DaysLeft             int
	Expired, Expiring    bool
}

type eventView struct {
	Time                      time.Time
	Type, Reason, Message     string
	CorrelationID, Fix, Label string
	Refused                   bool
}

func (p *Portal) view(s *sess, step string) *view {
	return &view{Step: step, CSRF: s.csrf, Conn: s.conn, SP: s.conn.GetServiceProvider(), IdP: s.idp, IdPs: idps,
		State: strings.TrimPrefix(s.conn.GetState().String(), "CONNECTION_STATE_"), Tested: testedSinceChange(s.conn),
		Product: p.pages.Brand().ProductName, Certs: certViews(s.conn, p.cfg.Now()), Expires: s.link.ExpiresAt,
		HasSAML: hasFeature(s.link, ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SAML), HasSCIM: s.scim, ScimIdPs: scimIdPs}
}

func (p *Portal) render(w http.ResponseWriter, status int, name, title string, v *view, o page.Options) {
	p.pages.Render(w, status, name, title, v, o)
}

func testedSinceChange(c *ssogatev1.Connection) bool {
	pass := c.GetLastTestPassTime()
	if pass == nil {
		return false
	}
	change := c.GetIdentityProviderChangeTime()
	return change == nil || pass.AsTime().After(change.AsTime())
}

func certViews(c *ssogatev1.Connection, now time.Time) []certView {
	var out []certView
	for _, pc := range c.GetIdentityProvider().GetCertificates() {
		na := pc.GetNotAfter().AsTime()
		left := na.Sub(now)
		out = append(out, certView{Subject: pc.Subject, Fingerprint: pc.Sha256Fingerprint, NotAfter: na,
			DaysLeft: int(left.Hours() / 24), Expired: left <= 0, Expiring: left > 0 && left < certWarning})
	}
	return out
}

func active(c *ssogatev1.Connection) bool {
	return c.GetState() == ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request, s *sess) {
	target := "idp"
	if active(s.conn) {
		target = "status"
	}
	http.Redirect(w, r, Prefix+target, http.StatusSeeOther)
}

func (p *Portal) pickIdP(w http.ResponseWriter, r *http.Request, s *sess) {
	p.render(w, http.StatusOK, "idp", "Choose your identity provider", p.view(s, "idp"), page.Options{})
}

func (p *Portal) guide(w http.ResponseWriter, r *http.Request, s *sess) {
	chosen, ok := idpByKey(r.PathValue("idp"))
	if !ok {
		http.Redirect(w, r, Prefix+"idp", http.StatusSeeOther)
		return
	}
	s.idp = chosen
	http.SetCookie(w, &http.Cookie{Name: idpCookieName, Value: chosen.Key, Path: Prefix, HttpOnly: true, Secure: p.secure,
		SameSite: http.SameSiteStrictMode, Expires: s.link.ExpiresAt})
	p.render(w, http.StatusOK, "guide", "Configure "+chosen.Name, p.view(s, "guide"), page.Options{})
}

func (p *Portal) spMetadata(w http.ResponseWriter, r *http.Request, s *sess) {
	md, err := p.cfg.Connections.GetServiceProviderMetadata(s.ctx, &ssogatev1.GetServiceProviderMetadataRequest{ConnectionId: s.conn.Id})
	if err != nil {
		_, msg := apiError(err)
		p.pages.Render(w, http.StatusInternalServerError, "plain", "SP metadata", msg, page.Options{})
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Content-Disposition", `attachment; filename="`+s.conn.Id+`-sp-metadata.xml"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, md.MetadataXml)
}

// metadataForm is the IdP-metadata form's values and its errors, by field.
type metadataForm struct {
	Method                                   string
	URL, XML, EntityID, SSOURL, SLOURL, Cert string
	Errors                                   map[string]string
	Warnings                                 []string
}

func (p *Portal) metadataForm(w http.ResponseWriter, r *http.Request, s *sess) {
	v := p.view(s, "metadata")
	v.Form.URL = s.conn.GetIdentityProvider().GetMetadataUrl()
	if r.URL.Query().Get("saved") == "1" {
		v.Notice = "Saved. Your IdP settings are below; run a test login next."
	}
	p.render(w, http.StatusOK, "metadata", "Give us your IdP's metadata", v, page.Options{})
}

func (p *Portal) metadataSubmit(w http.ResponseWriter, r *http.Request, s *sess) {
	v := p.view(s, "metadata")
	f := &v.Form
	f.Errors = map[string]string{}
	f.Method = r.PostFormValue("method")
	f.URL = strings.TrimSpace(r.PostFormValue("metadata_url"))
	f.XML = r.PostFormValue("metadata_xml")
	f.EntityID = strings.TrimSpace(r.PostFormValue("entity_id"))
	f.SSOURL = strings.TrimSpace(r.PostFormValue("sso_url"))
	f.SLOURL = strings.TrimSpace(r.PostFormValue("slo_url"))
	f.Cert = strings.TrimSpace(r.PostFormValue("certificate"))
	fail := func(status int) { p.render(w, status, "metadata", "Give us your IdP's metadata", v, page.Options{}) }
	if st := s.conn.GetState(); st == ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE || st == ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED {
		v.Error = "This connection is " + v.State + ": its IdP settings can no longer be changed here. Ask " + v.Product + " to change them."
		fail(http.StatusConflict)
		return
	}
	var settings *ssogatev1.IdentityProviderSettings
	switch f.Method {
	case "url":
		settings = p.fromURL(r.Context(), f, s.idp)
	case "file":
		settings = p.fromUpload(r, f)
	case "xml":
		settings = fromXML([]byte(f.XML), "metadata_xml", f)
	case "fields":
		settings = fromFields(f)
	default:
		v.Error = "Choose one of the four ways below."
		fail(http.StatusBadRequest)
		return
	}
	if settings == nil {
		fail(http.StatusBadRequest)
		return
	}
	next := &ssogatev1.Connection{Id: s.conn.Id, IdentityProvider: settings, Etag: s.conn.Etag}
	paths := []string{"identity_provider"}
	if s.conn.GetState() == ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT {
		// With the IdP side complete, test logins can start.
		next.State = ssogatev1.ConnectionState_CONNECTION_STATE_TESTING
		paths = append(paths, "state")
	}
	_, err := p.cfg.Connections.UpdateConnection(s.ctx, &ssogatev1.UpdateConnectionRequest{Connection: next,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
	if err != nil {
		code, msg := apiError(err)
		field := map[string]string{"url": "metadata_url", "file": "metadata_file", "xml": "metadata_xml", "fields": "certificate"}[f.Method]
		if f.Method == "fields" && !strings.Contains(msg, "certificates") {
			field = "sso_url"
		}
		f.Errors[field] = adminWords(msg)
		if code == codes.Aborted {
			v.Error = "Someone changed this connection meanwhile. Reload the page and try again."
		}
		fail(http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, Prefix+"test", http.StatusSeeOther)
}

// adminWords rewrites API field paths into what the form calls them.
func adminWords(msg string) string {
	r := strings.NewReplacer("identity_provider.certificates", "Signing certificate", "identity_provider.sso_url", "SSO URL",
		"identity_provider.entity_id", "IdP entity ID", "identity_provider.metadata_url", "Metadata URL",
		"identity_provider.slo_url", "Logout URL", "identity_provider.sso_post_url", "SSO URL (POST)")
	return r.Replace(msg)
}

func (p *Portal) fromURL(ctx context.Context, f *metadataForm, chosen idp) *ssogatev1.IdentityProviderSettings {
	u, err := url.Parse(f.URL)
	switch {
	case f.URL == "":
		f.Errors["metadata_url"] = "Paste the metadata URL. " + chosen.MetadataHint
		return nil
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		f.Errors["metadata_url"] = "This is not a web address. It should start with https://. " + chosen.MetadataHint
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	body, err := netguard.Fetch(ctx, p.cfg.HTTPClient, f.URL, "application/samlmetadata+xml, application/xml, text/xml", maxMetadataBytes)
	var ne *netguard.Error
	switch {
	case errors.As(err, &ne) && ne.Status != 0:
		f.Errors["metadata_url"] = fmt.Sprintf("This address answered HTTP status %d instead of the metadata. Copy it again: %s", ne.Status, chosen.MetadataHint)
		return nil
	case err != nil:
		f.Errors["metadata_url"] = "We could not fetch this address (" + err.Error() + "). It must be an https address reachable from the internet, " +
			"not only inside your network; otherwise download the file and upload it below."
		return nil
	}
	settings := fromXML(body, "metadata_url", f)
	if settings != nil {
		settings.MetadataUrl = f.URL
	}
	return settings
}

func (p *Portal) fromUpload(r *http.Request, f *metadataForm) *ssogatev1.IdentityProviderSettings {
	file, _, err := r.FormFile("metadata_file")
	if err != nil {
		f.Errors["metadata_file"] = "Choose the metadata file (an .xml file) you downloaded from your IdP."
		return nil
	}
	defer file.Close()
	body, err := io.ReadAll(io.LimitReader(file, maxMetadataBytes+1))
	if err != nil || len(body) > maxMetadataBytes {
		f.Errors["metadata_file"] = fmt.Sprintf("The file could not be read or is larger than %d KiB.", maxMetadataBytes>>10)
		return nil
	}
	return fromXML(body, "metadata_file", f)
}

// fromXML reads metadata; a problem is reported next to field.
func fromXML(body []byte, field string, f *metadataForm) *ssogatev1.IdentityProviderSettings {
	if len(bytes.TrimSpace(body)) == 0 {
		f.Errors[field] = "Paste the IdP metadata: an XML document starting with <EntityDescriptor (or <md:EntityDescriptor)."
		return nil
	}
	if bytes.Contains(body, []byte("-----BEGIN CERTIFICATE-----")) && !bytes.Contains(body, []byte("EntityDescriptor")) {
		f.Errors[field] = "This is a certificate, not metadata. Use \"Enter the fields\" below for a certificate with the SSO URL and entity ID."
		return nil
	}
	md, err := saml.ParseIdPMetadata(body, "")
	if err != nil {
		f.Errors[field] = "This is not IdP metadata we can use: " + strings.TrimPrefix(err.Error(), "idp metadata: ")
		return nil
	}
	return SettingsFromMetadata(md)
}

// SettingsFromMetadata is the IdP side of a connection as metadata states it.
func SettingsFromMetadata(md saml.IdentityProvider) *ssogatev1.IdentityProviderSettings {
	idp := &ssogatev1.IdentityProviderSettings{EntityId: md.EntityID, SsoUrl: md.SSORedirectURL, SloUrl: md.SLORedirectURL, SloPostUrl: md.SLOPostURL}
	if idp.SsoUrl == "" {
		idp.SsoPostUrl = md.SSOPostURL
	}
	for _, cert := range md.Certificates {
		idp.Certificates = append(idp.Certificates, &ssogatev1.Certificate{
			Pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		})
	}
	return idp
}

func fromFields(f *metadataForm) *ssogatev1.IdentityProviderSettings {
	if f.EntityID == "" {
		f.Errors["entity_id"] = "Paste your IdP's entity ID (also called Issuer or IdP identifier)."
	}
	if f.SSOURL == "" {
		f.Errors["sso_url"] = "Paste your IdP's SAML sign-in URL (SSO URL, SAML 2.0 Endpoint, Login URL)."
	}
	cert := f.Cert
	if cert != "" && !strings.Contains(cert, "-----BEGIN CERTIFICATE-----") {
		// IdP consoles often show the certificate as bare base64.
		cert = "-----BEGIN CERTIFICATE-----\n" + strings.Join(strings.Fields(cert), "") + "\n-----END CERTIFICATE-----\n"
	}
	if cert == "" {
		f.Errors["certificate"] = "Paste your IdP's signing certificate (X.509, the text between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----)."
	} else if block, _ := pem.Decode([]byte(cert)); block == nil {
		f.Errors["certificate"] = "This is not a certificate we can read. Copy the whole X.509 signing certificate from your IdP (Base64)."
	}
	if len(f.Errors) > 0 {
		return nil
	}
	return &ssogatev1.IdentityProviderSettings{EntityId: f.EntityID, SsoUrl: f.SSOURL, SloUrl: f.SLOURL,
		Certificates: []*ssogatev1.Certificate{{Pem: cert}}}
}

func (p *Portal) testPage(w http.ResponseWriter, r *http.Request, s *sess) {
	v := p.view(s, "test")
	if s.conn.GetState() == ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT {
		v.Error = "Give us your IdP's metadata first (step 3): test logins need it."
	}
	p.render(w, http.StatusOK, "test", "Test the sign-in", v, page.Options{FormAction: formAction(s.conn)})
}

// formAction admits the IdP's sign-in origin as a place the test form may
// end up (its answer redirects there).
func formAction(c *ssogatev1.Connection) []string {
	var out []string
	for _, raw := range []string{c.GetIdentityProvider().GetSsoUrl(), c.GetIdentityProvider().GetSsoPostUrl()} {
		if u, err := url.Parse(raw); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}

// TestState marks a test login's pending request as started from the
// portal, with the IdP the admin chose.
const TestState = "setup-portal:"

func (p *Portal) testStart(w http.ResponseWriter, r *http.Request, s *sess) {
	resp, err := p.cfg.Logins.StartLogin(s.ctx, &ssogatev1.StartLoginRequest{ConnectionId: s.conn.Id, Test: true,
		State: TestState + s.idp.Key, ForceAuthn: r.PostFormValue("force_authn") == "1"})
	if err != nil {
		v := p.view(s, "test")
		_, msg := apiError(err)
		v.Error = "The test login could not start: " + msg
		p.render(w, http.StatusBadRequest, "test", "Test the sign-in", v, page.Options{FormAction: formAction(s.conn)})
		return
	}
	page.SecurityHeaders(w.Header(), "", formAction(s.conn)...)
	http.Redirect(w, r, resp.RedirectUrl, http.StatusSeeOther)
}

func (p *Portal) activatePage(w http.ResponseWriter, r *http.Request, s *sess) {
	p.render(w, http.StatusOK, "activate", "Turn on single sign-on", p.view(s, "activate"), page.Options{})
}

func (p *Portal) activate(w http.ResponseWriter, r *http.Request, s *sess) {
	if active(s.conn) {
		http.Redirect(w, r, Prefix+"status", http.StatusSeeOther)
		return
	}
	_, err := p.cfg.Connections.UpdateConnection(s.ctx, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: s.conn.Id, State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE, Etag: s.conn.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}})
	if err != nil {
		v := p.view(s, "activate")
		code, msg := apiError(err)
		switch code {
		case codes.FailedPrecondition:
			v.Error = "Not yet: run a test login that succeeds first (step 4). A test counts only if it passed after your IdP settings last changed."
		default:
			v.Error = "Activation failed: " + adminWords(msg)
		}
		p.render(w, http.StatusConflict, "activate", "Turn on single sign-on", v, page.Options{})
		return
	}
	http.Redirect(w, r, Prefix+"status", http.StatusSeeOther)
}

// recentLogins is how many login outcomes the status page lists.
const recentLogins = 20

func (p *Portal) status(w http.ResponseWriter, r *http.Request, s *sess) {
	v := p.view(s, "status")
	events, err := p.loginEvents(s, "", recentLogins)
	if err != nil {
		v.Error = err.Error()
	}
	v.Events = events
	if v.Notices, err = p.notices(s.ctx, s); err != nil {
		p.cfg.Log.ErrorContext(s.ctx, "portal notices", "connection_id", s.conn.Id, "error", err)
		v.Error = "The certificate and metadata notices are unavailable right now; reload the page in a minute."
	}
	if s.scim {
		p.scimState(s, v)
	}
	p.render(w, http.StatusOK, "status", "Single sign-on status", v, page.Options{})
}

// loginEvents lists the connection's recent login outcomes (or the ones
// with a reference id), newest first.
func (p *Portal) loginEvents(s *sess, reference string, max int) ([]eventView, error) {
	var out []eventView
	token := ""
	for pages := 0; pages < 5 && len(out) < max; pages++ {
		resp, err := p.cfg.Audit.ListAuditEvents(s.ctx, &ssogatev1.ListAuditEventsRequest{ConnectionId: s.conn.Id,
			CorrelationId: reference, PageSize: 200, PageToken: token})
		if err != nil {
			_, msg := apiError(err)
			return out, errors.New("The sign-in history is unavailable: " + msg)
		}
		for _, e := range resp.Events {
			label, ok := loginLabels[e.Type]
			if !ok || len(out) == max {
				continue
			}
			ev := eventView{Time: e.Time.AsTime(), Type: e.Type, Label: label, Message: e.Message, CorrelationID: e.CorrelationId}
			if e.Reason != ssogatev1.RejectionReason_REJECTION_REASON_UNSPECIFIED {
				short := saml.Reason(strings.TrimPrefix(e.Reason.String(), "REJECTION_REASON_"))
				ev.Reason, ev.Refused, ev.Fix = string(short), true, fixFor(short, s.idp.Key)
			}
			out = append(out, ev)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	return out, nil
}

var loginLabels = map[string]string{
	"login.succeeded": "Signed in", "login.failed": "Refused", "login.denied": "Denied by access rules", "login.tested": "Test login",
}

func (p *Portal) lookup(w http.ResponseWriter, r *http.Request, s *sess) {
	v := p.view(s, "lookup")
	v.Ref = strings.TrimSpace(r.URL.Query().Get("reference"))
	if v.Ref != "" {
		if len(v.Ref) > 128 {
			v.Error = "A reference is a short code such as 3f2a9c…; paste only the reference from the error page."
		} else {
			found, err := p.loginEvents(s, v.Ref, 10)
			if err != nil {
				v.Error = err.Error()
			}
			v.Found, v.Done = found, true
		}
	}
	p.render(w, http.StatusOK, "lookup", "Look up a sign-in problem", v, page.Options{})
}
