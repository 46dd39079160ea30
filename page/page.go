// Package page renders ssogate's HTML pages: one layout, one stylesheet,
// the vendor's branding and the security headers every page gets. A
// package with pages (the setup portal, the end-user error pages) hands it
// its own templates; each defines "content" (and may define "script").
//
// Guarantees: every response carries a fresh nonce and a Content-Security-
// Policy that admits only the inline style and scripts carrying it (no
// other origin, no framing, no base URI, forms to this origin unless the
// caller names another), no-referrer, nosniff and no-store. Templates are
// html/template, so every value is escaped for its context.
package page

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed templates/*.html style.css
var files embed.FS

// Branding names the vendor's product on every page.
type Branding struct {
	// ProductName is the product the user came from; default "the
	// application".
	ProductName string
	// SupportURL is where to ask the vendor for help; optional.
	SupportURL string
}

// View is what a template sees: .Title, .Brand, .Nonce and the caller's
// .Data.
type View struct {
	Title string
	Brand Branding
	Nonce string
	Data  any
	// EndUser pages get the "back to <product>" link.
	EndUser bool
	// Back is where that link leads; without it the page says to return
	// to the product.
	Back string
}

// Set is a set of pages sharing the layout.
type Set struct {
	brand Branding
	pages map[string]*template.Template
	css   template.CSS
}

// New parses the layout and, for each file of fsys matching pattern, one
// page named by its base name without ".html". funcs are added to every
// page.
func New(brand Branding, fsys fs.FS, pattern string, funcs template.FuncMap) (*Set, error) {
	if brand.ProductName == "" {
		brand.ProductName = "the application"
	}
	css, err := files.ReadFile("style.css")
	if err != nil {
		return nil, fmt.Errorf("page: stylesheet: %w", err)
	}
	layout, err := template.New("layout").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("page: layout: %w", err)
	}
	s := &Set{brand: brand, pages: map[string]*template.Template{}, css: template.CSS(css)}
	add := func(fsys fs.FS, pattern string) error {
		names, err := fs.Glob(fsys, pattern)
		if err != nil {
			return err
		}
		// Files named _*.html are partials every page of the set shares.
		base := template.Must(layout.Clone())
		var pages []string
		for _, name := range names {
			if strings.HasPrefix(path.Base(name), "_") {
				if _, err := base.ParseFS(fsys, name); err != nil {
					return fmt.Errorf("partial %s: %w", name, err)
				}
				continue
			}
			pages = append(pages, name)
		}
		for _, name := range pages {
			t, err := template.Must(base.Clone()).ParseFS(fsys, name)
			if err != nil {
				return fmt.Errorf("page %s: %w", name, err)
			}
			s.pages[strings.TrimSuffix(path.Base(name), ".html")] = t
		}
		return nil
	}
	if err := add(files, "templates/[^l]*.html"); err != nil {
		return nil, err
	}
	if fsys != nil {
		if err := add(fsys, pattern); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Brand returns the set's branding.
func (s *Set) Brand() Branding { return s.brand }

// Options adjust one response.
type Options struct {
	// FormAction lists origins forms may post (or redirect after a post)
	// to besides this one: the test-login form, whose answer redirects to
	// the IdP.
	FormAction []string
	// EndUser adds the "back to <product>" link, to Back when known.
	EndUser bool
	Back    string
}

// Render writes page name with the security headers. A template failure
// is reported as a plain 500: the half-rendered page is never sent.
func (s *Set) Render(w http.ResponseWriter, status int, name, title string, data any, o Options) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "page "+name+" is missing", http.StatusInternalServerError)
		return
	}
	nonce, err := newNonce()
	if err != nil {
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", struct {
		View
		CSS template.CSS
	}{View{Title: title, Brand: s.brand, Nonce: nonce, Data: data, EndUser: o.EndUser, Back: o.Back}, s.css}); err != nil {
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	SecurityHeaders(h, nonce, o.FormAction...)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// SecurityHeaders sets the headers every page gets; nonce admits the
// page's own inline style and scripts.
func SecurityHeaders(h http.Header, nonce string, formAction ...string) {
	fa := append([]string{"'self'"}, formAction...)
	src := "'none'"
	if nonce != "" {
		src = "'nonce-" + nonce + "'"
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+src+"; script-src "+src+
		"; img-src 'self' data:; form-action "+strings.Join(fa, " ")+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func newNonce() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("page nonce: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b[:]), nil
}

// Error is the end user's page for a refused sign-in: the message, the
// reference id for their IT administrator, and a way back.
type Error struct {
	Message       string
	CorrelationID string
	// Back is the product's address, when known.
	Back string
	// Heading is the page's title; "" is "We could not sign you in".
	Heading string
}

// RenderError writes the end-user error page.
func (s *Set) RenderError(w http.ResponseWriter, status int, e Error) {
	s.Render(w, status, "error", cmp.Or(e.Heading, "We could not sign you in"), e, Options{EndUser: true, Back: e.Back})
}

// RenderInfo writes a plain end-user page with a title and a message.
func (s *Set) RenderInfo(w http.ResponseWriter, status int, title, message, back string) {
	s.Render(w, status, "info", title, message, Options{EndUser: true, Back: back})
}
