package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/events"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/netguard"
	"github.com/ssogate/ssogate/page"
	"github.com/ssogate/ssogate/store"
)

// Prefix is where the portal lives; a setup link is Prefix + secret.
const Prefix = "/setup/"

// OpenPattern is the route that opens a portal session from a link; its
// path holds the secret, so request logs must not print it.
const OpenPattern = "GET /setup/{secret}"

const (
	cookieName    = "ssogate_setup"
	idpCookieName = "ssogate_setup_idp"
	// maxFormBytes bounds every form body but the metadata upload.
	maxFormBytes = 64 << 10
	// maxMetadataBytes bounds uploaded, pasted and fetched metadata.
	maxMetadataBytes = 1 << 20
	secretBytes      = 32
)

// Audit event types the portal records itself.
const (
	AuditLinkOpened = "setup_link.opened"
)

//go:embed templates/*.html
var templates embed.FS

// NewSecret returns a new setup-link secret: 256 random bits, base64url.
func NewSecret(rand io.Reader) (string, error) {
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("setup link secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashSecret is how a secret is stored and looked up.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Links finds setup links by their secret's hash.
type Links interface {
	SetupLinkByHash(ctx context.Context, hash []byte) (store.SetupLink, error)
}

// Connections is the part of the ConnectionService the portal uses.
type Connections interface {
	GetConnection(context.Context, *ssogatev1.GetConnectionRequest) (*ssogatev1.GetConnectionResponse, error)
	UpdateConnection(context.Context, *ssogatev1.UpdateConnectionRequest) (*ssogatev1.UpdateConnectionResponse, error)
	GetServiceProviderMetadata(context.Context, *ssogatev1.GetServiceProviderMetadataRequest) (*ssogatev1.GetServiceProviderMetadataResponse, error)
}

// Logins starts test logins.
type Logins interface {
	StartLogin(context.Context, *ssogatev1.StartLoginRequest) (*ssogatev1.StartLoginResponse, error)
}

// Audit reads the audit log.
type Audit interface {
	ListAuditEvents(context.Context, *ssogatev1.ListAuditEventsRequest) (*ssogatev1.ListAuditEventsResponse, error)
}

// Limiter bounds how often one client may act on one connection; nil
// means no limit.
type Limiter interface {
	Allow(r *http.Request, connectionID string) (ok bool, retryAfter time.Duration)
}

// Config is what the portal needs. Links, Connections, Logins, Audit,
// AsLink and Record are required.
type Config struct {
	// ExternalURL is the public base URL; the Origin of portal forms.
	ExternalURL string
	Pages       *page.Set
	Links       Links
	Connections Connections
	Logins      Logins
	Audit       Audit
	// Events, when set, is the event log the status page reads the
	// connection's certificate and metadata notices from.
	Events events.Log
	// Directory makes and lists SCIM tokens; nil leaves out the SCIM step.
	Directory Directory
	// AsLink marks ctx so that changes made with it are attributed to the
	// link ("setup link <id>") in the audit log.
	AsLink func(ctx context.Context, linkID string) context.Context
	// Record appends an audit event of the portal's own.
	Record func(ctx context.Context, typ, connectionID string, detail map[string]any)
	// RequestID returns the request's correlation id.
	RequestID func(ctx context.Context) string
	// HTTPClient fetches IdP metadata URLs the admin submits; it decides
	// which addresses may be reached and how long a fetch may take (a
	// netguard client: public https only, in production).
	HTTPClient *http.Client
	Limiter    Limiter
	Log        *slog.Logger
	Now        func() time.Time
}

// Portal serves /setup/.
type Portal struct {
	cfg    Config
	pages  *page.Set
	origin string
	secure bool
}

// New checks cfg and parses the templates.
func New(cfg Config) (*Portal, error) {
	switch {
	case cfg.Links == nil, cfg.Connections == nil, cfg.Logins == nil, cfg.Audit == nil, cfg.AsLink == nil, cfg.Record == nil:
		return nil, errors.New("portal: Links, Connections, Logins, Audit, AsLink and Record are required")
	case cfg.Pages == nil:
		return nil, errors.New("portal: Pages is required")
	}
	u, err := url.Parse(cfg.ExternalURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("portal: external URL %q is not absolute", cfg.ExternalURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = netguard.NewClient(netguard.Options{})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestID == nil {
		cfg.RequestID = func(context.Context) string { return "" }
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	return &Portal{cfg: cfg, pages: cfg.Pages, origin: u.Scheme + "://" + u.Host, secure: !(u.Scheme == "http" && loopback)}, nil
}

// Templates are the portal's pages, for the caller's page.Set.
func Templates() (embed.FS, string) { return templates, "templates/*.html" }

// Funcs are the template functions the portal's pages use.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"date": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"dict": func(kv ...string) map[string]string {
			m := map[string]string{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		},
	}
}

// Register adds the portal's routes to mux.
func (p *Portal) Register(mux *http.ServeMux) {
	mux.HandleFunc(OpenPattern, p.open)
	mux.HandleFunc("GET /setup/{$}", p.session(p.home))
	mux.HandleFunc("GET /setup/idp", p.session(p.pickIdP))
	mux.HandleFunc("GET /setup/guide/{idp}", p.session(p.guide))
	mux.HandleFunc("GET /setup/sp-metadata.xml", p.session(p.spMetadata))
	mux.HandleFunc("GET /setup/metadata", p.session(p.metadataForm))
	mux.HandleFunc("POST /setup/metadata", p.session(p.post(p.metadataSubmit)))
	mux.HandleFunc("GET /setup/test", p.session(p.testPage))
	mux.HandleFunc("POST /setup/test", p.session(p.post(p.testStart)))
	mux.HandleFunc("GET /setup/activate", p.session(p.activatePage))
	mux.HandleFunc("POST /setup/activate", p.session(p.post(p.activate)))
	mux.HandleFunc("GET /setup/status", p.session(p.status))
	mux.HandleFunc("GET /setup/lookup", p.session(p.lookup))
	mux.HandleFunc("GET /setup/scim", p.scimSession(p.scimPage))
	mux.HandleFunc("POST /setup/scim/tokens", p.scimSession(p.post(p.scimCreate)))
	mux.HandleFunc("POST /setup/scim/revoke", p.scimSession(p.post(p.scimRevoke)))
}

// sess is one portal request's session: its link and connection.
type sess struct {
	link   store.SetupLink
	secret string
	conn   *ssogatev1.Connection
	// ctx names the link as the caller of changes.
	ctx  context.Context
	csrf string
	idp  idp
	// scim is whether the link covers the SCIM step.
	scim bool
}

type handler func(w http.ResponseWriter, r *http.Request, s *sess)

// open turns a link into a portal session and sends the browser on
// without the secret in its address.
func (p *Portal) open(w http.ResponseWriter, r *http.Request) {
	secret := r.PathValue("secret")
	link, err := p.usableLink(r.Context(), secret)
	if err != nil {
		p.linkUnusable(w, r, err)
		return
	}
	if !p.allowed(w, r, link.ConnectionID) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: secret, Path: Prefix, HttpOnly: true, Secure: p.secure,
		SameSite: http.SameSiteStrictMode, Expires: link.ExpiresAt})
	p.cfg.Record(r.Context(), AuditLinkOpened, link.ConnectionID, map[string]any{"setup_link_id": link.ID,
		"caller": "setup link " + link.ID})
	page.SecurityHeaders(w.Header(), "")
	if !hasFeature(link, ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SAML) && p.cfg.Directory != nil {
		http.Redirect(w, r, Prefix+"scim", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

var (
	errLinkUnknown = errors.New("this setup link is not valid")
	errLinkEnded   = errors.New("this setup link has expired or was revoked")
)

func (p *Portal) usableLink(ctx context.Context, secret string) (store.SetupLink, error) {
	if len(secret) < 40 || len(secret) > 64 {
		return store.SetupLink{}, errLinkUnknown
	}
	link, err := p.cfg.Links.SetupLinkByHash(ctx, HashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return store.SetupLink{}, errLinkUnknown
	}
	if err != nil {
		return store.SetupLink{}, err
	}
	if !link.Usable(p.cfg.Now()) {
		return store.SetupLink{}, errLinkEnded
	}
	return link, nil
}

// linkUnusable answers a bad, expired or revoked link with a plain page,
// and drops any portal cookie.
func (p *Portal) linkUnusable(w http.ResponseWriter, r *http.Request, err error) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: p.secure,
		SameSite: http.SameSiteStrictMode})
	status, msg := http.StatusNotFound, "This setup link is not valid. Check that you copied the whole link, or ask "+p.pages.Brand().ProductName+" for a new one."
	switch {
	case errors.Is(err, errLinkEnded):
		status, msg = http.StatusGone, "This setup link has expired or was revoked. Ask "+p.pages.Brand().ProductName+" for a new one."
	case errors.Is(err, errNoSession):
		status, msg = http.StatusUnauthorized, "Open the setup link you were sent to continue. Setup pages work only from that link, in the browser that opened it."
	case !errors.Is(err, errLinkUnknown):
		p.cfg.Log.ErrorContext(r.Context(), "setup portal: link lookup", "request_id", p.cfg.RequestID(r.Context()), "error", err)
		status, msg = http.StatusInternalServerError, "Something went wrong on our side. Please try again."
	}
	p.pages.Render(w, status, "plain", "Setup link", msg, page.Options{})
}

var errNoSession = errors.New("no portal session")

// session loads the portal session from the cookie, or refuses; its pages
// need a link that covers single sign-on.
func (p *Portal) session(h handler) http.HandlerFunc {
	return p.sessionFor(ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SAML, h)
}

// scimSession is session for the SCIM step: a link without the SCIM
// feature (or a portal without a Directory) gets a plain 404.
func (p *Portal) scimSession(h handler) http.HandlerFunc {
	return p.sessionFor(ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SCIM, h)
}

func (p *Portal) sessionFor(feature ssogatev1.SetupLinkFeature, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil || c.Value == "" {
			p.linkUnusable(w, r, errNoSession)
			return
		}
		link, err := p.usableLink(r.Context(), c.Value)
		if err != nil {
			p.linkUnusable(w, r, err)
			return
		}
		switch {
		case feature == ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SCIM && (p.cfg.Directory == nil || !hasFeature(link, feature)):
			p.pages.Render(w, http.StatusNotFound, "plain", "Setup link", "This setup link does not cover directory sync (SCIM). Ask "+
				p.pages.Brand().ProductName+" for a link that does.", page.Options{})
			return
		case !hasFeature(link, feature):
			p.pages.Render(w, http.StatusForbidden, "plain", "Setup link", "This setup link does not cover single sign-on settings.", page.Options{})
			return
		}
		ctx := p.cfg.AsLink(r.Context(), link.ID)
		got, err := p.cfg.Connections.GetConnection(ctx, &ssogatev1.GetConnectionRequest{ConnectionId: link.ConnectionID})
		if err != nil {
			p.linkUnusable(w, r, err)
			return
		}
		s := &sess{link: link, secret: c.Value, conn: got.Connection, ctx: ctx, csrf: csrfToken(c.Value, link.ID),
			scim: p.cfg.Directory != nil && hasFeature(link, ssogatev1.SetupLinkFeature_SETUP_LINK_FEATURE_SCIM)}
		s.idp, _ = idpByKey("other")
		if ck, err := r.Cookie(idpCookieName); err == nil {
			if chosen, ok := idpByKey(ck.Value); ok {
				s.idp = chosen
			}
		}
		h(w, r, s)
	}
}

