package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/policy"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/scim"
	"github.com/ssogate/ssogate/token"
)

// A connection is stored as the protojson of its API message: one schema
// for the API, the config file and the store.

var (
	connectionIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)
	domainPattern       = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
)

// mappedClaims are the token claims attributes feed by design; any other
// reserved claim cannot come from the IdP.
var mappedClaims = map[string]bool{
	saml.ClaimEmail: true, saml.ClaimName: true, saml.ClaimGivenName: true, saml.ClaimFamilyName: true, saml.ClaimGroups: true,
}

// connectionFromMap reads a connection declared in the config file, where
// it has the API's field names.
func connectionFromMap(m map[string]any) (*ssogatev1.Connection, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("connection: %w", err)
	}
	c := &ssogatev1.Connection{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("connection %v: %w", m["id"], err)
	}
	return c, nil
}

func marshalConnection(c *ssogatev1.Connection) ([]byte, error) {
	return protojson.Marshal(c)
}

func unmarshalConnection(raw []byte) (*ssogatev1.Connection, error) {
	c := &ssogatev1.Connection{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("stored connection: %w", err)
	}
	return c, nil
}

// fieldError is an invalid connection field, named as in the API.
type fieldError struct {
	field, problem string
}

func (e *fieldError) Error() string { return e.field + ": " + e.problem }

// validateConnection checks a connection and normalises it in place
// (lower-case domains, certificate details). DRAFT connections may lack the
// IdP side; every other state needs it whole.
func validateConnection(c *ssogatev1.Connection, allowHTTP func(host string) bool) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &fieldError{field, fmt.Sprintf(format, args...)})
	}
	if !connectionIDPattern.MatchString(c.Id) {
		bad("id", "%q must be 1 to 63 of a-z, 0-9 and -", c.Id)
	}
	if c.TenantId == "" {
		bad("tenant_id", "required: the customer this connection belongs to")
	}
	if c.State == ssogatev1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
		c.State = ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT
	}
	if _, ok := ssogatev1.ConnectionState_name[int32(c.State)]; !ok {
		bad("state", "unknown state %d", c.State)
	}
	idp := c.IdentityProvider
	if idp == nil {
		idp = &ssogatev1.IdentityProviderSettings{}
		c.IdentityProvider = idp
	}
	complete := c.State != ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT
	if idp.EntityId == "" && complete {
		bad("identity_provider.entity_id", "required before leaving DRAFT: the IdP's entity ID (Issuer)")
	}
	if idp.SsoUrl == "" && idp.SsoPostUrl == "" {
		if complete {
			bad("identity_provider.sso_url", "required before leaving DRAFT: the IdP's SAML single sign-on URL")
		}
	}
	for field, u := range map[string]string{"identity_provider.sso_url": idp.SsoUrl, "identity_provider.sso_post_url": idp.SsoPostUrl} {
		if u == "" {
			continue
		}
		if err := checkEndpoint(u, allowHTTP); err != nil {
			bad(field, "%v", err)
		}
	}
	if idp.SloUrl != "" {
		if err := checkEndpoint(idp.SloUrl, allowHTTP); err != nil {
			bad("identity_provider.slo_url", "%v", err)
		}
	}
	if idp.SloPostUrl != "" {
		if err := checkEndpoint(idp.SloPostUrl, allowHTTP); err != nil {
			bad("identity_provider.slo_post_url", "%v", err)
		}
	}
	if idp.MetadataUrl != "" {
		if err := checkEndpoint(idp.MetadataUrl, allowHTTP); err != nil {
			bad("identity_provider.metadata_url", "%v", err)
		}
	}
	if len(idp.Certificates) == 0 && complete {
		bad("identity_provider.certificates", "required before leaving DRAFT: at least one IdP signing certificate")
	}
	for i, cert := range idp.Certificates {
		if err := describeCertificate(cert); err != nil {
			bad(fmt.Sprintf("identity_provider.certificates[%d]", i), "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, d := range c.EmailDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		c.EmailDomains[i] = d
		if !domainPattern.MatchString(d) {
			bad(fmt.Sprintf("email_domains[%d]", i), "%q is not a domain name such as example.com", d)
		} else if seen[d] {
			bad(fmt.Sprintf("email_domains[%d]", i), "%q is listed twice", d)
		}
		seen[d] = true
	}
	if p := c.EmailDomainPolicy; len(c.EmailDomains) == 0 && (p == ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_REQUIRE ||
		p == ssogatev1.EmailDomainPolicy_EMAIL_DOMAIN_POLICY_DROP_CLAIM) {
		bad("email_domain_policy", "%s needs email_domains to compare the asserted email with", p)
	}
	for i, u := range c.AllowedReturnUrls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil || p.Fragment != "" {
			bad(fmt.Sprintf("allowed_return_urls[%d]", i), "%q must be an absolute http(s) URL without user info or fragment", u)
		}
	}
	if c.DefaultReturnUrl != "" {
		if _, err := checkReturnTo(c.DefaultReturnUrl, c.AllowedReturnUrls); err != nil {
			bad("default_return_url", "%v", err)
		}
	}
	for claim, names := range c.AttributeMapping {
		if !mappedClaims[claim] && token.ReservedClaim(claim) {
			bad("attribute_mapping."+claim, "%q is a reserved token claim and cannot come from IdP attributes", claim)
		}
		if names == nil || len(names.Names) == 0 {
			bad("attribute_mapping."+claim, "list at least one attribute name")
		}
	}
	if d := c.MaxSessionDuration; d != nil && d.AsDuration() <= 0 {
		bad("max_session_duration", "must be positive")
	}
	if d := c.ClockSkew; d != nil {
		if err := d.CheckValid(); err != nil {
			bad("clock_skew", "%v", err)
		} else if v := d.AsDuration(); v < 0 || v > maxClockSkew {
			bad("clock_skew", "%s is outside 0s to %s; a skew beyond minutes means the IdP's clock is wrong, fix it (NTP) instead", v, maxClockSkew)
		}
	}
	if n := len(c.GroupNames); n > maxGroupNames {
		bad("group_names", "%d entries, at most %d", n, maxGroupNames)
	}
	for k, v := range c.GroupNames {
		switch {
		case strings.TrimSpace(k) == "":
			bad("group_names", "a key is empty: each key is a group value the IdP sends, e.g. an Entra ID group object ID")
		case strings.TrimSpace(v) == "":
			bad("group_names["+truncateField(k)+"]", "the name is empty")
		case len(k) > maxGroupKeyLen:
			bad("group_names["+truncateField(k)+"]", "the key is longer than %d bytes", maxGroupKeyLen)
		case utf8.RuneCountInString(v) > maxGroupNameLen:
			bad("group_names["+truncateField(k)+"]", "the name is longer than %d characters", maxGroupNameLen)
		}
	}
	return errors.Join(errs...)
}

