package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// spKeyPair writes an RSA key (PKCS#1) and its certificate to files.
func spKeyPair(t *testing.T) (keyFile, certFile, keyPEM string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "migrated SP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	return writeFile(t, "sp.key", keyPEM), writeFile(t, "sp.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))), keyPEM
}

func TestCLIRotateSPKey(t *testing.T) {
	s := startCLIServer(t, nil)
	s.cli(t, "connections", "create", "--id", "mig", "--tenant", "t").ok(t)
	s.cli(t, "connections", "update", "mig", "--set", "publish_encryption_key=true").ok(t)
	if got := s.cli(t, "connections", "get", "mig").ok(t).field(t, "SP certificate"); !strings.HasPrefix(got, "current, signing and encryption, shared key") {
		t.Errorf("before: SP certificate %q", got)
	}

	now := s.cli(t, "connections", "rotate-sp-key", "mig", "--use", "signing", "--overlap", "0s").ok(t)
	if got := now.field(t, "SP certificate"); !strings.HasPrefix(got, "current, signing, own key saml-sp:mig:") {
		t.Errorf("after --overlap 0s: SP certificate %q", got)
	}

	keyFile, certFile, keyPEM := spKeyPair(t)
	next := s.cli(t, "connections", "rotate-sp-key", "mig", "--key", keyFile, "--cert", certFile, "--use", "encryption", "--overlap", "48h").ok(t)
	if !strings.Contains(next.stdout, "next, encryption, own key") || !strings.Contains(next.stdout, "current from") ||
		!strings.Contains(next.stderr, "becomes current at") {
		t.Errorf("after an imported encryption key:\n%s\n%s", next.stdout, next.stderr)
	}
	body := strings.Split(keyPEM, "\n")[5]
	if strings.Contains(next.stdout+next.stderr, body) {
		t.Fatal("the private key was printed")
	}
	again := s.cli(t, "connections", "rotate-sp-key", "mig", "--use", "encryption")
	if again.err == nil || !strings.Contains(again.err.Error(), "SP_KEY_ROTATION_PENDING") && !strings.Contains(again.err.Error()+again.stderr, "already rotating") {
		t.Errorf("a second encryption rotation: %v\n%s", again.err, again.stderr)
	}

	// Import on create: the given certificate is the connection's from the
	// start.
	created := s.cli(t, "connections", "create", "--id", "kept", "--tenant", "t", "--sp-key", keyFile, "--sp-cert", certFile).ok(t)
	if got := created.field(t, "SP certificate"); !strings.HasPrefix(got, "current, signing, own key saml-sp:kept:") {
		t.Errorf("imported on create: SP certificate %q", got)
	}
	if strings.Contains(created.stdout+created.stderr, body) {
		t.Fatal("the private key was printed")
	}

	for _, args := range [][]string{
		{"--use", "both"},
		{"--key", keyFile},
	} {
		if r := s.cli(t, append([]string{"connections", "rotate-sp-key", "mig"}, args...)...); r.err == nil {
			t.Errorf("rotate-sp-key %v succeeded", args)
		}
	}
}