func hasFeature(l store.SetupLink, f ssogatev1.SetupLinkFeature) bool {
	if len(l.Features) == 0 {
		return true
	}
	for _, have := range l.Features {
		if have == f.String() {
			return true
		}
	}
	return false
}

// csrfToken binds a form to the link secret; it is derived, so nothing
// more is stored, and it changes with every link.
func csrfToken(secret, linkID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ssogate setup portal csrf\x00" + linkID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// post guards a state-changing handler: bounded body, same-site origin,
// CSRF token, rate limit.
func (p *Portal) post(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, s *sess) {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			p.refuseCSRF(w, r, "Sec-Fetch-Site "+site)
			return
		}
		// Pages are served with no-referrer, under which browsers send
		// "Origin: null" on their own form posts; then only a same-origin
		// Sec-Fetch-Site vouches for the post.
		switch o := r.Header.Get("Origin"); {
		case o == "null" && r.Header.Get("Sec-Fetch-Site") != "same-origin":
			p.refuseCSRF(w, r, "Origin null without Sec-Fetch-Site same-origin")
			return
		case o != "" && o != "null" && o != p.origin:
			p.refuseCSRF(w, r, "Origin "+o)
			return
		}
		limit := int64(maxFormBytes)
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			limit = maxMetadataBytes + maxFormBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		var err error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			err = r.ParseMultipartForm(limit)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				p.pages.Render(w, http.StatusRequestEntityTooLarge, "plain", "Too large",
					fmt.Sprintf("What you sent is larger than %d KiB. Metadata files are much smaller: check that you chose the right file.", limit>>10), page.Options{})
				return
			}
			p.pages.Render(w, http.StatusBadRequest, "plain", "Form not readable", "The form could not be read. Go back and send it again.", page.Options{})
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			p.refuseCSRF(w, r, "token")
			return
		}
		if !p.allowed(w, r, s.link.ConnectionID) {
			return
		}
		h(w, r, s)
	}
}

func (p *Portal) refuseCSRF(w http.ResponseWriter, r *http.Request, what string) {
	p.cfg.Log.WarnContext(r.Context(), "setup portal: cross-site or stale form refused", "request_id", p.cfg.RequestID(r.Context()), "check", what)
	p.pages.Render(w, http.StatusForbidden, "plain", "Form refused",
		"This form did not come from this setup page (or the page is stale). Go back to the setup page, reload it and try again.", page.Options{})
}

func (p *Portal) allowed(w http.ResponseWriter, r *http.Request, connectionID string) bool {
	if p.cfg.Limiter == nil {
		return true
	}
	ok, after := p.cfg.Limiter.Allow(r, connectionID)
	if ok {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(after.Seconds()+0.999)))
	p.pages.Render(w, http.StatusTooManyRequests, "plain", "Slow down", fmt.Sprintf("Too many attempts; wait %s and try again.", after.Round(time.Second)), page.Options{})
	return false
}

// apiError is what a service error says, in the admin's words, and its
// code.
func apiError(err error) (codes.Code, string) {
	st := status.Convert(err)
	return st.Code(), st.Message()
}
