// Package consent is the interstitial that stands between an IdP-initiated
// (unsolicited) SAML login and the code it yields: "Continue to <app> as
// alice@acme.com?". It defeats login CSRF: a cross-site POST of an
// attacker's own valid response to the ACS only shows this page in the
// victim's browser; nothing is issued until the user presses the button.
//
// What it guarantees:
//   - The button posts a one-time token (256 bits, stored hashed by the
//     caller's Store, single-use across replicas, short-lived).
//   - The token is bound to the browser that saw the page: a random value
//     in an HttpOnly, SameSite=Strict cookie set with the page, whose hash
//     is stored with the token. A cross-site POST carries no such cookie,
//     and another browser's token does not match this one's.
//   - The page never submits itself; it has no script at all, a strict
//     Content-Security-Policy (its one style by hash) and cannot be framed.
//
// What it leaves to its caller: verifying the SAML response before Ask
// (replay cache included), and issuing the login after Confirm.
package consent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"
)

//go:embed templates
var files embed.FS

var (
	page  = template.Must(template.ParseFS(files, "templates/continue.html"))
	style = mustRead("templates/style.css")
	// styleHash admits the page's one style element and nothing else.
	styleHash = func() string {
		sum := sha256.Sum256([]byte(style))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}()
)

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot fail at run time
	}
	return string(b)
}

// DefaultTTL is how long the page's button works.
const DefaultTTL = 2 * time.Minute

// CookieName is the browser-binding cookie.
const CookieName = "ssogate_consent"

// FormField carries the one-time token.
const FormField = "consent_token"

// ErrRefused is every refusal of Confirm: unknown, used or expired token,
// or a browser that is not the one the page was shown to. The reasons are
// not told apart to the sender.
var ErrRefused = errors.New("consent: the continue step was refused")

// Store keeps pending consents; Consume must succeed once per id across
// every replica (and fail for an expired one).
type Store interface {
	PutConsent(ctx context.Context, connectionID, id string, binding, payload []byte, expiresAt time.Time) error
	ConsumeConsent(ctx context.Context, connectionID, id string, now time.Time) (binding, payload []byte, err error)
}

// Config configures a Consent.
type Config struct {
	Store Store
	// TTL bounds the time between the page and the button (default
	// DefaultTTL).
	TTL time.Duration
	// InsecureCookie drops the Secure flag (plain-http loopback only).
	InsecureCookie bool
	Now            func() time.Time
	Rand           io.Reader
}

// Consent asks and confirms.
type Consent struct {
	cfg Config
}

// New checks cfg.
func New(cfg Config) (*Consent, error) {
	if cfg.Store == nil || cfg.Now == nil || cfg.Rand == nil {
		return nil, errors.New("consent: Store, Now and Rand are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	return &Consent{cfg: cfg}, nil
}

// Prompt is what the page shows and what Confirm hands back.
type Prompt struct {
	ConnectionID string
	// App names where the user lands (e.g. the return URL's host).
	App string
	// User is who the IdP says the user is (the email, else the NameID).
	User string
	// Action is the URL the button posts to (same origin).
	Action string
	// Then is the origin (scheme://host[:port]) the answer to the button
	// redirects to: CSP form-action covers redirects too.
	Then string
	// Payload is the caller's, returned by Confirm.
	Payload []byte
}

func hash(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

func (c *Consent) random() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(c.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("consent: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Ask stores the pending consent, sets the binding cookie and writes the
// page. cookiePath scopes the cookie (the connection's /saml/{id}/).
func (c *Consent) Ask(ctx context.Context, w http.ResponseWriter, p Prompt, cookiePath string) error {
	token, err := c.random()
	if err != nil {
		return err
	}
	binding, err := c.random()
	if err != nil {
		return err
	}
	expires := c.cfg.Now().Add(c.cfg.TTL)
	if err := c.cfg.Store.PutConsent(ctx, p.ConnectionID, hex.EncodeToString(hash(token)), hash(binding), p.Payload, expires); err != nil {
		return fmt.Errorf("consent: store: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: binding, Path: cookiePath, MaxAge: int(c.cfg.TTL.Seconds()),
		HttpOnly: true, Secure: !c.cfg.InsecureCookie, SameSite: http.SameSiteStrictMode})
	h := w.Header()
	formAction := "'self'"
	if p.Then != "" && !strings.ContainsAny(p.Then, " ;,'\"\r\n") {
		formAction += " " + p.Then
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	return page.Execute(w, struct {
		App, User, Action, Token string
		Style                    template.CSS
	}{p.App, p.User, p.Action, token, template.CSS(style)})
}

// Confirm redeems the posted token, once, for the browser it was shown
// to, clears the cookie, and returns the Prompt's Payload. Every refusal
// is ErrRefused (wrapped with what failed, for the log); store failures
// are returned as they are.
func (c *Consent) Confirm(ctx context.Context, w http.ResponseWriter, r *http.Request, connectionID, cookiePath string) ([]byte, error) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: cookiePath, MaxAge: -1,
		HttpOnly: true, Secure: !c.cfg.InsecureCookie, SameSite: http.SameSiteStrictMode})
	token := r.PostFormValue(FormField)
	if len(token) != 43 {
		return nil, fmt.Errorf("%w: no well-formed token posted", ErrRefused)
	}
	// Consumed before the binding is compared: a wrong browser burns the
	// token, so a leaked token cannot be tried again from elsewhere.
	binding, payload, err := c.cfg.Store.ConsumeConsent(ctx, connectionID, hex.EncodeToString(hash(token)), c.cfg.Now())
	if err != nil {
		return nil, err
	}
	cookie, err := r.Cookie(CookieName)
	if err != nil || cookie.Value == "" {
		return nil, fmt.Errorf("%w: no binding cookie (a cross-site post, or another browser)", ErrRefused)
	}
	if subtle.ConstantTimeCompare(binding, hash(cookie.Value)) != 1 {
		return nil, fmt.Errorf("%w: the token was shown to another browser", ErrRefused)
	}
	return payload, nil
}
