package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestNewDefaultsAndURLs(t *testing.T) {
	sp, err := New(Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com/"})
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		sp.EntityID():    "https://sso.example.com/saml/acme",
		sp.ACSURL():      "https://sso.example.com/saml/acme/acs",
		sp.SLOURL():      "https://sso.example.com/saml/acme/slo",
		sp.MetadataURL(): "https://sso.example.com/saml/acme/metadata",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	cfg := sp.Config()
	if cfg.ClockSkew != time.Minute || cfg.MaxIssueAge != 5*time.Minute ||
		cfg.MaxBodyBytes != 512<<10 || cfg.MaxXMLBytes != 1<<20 || cfg.Now == nil || cfg.Rand == nil {
		t.Errorf("defaults not filled: %+v", cfg)
	}
}

func TestNewKeepsOverriddenIdentity(t *testing.T) {
	sp, err := New(Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com",
		EntityID: "urn:auth0:old-tenant:acme", ACSURL: "https://login.example.com/login/callback?connection=acme"})
	if err != nil {
		t.Fatal(err)
	}
	if sp.EntityID() != "urn:auth0:old-tenant:acme" || sp.ACSURL() != "https://login.example.com/login/callback?connection=acme" {
		t.Errorf("overrides not used: %q %q", sp.EntityID(), sp.ACSURL())
	}
	if sp.SLOURL() != "https://sso.example.com/saml/acme/slo" {
		t.Errorf("SLO URL should stay derived, got %q", sp.SLOURL())
	}
	md, err := sp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`entityID="urn:auth0:old-tenant:acme"`, `Location="https://login.example.com/login/callback?connection=acme"`} {
		if !strings.Contains(string(md), want) {
			t.Errorf("metadata lacks %s", want)
		}
	}
	// xs:anyURI admits relative references, and real SPs use them
	// (Oracle Access Manager's "JSAuth" in gosaml2's captures).
	for _, good := range []string{"JSAuth", "relative/path", `"123"`} {
		if _, err := New(Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com", EntityID: good}); err != nil {
			t.Errorf("New(EntityID %q): %v", good, err)
		}
	}
	for _, bad := range []Config{
		{EntityID: "not a uri"},
		{EntityID: "bad%zzescape"},
		{EntityID: strings.Repeat("a", 1025)},
		{ACSURL: "ftp://x.example/acs"},
		{ACSURL: "/acs"},
	} {
		bad.ConnectionID, bad.ExternalURL = "acme", "https://sso.example.com"
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q, %q) accepted", bad.EntityID, bad.ACSURL)
		}
	}
}

func TestNewNamesBadField(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherCert := selfSignedCert(t, ecKey)
	base := Config{ConnectionID: "acme", ExternalURL: "https://sso.example.com"}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"bad connection id", func(c *Config) { c.ConnectionID = "Acme_1" }, "ConnectionID"},
		{"empty connection id", func(c *Config) { c.ConnectionID = "" }, "ConnectionID"},
		{"no external url", func(c *Config) { c.ExternalURL = "" }, "ExternalURL"},
		{"relative external url", func(c *Config) { c.ExternalURL = "/sso" }, "ExternalURL"},
		{"external url with query", func(c *Config) { c.ExternalURL = "https://a.example?x=1" }, "ExternalURL"},
		{"nil idp cert", func(c *Config) { c.IdP.Certificates = append(c.IdP.Certificates, nil) }, "IdP.Certificates[0]"},
		{"sign without key", func(c *Config) { c.SignRequests = true }, "SigningKey"},
		{"signing cert mismatch", func(c *Config) { c.SigningKey = rsaKey; c.SigningCert = otherCert }, "SigningCert"},
		{"encryption without key", func(c *Config) { c.WantEncryptedAssertions = true }, "DecryptionKey"},
		{"encryption cert mismatch", func(c *Config) { c.DecryptionKey = rsaKey; c.EncryptionCert = otherCert }, "EncryptionCert"},
		{"negative skew", func(c *Config) { c.ClockSkew = -time.Second }, "ClockSkew"},
		{"negative issue age", func(c *Config) { c.MaxIssueAge = -time.Second }, "MaxIssueAge"},
		{"negative body", func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"negative xml", func(c *Config) { c.MaxXMLBytes = -1 }, "MaxXMLBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New() error = %v, want one naming %s", err, tc.field)
			}
		})
	}
}

// selfSignedCert returns a self-signed certificate for key, valid 2020 to
// 2040. t may be nil (in Config edit functions); then errors panic.
func selfSignedCert(t testing.TB, key crypto.Signer) *x509.Certificate {
	fail := func(err error) {
		if t == nil {
			panic(err)
		}
		t.Helper()
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ssogate test"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		fail(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		fail(err)
	}
	return cert
}
