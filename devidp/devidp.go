// Package devidp is a SAML identity provider for development and tests:
// github.com/crewjam/saml's samlidp (an implementation that is not ours),
// with a fresh RSA-2048 key, and the users alice (groups eng, admins) and
// bob (group sales). It is never part of `ssogate serve`: only `ssogate dev`
// and tests start it. Its administrative routes are not exposed.
package devidp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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
	idp := &IdP{server: srv, base: u, Certificate: cert}
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
