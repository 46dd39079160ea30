package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// testPKI is a CA with a server and a client certificate, as files.
type testPKI struct {
	caFile, serverCert, serverKey string
	ca                            *x509.CertPool
	client                        tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips ...net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := issue("127.0.0.1", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cliDER, cliKey := issue("backend", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testPKI{
		caFile:     write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", srvDER),
		serverKey:  write("server-key.pem", "EC PRIVATE KEY", srvKeyDER),
		ca:         pool,
		client:     tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey},
	}
}

func TestMutualTLSOnGRPC(t *testing.T) {
	pki := newTestPKI(t)
	ts := startTestServerWith(t, func(c *config.Config) {
		c.GRPCTLSCertFile, c.GRPCTLSKeyFile, c.GRPCClientCAFile = pki.serverCert, pki.serverKey, pki.caFile
	})
	call := func(cert []tls.Certificate) error {
		cc, err := grpc.NewClient(ts.grpcAddr,
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pki.ca, Certificates: cert})),
			grpc.WithPerRPCCredentials(tlsBearer(testAdminKey)))
		if err != nil {
			return err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = ssogatev1.NewConnectionServiceClient(cc).ListConnections(ctx, &ssogatev1.ListConnectionsRequest{})
		return err
	}
	if err := call([]tls.Certificate{pki.client}); err != nil {
		t.Fatalf("client with a certificate from the CA: %v", err)
	}
	if err := call(nil); err == nil {
		t.Fatal("a client without a certificate got through")
	}
	// The REST gateway is in-process: it keeps working behind mutual TLS,
	// and still needs an API key.
	req, _ := http.NewRequest("GET", ts.httpURL+"/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST behind mTLS: %d", resp.StatusCode)
	}
}

// tlsBearer is an API key for a TLS connection.
type tlsBearer string

func (b tlsBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (tlsBearer) RequireTransportSecurity() bool { return true }