// Bounds on the per-connection SAML quirks.
const (
	// maxClockSkew is the largest clock_skew a connection may set, as for
	// the service's saml.clock_skew.
	maxClockSkew = 10 * time.Minute
	// maxGroupNames bounds group_names: Entra ID emits at most 150 groups
	// in a token (beyond that it sends the overage link), tenants have
	// thousands; 5,000 covers a large tenant's groups with room.
	maxGroupNames = 5000
	// maxGroupKeyLen bounds a key (an object ID is 36 bytes, a DN longer)
	// and maxGroupNameLen a name (Entra ID display names are at most 256
	// characters).
	maxGroupKeyLen  = 256
	maxGroupNameLen = 256
)

// truncateField shortens a map key for a field path in an error.
func truncateField(k string) string {
	if len(k) > 64 {
		return fmt.Sprintf("%q…", k[:64])
	}
	return fmt.Sprintf("%q", k)
}

// checkEndpoint wants https, or http on a host allowHTTP admits (loopback
// in development).
func checkEndpoint(raw string, allowHTTP func(string) bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowHTTP != nil && allowHTTP(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must use https (plain http is allowed only on loopback)", raw)
	default:
		return fmt.Errorf("%q must be an https URL", raw)
	}
}

// loopbackOnly admits plain http to loopback hosts only.
func loopbackOnly(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// describeCertificate parses a PEM certificate and fills its output fields.
func describeCertificate(c *ssogatev1.Certificate) error {
	cert, err := parseCertificatePEM(c.Pem)
	if err != nil {
		return err
	}
	c.Subject = cert.Subject.String()
	c.NotAfter = timestamppb.New(cert.NotAfter)
	c.Sha256Fingerprint = fingerprint(cert.Raw)
	return nil
}

func parseCertificatePEM(s string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(s)))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("holds more than one PEM block; list each certificate separately")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate does not parse: %w", err)
	}
	return cert, nil
}

