package importer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

func testCert(t *testing.T) (pemText string, der []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), der
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t *testing.T, format string, data []byte, o Options) *Plan {
	t.Helper()
	p, err := Parse(format, data, o)
	if err != nil {
		t.Fatalf("Parse(%s): %v", format, err)
	}
	return p
}

func byID(t *testing.T, p *Plan, id string) Item {
	t.Helper()
	for _, it := range p.Items {
		if it.Connection.Id == id {
			return it
		}
	}
	t.Fatalf("no item %q in %d items", id, len(p.Items))
	return Item{}
}

func wantLost(t *testing.T, it Item, words ...string) {
	t.Helper()
	all := strings.Join(it.Lost, "\n")
	for _, w := range words {
		if !strings.Contains(all, w) {
			t.Errorf("%s: what is lost does not mention %q:\n%s", it.Connection.Id, w, all)
		}
	}
}

func wantSP(t *testing.T, it Item, entity, acs string) {
	t.Helper()
	sp := it.Connection.GetServiceProvider()
	if sp.GetEntityId() != entity || sp.GetAcsUrl() != acs {
		t.Errorf("%s: SP identity %q, %q; want %q, %q", it.Connection.Id, sp.GetEntityId(), sp.GetAcsUrl(), entity, acs)
	}
}

func TestAuth0(t *testing.T) {
	certPEM, _ := testCert(t)
	export := mustJSON(t, []any{
		map[string]any{"id": "con_1", "name": "acme", "strategy": "samlp", "display_name": "Acme", "options": map[string]any{
			"signingCert": base64.StdEncoding.EncodeToString([]byte(certPEM)), "signInEndpoint": "https://idp.acme.com/sso",
			"signOutEndpoint": "https://idp.acme.com/slo", "domain_aliases": []any{"Acme.com", "acme.io"},
			"fieldsMap":          map[string]any{"email": "mail", "given_name": []any{"givenName", "fn"}, "groups": "memberOf", "sub": "uid"},
			"signatureAlgorithm": "rsa-sha1", "idpinitiated": map[string]any{"enabled": true, "client_id": "app1"},
		}},
		map[string]any{"id": "con_2", "name": "Beta-Corp", "strategy": "samlp", "options": map[string]any{
			"metadataXml": "<EntityDescriptor/>", "entityId": "https://beta.example.com/sp",
		}},
		map[string]any{"id": "con_3", "name": "google", "strategy": "google-oauth2"},
	})
	p := parse(t, "auth0", export, Options{Auth0Tenant: "oldtenant", Auth0Domain: "login.example.com", ReturnURLs: []string{"https://app.example.com/cb"}})
	if len(p.Items) != 2 || len(p.Skipped) != 1 || p.Skipped[0].Source != "google" {
		t.Fatalf("items %d, skipped %v", len(p.Items), p.Skipped)
	}
	acme := byID(t, p, "acme")
	c := acme.Connection
	wantSP(t, acme, "urn:auth0:oldtenant:acme", "https://login.example.com/login/callback?connection=acme")
	if c.TenantId != "acme" || c.DisplayName != "Acme" || strings.Join(c.EmailDomains, ",") != "acme.com,acme.io" {
		t.Errorf("acme: tenant %q display %q domains %v", c.TenantId, c.DisplayName, c.EmailDomains)
	}
	idp := c.IdentityProvider
	if idp.SsoUrl != "https://idp.acme.com/sso" || idp.SloUrl != "https://idp.acme.com/slo" || len(idp.Certificates) != 1 ||
		strings.TrimSpace(idp.Certificates[0].Pem) != strings.TrimSpace(certPEM) {
		t.Errorf("acme IdP: %v", idp)
	}
	if got := c.AttributeMapping; got["email"].GetNames()[0] != "mail" || strings.Join(got["given_name"].GetNames(), ",") != "givenName,fn" ||
		got["groups"].GetNames()[0] != "memberOf" || got["sub"] != nil {
		t.Errorf("acme attribute mapping: %v", got)
	}
	if !c.AllowSha1 || !c.AllowIdpInitiated || c.State != ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT {
		t.Errorf("acme: sha1 %v idp-initiated %v state %v", c.AllowSha1, c.AllowIdpInitiated, c.State)
	}
	wantLost(t, acme, "Rules and Actions", "entity ID (Issuer)", `"sub"`, "RSA-SHA1", "default_return_url", "created as DRAFT")

	beta := byID(t, p, "beta-corp")
	wantSP(t, beta, "https://beta.example.com/sp", "https://login.example.com/login/callback?connection=Beta-Corp")
	if beta.MetadataXML != "<EntityDescriptor/>" || beta.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE ||
		beta.Request().IdpMetadataXml != beta.MetadataXML {
		t.Errorf("beta: metadata %q state %v", beta.MetadataXML, beta.Connection.State)
	}

	// Without the tenant and domain, the derived identity is unknown.
	p = parse(t, "auth0", export, Options{})
	acme = byID(t, p, "acme")
	wantSP(t, acme, "", "")
	wantLost(t, acme, "--auth0-tenant", "--auth0-domain", "allowed_return_urls")
}

