package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testCertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "idp.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestValidateConnection(t *testing.T) {
	certPEM := testCertPEM(t)
	valid := func() map[string]any {
		return map[string]any{
			"id": "acme", "tenant_id": "acme-inc", "state": "CONNECTION_STATE_ACTIVE",
			"identity_provider": map[string]any{
				"entity_id": "https://idp.acme.com", "sso_url": "https://idp.acme.com/sso",
				"certificates": []any{map[string]any{"pem": certPEM}},
			},
			"email_domains":       []any{"Acme.COM"},
			"allowed_return_urls": []any{"https://app.example.com/callback"},
			"default_return_url":  "https://app.example.com/callback/home",
		}
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(map[string]any) {}, ""},
		{"draft needs no IdP", func(m map[string]any) { m["state"] = "CONNECTION_STATE_DRAFT"; delete(m, "identity_provider") }, ""},
		{"bad id", func(m map[string]any) { m["id"] = "Acme Corp" }, "id:"},
		{"no tenant", func(m map[string]any) { delete(m, "tenant_id") }, "tenant_id"},
		{"active without certificate", func(m map[string]any) {
			m["identity_provider"].(map[string]any)["certificates"] = []any{}
		}, "identity_provider.certificates"},
		{"garbage certificate", func(m map[string]any) {
			m["identity_provider"].(map[string]any)["certificates"] = []any{map[string]any{"pem": "hello"}}
		}, "identity_provider.certificates[0]: not a PEM certificate"},
		{"http sso on the internet", func(m map[string]any) {
			m["identity_provider"].(map[string]any)["sso_url"] = "http://idp.acme.com/sso"
		}, "must use https"},
		{"bad domain", func(m map[string]any) { m["email_domains"] = []any{"acme"} }, "email_domains[0]"},
		{"reserved claim", func(m map[string]any) {
			m["attribute_mapping"] = map[string]any{"roles": map[string]any{"names": []any{"memberOf"}}}
		}, "attribute_mapping.roles"},
		{"default return not allowed", func(m map[string]any) { m["default_return_url"] = "https://evil.com/" }, "default_return_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.change(m)
			c, err := connectionFromMap(m)
			if err != nil {
				t.Fatal(err)
			}
			err = validateConnection(c, loopbackOnly)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid connection refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateConnectionNormalises(t *testing.T) {
	c, err := connectionFromMap(map[string]any{"id": "acme", "tenant_id": "t", "email_domains": []any{" Acme.COM "},
		"identity_provider": map[string]any{"certificates": []any{map[string]any{"pem": testCertPEM(t)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := validateConnection(c, loopbackOnly); err != nil {
		t.Fatal(err)
	}
	if c.EmailDomains[0] != "acme.com" || c.State.String() != "CONNECTION_STATE_DRAFT" {
		t.Errorf("not normalised: %v %v", c.EmailDomains, c.State)
	}
	cert := c.IdentityProvider.Certificates[0]
	if cert.Subject != "CN=idp.example.com" || len(cert.Sha256Fingerprint) != 64 || cert.NotAfter == nil {
		t.Errorf("certificate details not filled: %+v", cert)
	}
	cfg, err := samlConfig(c)
	if err != nil || len(cfg.IdP.Certificates) != 1 {
		t.Fatalf("samlConfig: %v %v", cfg.IdP.Certificates, err)
	}
}
