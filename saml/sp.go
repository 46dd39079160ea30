package saml

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults New fills into a Config whose field is zero.
const (
	DefaultClockSkew    = 60 * time.Second
	DefaultMaxIssueAge  = 5 * time.Minute
	DefaultMaxBodyBytes = 512 << 10
	DefaultMaxXMLBytes  = 1 << 20

	DefaultMaxXMLElements       = 5000
	DefaultMaxXMLAttributes     = 10000
	DefaultMaxXMLNamespaceDecls = 10000
)

var connectionIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// ServiceProvider is one connection's SAML Service Provider. It is safe for
// concurrent use; build a new one when the connection's settings change.
type ServiceProvider struct {
	cfg      Config
	entityID string
	acsURL   string
	sloURL   string
	metaURL  string
	// decKeys are the keys assertions may be encrypted to, DecryptionKey
	// first.
	decKeys []DecryptionKey
}

// New validates cfg, fills its defaults and returns the connection's
// ServiceProvider. Errors name the offending Config field.
//
// IdP.EntityID and IdP.Certificates may be empty so that a draft connection
// can already publish SP metadata; ValidateResponse then refuses every
// Response until they are set.
func New(cfg Config) (*ServiceProvider, error) {
	if !connectionIDPattern.MatchString(cfg.ConnectionID) {
		return nil, fmt.Errorf("saml config: ConnectionID %q must match [a-z0-9-]{1,63}", cfg.ConnectionID)
	}
	base, err := normalizeExternalURL(cfg.ExternalURL)
	if err != nil {
		return nil, err
	}
	cfg.ExternalURL = base
	if err := checkIdP(cfg.IdP); err != nil {
		return nil, err
	}
	if err := checkKeys(cfg); err != nil {
		return nil, err
	}
	if err := fillLimits(&cfg); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	cfg.IdP.Certificates = append([]*x509.Certificate(nil), cfg.IdP.Certificates...)
	cfg.DecryptionKeys = append([]DecryptionKey(nil), cfg.DecryptionKeys...)
	derived := base + "/saml/" + cfg.ConnectionID
	sp := &ServiceProvider{
		cfg:      cfg,
		entityID: derived,
		acsURL:   derived + "/acs",
		sloURL:   derived + "/slo",
		metaURL:  derived + "/metadata",
		decKeys:  decryptionKeys(cfg),
	}
	if cfg.EntityID != "" {
		if err := checkEntityID(cfg.EntityID); err != nil {
			return nil, fmt.Errorf("saml config: EntityID %q: %w", cfg.EntityID, err)
		}
		sp.entityID = cfg.EntityID
	}
	if cfg.ACSURL != "" {
		u, err := url.Parse(cfg.ACSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("saml config: ACSURL %q must be an absolute http(s) URL without user info or fragment", cfg.ACSURL)
		}
		sp.acsURL = cfg.ACSURL
	}
	return sp, nil
}

// checkEntityID accepts what SAML calls an xs:anyURI entity ID: at most
// 1024 characters (SAML Core 8.3.6), without spaces or control characters,
// parsing as a URI reference. A URL or URN is usual, but xs:anyURI admits
// relative references too and real SPs have them (Oracle Access Manager's
// "JSAuth", Okta apps configured with a bare name); the entity ID is only
// ever compared whole, so its shape carries no security weight.
func checkEntityID(s string) error {
	if len(s) > 1024 {
		return errors.New("longer than 1024 characters")
	}
	if strings.TrimSpace(s) != s || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("contains spaces or control characters")
	}
	if s == "" {
		return errors.New("empty")
	}
	if _, err := url.Parse(s); err != nil {
		return err
	}
	return nil
}

func normalizeExternalURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("saml config: ExternalURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("saml config: ExternalURL %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("saml config: ExternalURL %q must be an absolute http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("saml config: ExternalURL %q must not carry user info, a query or a fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

func checkIdP(idp IdentityProvider) error {
	for i, c := range idp.Certificates {
		if c == nil {
			return fmt.Errorf("saml config: IdP.Certificates[%d] is nil", i)
		}
	}
	return nil
}

func checkKeys(cfg Config) error {
	if cfg.SignRequests && cfg.SigningKey == nil {
		return errors.New("saml config: SigningKey is required when SignRequests is set")
	}
	if cfg.SigningKey != nil && cfg.SigningCert != nil &&
		!publicKeysEqual(cfg.SigningKey.Public(), cfg.SigningCert.PublicKey) {
		return errors.New("saml config: SigningCert does not match SigningKey")
	}
	if cfg.WantEncryptedAssertions && cfg.DecryptionKey == nil && len(cfg.DecryptionKeys) == 0 {
		return errors.New("saml config: DecryptionKey is required when WantEncryptedAssertions is set")
	}
	for i, dk := range cfg.DecryptionKeys {
		if dk.Key == nil {
			return fmt.Errorf("saml config: DecryptionKeys[%d].Key is nil", i)
		}
		if dk.Cert != nil && !publicKeysEqual(dk.Key.Public(), dk.Cert.PublicKey) {
			return fmt.Errorf("saml config: DecryptionKeys[%d].Cert does not match its Key", i)
		}
	}
	// A certificate metadata publishes for encryption must belong to a key
	// that decrypts.
	for name, c := range map[string]*x509.Certificate{"EncryptionCert": cfg.EncryptionCert, "NextEncryptionCert": cfg.NextEncryptionCert} {
		if c != nil && !slices.ContainsFunc(decryptionKeys(cfg), func(dk DecryptionKey) bool { return dk.Key != nil && publicKeysEqual(dk.Key.Public(), c.PublicKey) }) {
			return fmt.Errorf("saml config: %s matches neither DecryptionKey nor any of DecryptionKeys", name)
		}
	}
	return nil
}

// decryptionKeys lists every key assertions may be encrypted to:
// DecryptionKey first, then DecryptionKeys, each key once.
func decryptionKeys(cfg Config) []DecryptionKey {
	var out []DecryptionKey
	if cfg.DecryptionKey != nil {
		out = append(out, DecryptionKey{Key: cfg.DecryptionKey, Cert: cfg.EncryptionCert})
	}
	for _, dk := range cfg.DecryptionKeys {
		if !slices.ContainsFunc(out, func(o DecryptionKey) bool { return o.Key.Equal(dk.Key) }) {
			out = append(out, dk)
		}
	}
	return out
}

type equaler interface{ Equal(x crypto.PublicKey) bool }

func publicKeysEqual(a, b any) bool {
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func fillLimits(cfg *Config) error {
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ClockSkew", &cfg.ClockSkew, DefaultClockSkew},
		{"MaxIssueAge", &cfg.MaxIssueAge, DefaultMaxIssueAge},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return fmt.Errorf("saml config: %s %v must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	sizes := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxBodyBytes", &cfg.MaxBodyBytes, DefaultMaxBodyBytes},
		{"MaxXMLBytes", &cfg.MaxXMLBytes, DefaultMaxXMLBytes},
		{"MaxXMLElements", &cfg.MaxXMLElements, DefaultMaxXMLElements},
		{"MaxXMLAttributes", &cfg.MaxXMLAttributes, DefaultMaxXMLAttributes},
		{"MaxXMLNamespaceDecls", &cfg.MaxXMLNamespaceDecls, DefaultMaxXMLNamespaceDecls},
	}
	for _, s := range sizes {
		if *s.v < 0 {
			return fmt.Errorf("saml config: %s %d must not be negative", s.name, *s.v)
		}
		if *s.v == 0 {
			*s.v = s.def
		}
	}
	return nil
}

// xmlLimits are the document bounds every message of this connection is
// guarded with.
func (sp *ServiceProvider) xmlLimits() xmlLimits {
	return xmlLimits{elements: sp.cfg.MaxXMLElements, attributes: sp.cfg.MaxXMLAttributes, nsDecls: sp.cfg.MaxXMLNamespaceDecls}
}

// defaultXMLLimits guard documents read outside a connection (IdP
// metadata).
var defaultXMLLimits = xmlLimits{elements: DefaultMaxXMLElements, attributes: DefaultMaxXMLAttributes, nsDecls: DefaultMaxXMLNamespaceDecls}

// EntityID is the SP entity ID: {ExternalURL}/saml/{ConnectionID}. It is
// the Audience every accepted Assertion must name.
func (sp *ServiceProvider) EntityID() string { return sp.entityID }

// ACSURL is the Assertion Consumer Service URL (HTTP-POST binding): the
// Destination and Recipient every accepted Response must name.
func (sp *ServiceProvider) ACSURL() string { return sp.acsURL }

// SLOURL is the Single Logout Service URL, both bindings.
func (sp *ServiceProvider) SLOURL() string { return sp.sloURL }

// MetadataURL is where the SP metadata is served.
func (sp *ServiceProvider) MetadataURL() string { return sp.metaURL }

// Config returns the validated configuration with defaults filled in.
func (sp *ServiceProvider) Config() Config {
	cfg := sp.cfg
	cfg.IdP.Certificates = append([]*x509.Certificate(nil), sp.cfg.IdP.Certificates...)
	cfg.DecryptionKeys = append([]DecryptionKey(nil), sp.cfg.DecryptionKeys...)
	return cfg
}