func TestWorkOS(t *testing.T) {
	certPEM, der := testCert(t)
	export := mustJSON(t, map[string]any{"object": "list", "data": []any{
		map[string]any{"object": "connection", "id": "conn_01", "organization_id": "org_01", "connection_type": "OktaSAML",
			"name": "Foo Corp", "state": "active", "domains": []any{map[string]any{"object": "connection_domain", "domain": "foo-corp.com"}},
			"sp_entity_id": "https://auth.example.com/sso/foo", "acs_url": "https://auth.example.com/sso/foo/acs",
			"idp_metadata_url": "https://foo.okta.com/app/x/sso/saml/metadata"},
		map[string]any{"object": "connection", "id": "conn_02", "organization_id": "org_02", "connection_type": "GenericSAML",
			"name": "Bar", "state": "inactive", "options": map[string]any{"signing_cert": base64.StdEncoding.EncodeToString(der)}},
		map[string]any{"object": "connection", "id": "conn_03", "connection_type": "GoogleOAuth", "name": "G"},
	}})
	p := parse(t, "workos", export, Options{})
	if len(p.Items) != 2 || len(p.Skipped) != 1 {
		t.Fatalf("items %d skipped %v", len(p.Items), p.Skipped)
	}
	foo := byID(t, p, "foo-corp")
	wantSP(t, foo, "https://auth.example.com/sso/foo", "https://auth.example.com/sso/foo/acs")
	if foo.MetadataURL == "" || foo.Connection.TenantId != "org_01" || foo.Connection.EmailDomains[0] != "foo-corp.com" ||
		foo.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		t.Errorf("foo: %v, metadata %q", foo.Connection, foo.MetadataURL)
	}
	bar := byID(t, p, "bar")
	if bar.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED || len(bar.Connection.IdentityProvider.Certificates) != 1 ||
		strings.TrimSpace(bar.Connection.IdentityProvider.Certificates[0].Pem) != strings.TrimSpace(certPEM) {
		t.Errorf("bar: %v", bar.Connection)
	}
	wantLost(t, bar, "WorkOS dashboard", "idp_metadata_url", "signing_cert", "attribute mapping")
}