// samlConfig turns a connection into the SAML SP settings, without the
// service-wide fields (keys, clock, limits) that the caller adds.
func samlConfig(c *ssogatev1.Connection) (saml.Config, error) {
	idp := c.GetIdentityProvider()
	cfg := saml.Config{
		ConnectionID: c.Id,
		IdP: saml.IdentityProvider{
			EntityID:       idp.GetEntityId(),
			SSORedirectURL: idp.GetSsoUrl(),
			SSOPostURL:     idp.GetSsoPostUrl(),
			SLORedirectURL: idp.GetSloUrl(),
			SLOPostURL:     idp.GetSloPostUrl(),
		},
		AllowIdPInitiated:       c.AllowIdpInitiated,
		SignRequests:            c.SignRequests,
		WantEncryptedAssertions: c.WantEncryptedAssertions,
		AllowSHA1:               c.AllowSha1,
		AllowLegacyEncryption:   c.AllowLegacyEncryption,
		NameIDFormat:            c.NameIdFormat,
		EntityID:                c.GetServiceProvider().GetEntityId(),
		ACSURL:                  c.GetServiceProvider().GetAcsUrl(),
		// Zero (unset) is the service's saml.clock_skew, filled in later.
		ClockSkew: c.GetClockSkew().AsDuration(),
	}
	for i, pc := range idp.GetCertificates() {
		cert, err := parseCertificatePEM(pc.Pem)
		if err != nil {
			return saml.Config{}, fmt.Errorf("identity_provider.certificates[%d]: %w", i, err)
		}
		cfg.IdP.Certificates = append(cfg.IdP.Certificates, cert)
	}
	if len(c.AttributeMapping) > 0 {
		cfg.Attributes = saml.AttributeMapping{}
		for claim, names := range c.AttributeMapping {
			cfg.Attributes[claim] = append([]string(nil), names.GetNames()...)
		}
	}
	return cfg, nil
}

// accessPolicy converts the connection's policy.
func accessPolicy(c *ssogatev1.Connection) policy.Policy {
	ap := c.GetAccessPolicy()
	p := policy.Policy{AllowedGroups: ap.GetAllowedGroups()}
	if len(ap.GetRequiredAttributes()) > 0 {
		p.RequiredAttributes = map[string][]string{}
		for name, v := range ap.GetRequiredAttributes() {
			p.RequiredAttributes[name] = v.GetNames()
		}
	}
	for _, m := range ap.GetRoleMappings() {
		p.RoleMappings = append(p.RoleMappings, policy.RoleMapping{Group: m.Group, Roles: m.Roles})
	}
	return p
}

// withServiceProvider fills the connection's SP identity (its overrides,
// or the derived values) and output-only SP URLs.
func withServiceProvider(c *ssogatev1.Connection, externalURL string) *ssogatev1.Connection {
	out := proto.Clone(c).(*ssogatev1.Connection)
	base := externalURL + "/saml/" + c.Id
	out.ServiceProvider = &ssogatev1.ServiceProviderInfo{
		EntityId:    base,
		AcsUrl:      base + "/acs",
		SloUrl:      base + "/slo",
		MetadataUrl: base + "/metadata",
	}
	// A migrated connection keeps the identity its IdP knows.
	if e := c.GetServiceProvider().GetEntityId(); e != "" {
		out.ServiceProvider.EntityId = e
	}
	if a := c.GetServiceProvider().GetAcsUrl(); a != "" {
		out.ServiceProvider.AcsUrl = a
	}
	out.ScimBaseUrl = scim.BaseURL(externalURL, c.Id)
	return out
}

// fingerprint is a certificate's SHA-256, upper-case hex as IdP consoles
// show it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
