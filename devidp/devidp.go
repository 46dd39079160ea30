// Package devidp is a SAML identity provider for development and tests:
// github.com/crewjam/saml's samlidp (an implementation that is not ours),
// with a fresh RSA-2048 key, and the users alice (groups eng, admins) and
// bob (group sales). It is never part of `ssogate serve`: only `ssogate dev`
// and tests start it. Its administrative routes are not exposed.
package devidp

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml/logger"
	"github.com/crewjam/saml/samlidp"
)

// User is a development account.
type User struct {
	Name, Password, Email, GivenName, Surname string
	Groups                                    []string
}

// DefaultUsers are the accounts `ssogate dev` offers.
var DefaultUsers = []User{
	{Name: "alice", Password: "alice", Email: "alice@example.com", GivenName: "Alice", Surname: "Anders", Groups: []string{"eng", "admins"}},
	{Name: "bob", Password: "bob", Email: "bob@example.com", GivenName: "Bob", Surname: "Berg", Groups: []string{"sales"}},
}

// GroupsAttribute is the attribute the IdP sends group memberships in
// (eduPersonAffiliation), for a connection's attribute mapping.
const GroupsAttribute = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"

// IdP is a running development identity provider.
type IdP struct {
	server *samlidp.Server
	base   *url.URL
	// Certificate is the IdP's signing certificate.
	Certificate *x509.Certificate
	// stale is a certificate the IdP never signs with: the one its
	// stale metadata names, as metadata kept from before a rollover would.
	stale *x509.Certificate
	// trust, when set, fetches the SP metadata of an SP the IdP does not
	// know yet, by its entity ID (TrustServiceProviders).
	trust func(ctx context.Context, entityID string) (id string, metadata []byte, err error)
}

// TrustServiceProviders makes the IdP trust any SP that resolve accepts:
// on an AuthnRequest from an unknown entity ID it asks resolve for the SP's
// metadata (and the id to file it under), as an IdP admin who imports SP
// metadata would. `ssogate dev` trusts every connection of its server so.
func (i *IdP) TrustServiceProviders(resolve func(ctx context.Context, entityID string) (id string, metadata []byte, err error)) {
	i.trust = resolve
}

// New builds an IdP whose public base URL is base (its routes live below
// it: /metadata, /sso, /slo, /login). Its logs go to logw (io.Discard to
// silence it).
func New(base string, users []User, logw io.Writer) (*IdP, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("devidp: base URL %q is not absolute", base)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate key: %w", err)
	}
	cert, err := selfSigned(key, "ssogate dev IdP")
	if err != nil {
		return nil, err
	}
	srv, err := samlidp.New(samlidp.Options{
		URL:         *u,
		Key:         key,
		Signer:      key,
		Certificate: cert,
		Store:       &samlidp.MemoryStore{},
		Logger:      logger.Interface(log.New(logw, "devidp: ", log.LstdFlags)),
	})
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	staleKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate key: %w", err)
	}
	stale, err := selfSigned(staleKey, "ssogate dev IdP (retired)")
	if err != nil {
		return nil, err
	}
	idp := &IdP{server: srv, base: u, Certificate: cert, stale: stale}
	for _, user := range users {
		pw := user.Password
		body, _ := json.Marshal(samlidp.User{
			Name: user.Name, PlaintextPassword: &pw, Email: user.Email, Groups: user.Groups,
			GivenName: user.GivenName, Surname: user.Surname, CommonName: user.GivenName + " " + user.Surname,
		})
		if err := idp.admin(http.MethodPut, "/users/"+user.Name, body); err != nil {
			return nil, err
		}
	}
	return idp, nil
}

// Handler serves the IdP's browser routes. Mount it at the base URL's path
// (with http.StripPrefix when that path is not "/").
func (i *IdP) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/stale-metadata":
			md, err := i.StaleMetadata()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/samlmetadata+xml")
			_, _ = w.Write(md)
		case r.URL.Path == "/sso" && i.trust != nil:
			if err := i.learn(r); err != nil {
				http.Error(w, "devidp: "+err.Error(), http.StatusBadRequest)
				return
			}
			i.server.ServeHTTP(w, r)
		case r.URL.Path == "/metadata", r.URL.Path == "/sso", r.URL.Path == "/slo",
			r.URL.Path == "/login", r.URL.Path == "/logout":
			i.server.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// MetadataURL is where the IdP publishes its metadata.
func (i *IdP) MetadataURL() string { return i.base.String() + "/metadata" }

// Metadata returns the IdP's metadata document.
func (i *IdP) Metadata() ([]byte, error) {
	rec := httptest.NewRecorder()
	i.server.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metadata", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("devidp: metadata: status %d", rec.Code)
	}
	return rec.Body.Bytes(), nil
}

// StaleMetadata is the IdP's metadata with a certificate it does not sign
// with: what an SP holds when it kept the metadata from before a
// certificate rollover. A login then fails on an untrusted certificate.
func (i *IdP) StaleMetadata() ([]byte, error) {
	md, err := i.Metadata()
	if err != nil {
		return nil, err
	}
	cur := base64.StdEncoding.EncodeToString(i.Certificate.Raw)
	if !bytes.Contains(md, []byte(cur)) {
		return nil, fmt.Errorf("devidp: metadata does not hold the signing certificate")
	}
	return bytes.ReplaceAll(md, []byte(cur), []byte(base64.StdEncoding.EncodeToString(i.stale.Raw))), nil
}

// learn registers the SP that sent the AuthnRequest in r, from the
// metadata trust finds for its Issuer. It refetches every time, so a
// changed SP (a new key) is picked up as well.
func (i *IdP) learn(r *http.Request) error {
	var raw []byte
	switch r.Method {
	case http.MethodGet:
		b, err := base64.StdEncoding.DecodeString(r.URL.Query().Get("SAMLRequest"))
		if err != nil {
			return fmt.Errorf("SAMLRequest is not base64: %w", err)
		}
		raw, err = io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), 1<<20))
		if err != nil {
			return fmt.Errorf("SAMLRequest does not inflate: %w", err)
		}
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return err
		}
		if raw, err = base64.StdEncoding.DecodeString(form.Get("SAMLRequest")); err != nil {
			return fmt.Errorf("SAMLRequest is not base64: %w", err)
		}
	default:
		return nil
	}
	var req struct {
		Issuer string `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	}
	if err := xml.Unmarshal(raw, &req); err != nil || req.Issuer == "" {
		return fmt.Errorf("AuthnRequest has no Issuer")
	}
	id, md, err := i.trust(r.Context(), strings.TrimSpace(req.Issuer))
	if err != nil {
		return fmt.Errorf("SP %q is not trusted: %w", req.Issuer, err)
	}
	return i.RegisterServiceProvider(id, md)
}

// RegisterServiceProvider trusts a Service Provider from its metadata.
func (i *IdP) RegisterServiceProvider(id string, metadata []byte) error {
	return i.admin(http.MethodPut, "/services/"+url.PathEscape(id), metadata)
}

func (i *IdP) admin(method, path string, body []byte) error {
	rec := httptest.NewRecorder()
	i.server.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
	if rec.Code/100 != 2 {
		return fmt.Errorf("devidp: %s %s: status %d: %s", method, path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return nil
}

func selfSigned(key *rsa.PrivateKey, cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devidp: certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