func TestJackson(t *testing.T) {
	certPEM, _ := testCert(t)
	rec := func(name, tenant string, extra map[string]any) map[string]any {
		m := map[string]any{"name": name, "tenant": tenant, "product": "crm", "clientID": "x", "clientSecret": "y",
			"redirectUrl": []any{"https://app.example.com/cb"}, "defaultRedirectUrl": "https://app.example.com/cb/home",
			"idpMetadata": map[string]any{"entityID": "http://www.okta.com/" + tenant, "sso": map[string]any{"postUrl": "https://" + tenant + "/sso/post", "redirectUrl": "https://" + tenant + "/sso"},
				"slo": map[string]any{}, "thumbprint": "abc", "publicKey": certPEM}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	export := mustJSON(t, []any{
		rec("acme", "acme.com", nil),
		rec("beta", "beta.com", nil),
		rec("gamma", "gamma.com", map[string]any{"samlAudienceOverride": "https://saml.gamma.example", "acsUrlOverride": "https://sso.example.com/gamma/acs", "deactivated": true}),
		map[string]any{"name": "oidc-one", "tenant": "t", "product": "crm", "oidcProvider": map[string]any{}},
	})
	p := parse(t, "polis", export, Options{JacksonAudience: "https://saml.boxyhq.com", JacksonACSURL: "https://sso.example.com/api/oauth/saml"})
	if len(p.Items) != 3 || len(p.Skipped) != 1 {
		t.Fatalf("items %d skipped %v", len(p.Items), p.Skipped)
	}
	acme := byID(t, p, "acme")
	// The deployment-wide audience and ACS are shared: none keeps them.
	wantSP(t, acme, "", "")
	wantLost(t, acme, `SP entity ID "https://saml.boxyhq.com" is shared by 2 connections`, "ACS URL", "email_domains", "OAuth redirect")
	idp := acme.Connection.IdentityProvider
	if idp.EntityId != "http://www.okta.com/acme.com" || idp.SsoUrl != "https://acme.com/sso" || idp.SsoPostUrl != "https://acme.com/sso/post" ||
		len(idp.Certificates) != 1 || acme.Connection.TenantId != "acme.com" || acme.Connection.DefaultReturnUrl != "https://app.example.com/cb/home" ||
		acme.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		t.Errorf("acme: %v", acme.Connection)
	}
	gamma := byID(t, p, "gamma")
	wantSP(t, gamma, "https://saml.gamma.example", "https://sso.example.com/gamma/acs")
	if gamma.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_DISABLED {
		t.Errorf("gamma: a deactivated connection is %v", gamma.Connection.State)
	}
	// A deployment with one connection keeps the global identity.
	one := parse(t, "jackson", mustJSON(t, []any{rec("acme", "acme.com", nil)}), Options{JacksonAudience: "https://saml.boxyhq.com", JacksonACSURL: "https://sso.example.com/api/oauth/saml"})
	wantSP(t, one.Items[0], "https://saml.boxyhq.com", "https://sso.example.com/api/oauth/saml")
}

func TestSSOReady(t *testing.T) {
	certPEM, _ := testCert(t)
	export := mustJSON(t, map[string]any{
		"organizations": []any{map[string]any{"id": "org_1", "environmentId": "env_1", "displayName": "Acme Inc", "externalId": "acme", "domains": []any{"acme.com"}}},
		"samlConnections": []any{
			map[string]any{"id": "saml_conn_1", "organizationId": "org_1", "primary": true, "idpRedirectUrl": "https://acme.okta.com/sso",
				"idpCertificate": certPEM, "idpEntityId": "http://www.okta.com/exk1", "spEntityId": "https://auth.example.com/v1/saml/saml_conn_1",
				"spAcsUrl": "https://auth.example.com/v1/saml/saml_conn_1/acs"},
			map[string]any{"id": "saml_conn_2", "organizationId": "org_1", "idpRedirectUrl": "https://acme.okta.com/sso2"},
			map[string]any{"id": "saml_conn_3", "organization_id": "org_9", "sp_entity_id": "https://auth.example.com/v1/saml/saml_conn_3"},
		},
	})
	p := parse(t, "ssoready", export, Options{})
	if len(p.Items) != 3 {
		t.Fatalf("items %d", len(p.Items))
	}
	acme := byID(t, p, "acme")
	wantSP(t, acme, "https://auth.example.com/v1/saml/saml_conn_1", "https://auth.example.com/v1/saml/saml_conn_1/acs")
	c := acme.Connection
	if c.TenantId != "acme" || c.DisplayName != "Acme Inc" || c.EmailDomains[0] != "acme.com" || c.IdentityProvider.EntityId != "http://www.okta.com/exk1" ||
		c.IdentityProvider.SsoUrl != "https://acme.okta.com/sso" || len(c.IdentityProvider.Certificates) != 1 || c.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		t.Errorf("acme: %v", c)
	}
	wantLost(t, acme, "operator_addr", "public_hosts")
	second := byID(t, p, "acme-2") // a second connection of one organization
	if second.Connection.State != ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT {
		t.Errorf("acme-2 without certificate: %v", second.Connection.State)
	}
	orphan := byID(t, p, "saml-conn-3")
	wantSP(t, orphan, "https://auth.example.com/v1/saml/saml_conn_3", "")
	wantLost(t, orphan, `organization "org_9" is not in the file`)
}

func TestCSVAndJSON(t *testing.T) {
	certPEM, der := testCert(t)
	csvText := "id,tenant_id,display_name,idp_entity_id,idp_sso_url,idp_certificate,sp_entity_id,acs_url,email_domains,return_urls,attr_email,attr_groups\n" +
		"acme,acme-inc,Acme,https://idp.acme.com,https://idp.acme.com/sso," + base64.StdEncoding.EncodeToString(der) +
		",urn:auth0:old:acme,https://sso.example.com/login/callback?connection=acme,acme.com;Acme.io,https://app.example.com/cb,mail,memberOf|groups\n" +
		",,Beta Corp,,,,,,,,,\n"
	p := parse(t, "csv", []byte(csvText), Options{})
	acme := byID(t, p, "acme")
	wantSP(t, acme, "urn:auth0:old:acme", "https://sso.example.com/login/callback?connection=acme")
	c := acme.Connection
	if c.TenantId != "acme-inc" || strings.Join(c.EmailDomains, ",") != "acme.com,acme.io" || c.AllowedReturnUrls[0] != "https://app.example.com/cb" ||
		strings.Join(c.AttributeMapping["groups"].GetNames(), ",") != "memberOf,groups" || c.AttributeMapping["email"].GetNames()[0] != "mail" ||
		strings.TrimSpace(c.IdentityProvider.Certificates[0].Pem) != strings.TrimSpace(certPEM) || c.State != ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		t.Errorf("acme from CSV: %v", c)
	}
	beta := byID(t, p, "beta-corp")
	wantLost(t, beta, "no sp_entity_id or acs_url", "created as DRAFT")
	if _, err := Parse("csv", []byte("id,colour\nx,red\n"), Options{}); err == nil || !strings.Contains(err.Error(), `unknown column "colour"`) {
		t.Errorf("unknown CSV column: %v", err)
	}

	js := mustJSON(t, []any{map[string]any{"id": "acme", "tenant_id": "acme-inc", "idp_metadata_url": "https://idp.acme.com/md", "idp_metadata_xml": "<x/>",
		"sp_entity_id": "urn:old", "email_domains": []any{"acme.com"}, "attribute_mapping": map[string]any{"groups": []any{"memberOf"}}}})
	p = parse(t, "json", js, Options{ReturnURLs: []string{"https://app.example.com/cb"}})
	it := p.Items[0]
	if it.MetadataXML != "<x/>" || it.MetadataURL != "" || it.Connection.AttributeMapping["groups"].GetNames()[0] != "memberOf" ||
		it.Connection.AllowedReturnUrls[0] != "https://app.example.com/cb" {
		t.Errorf("from JSON: %v %q %q", it.Connection, it.MetadataXML, it.MetadataURL)
	}
	wantSP(t, it, "urn:old", "")
	wantLost(t, it, "the XML is used")
	if _, err := Parse("json", []byte(`[{"id":"a","colour":"red"}]`), Options{}); err == nil {
		t.Error("unknown JSON key accepted")
	}
	long := strings.Repeat("a", 63)
	p = parse(t, "json", mustJSON(t, []any{map[string]any{"id": long}, map[string]any{"id": long}, map[string]any{"id": long}}), Options{})
	if ids := []string{p.Items[0].Connection.Id, p.Items[1].Connection.Id, p.Items[2].Connection.Id}; ids[0] != long ||
		ids[1] != long[:61]+"-2" || ids[2] != long[:61]+"-3" {
		t.Errorf("63-character duplicate IDs became %q", ids)
	}
	if _, err := Parse("okta", js, Options{}); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestCertificateForms(t *testing.T) {
	certPEM, der := testCert(t)
	for name, in := range map[string]string{
		"PEM": certPEM, "base64 of PEM": base64.StdEncoding.EncodeToString([]byte(certPEM)),
		"base64 DER": base64.StdEncoding.EncodeToString(der), "wrapped base64 DER": wrap(base64.StdEncoding.EncodeToString(der)),
	} {
		got, err := certificatePEM(in)
		if err != nil || strings.TrimSpace(got) != strings.TrimSpace(certPEM) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	for _, bad := range []string{"not a cert", base64.StdEncoding.EncodeToString([]byte("junk"))} {
		if _, err := certificatePEM(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	return b.String() + s
}
