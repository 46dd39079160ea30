package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// Clients are the API's services on one connection.
type Clients struct {
	Login      ssogatev1.LoginServiceClient
	Connection ssogatev1.ConnectionServiceClient
	Key        ssogatev1.KeyServiceClient
	Audit      ssogatev1.AuditServiceClient
	conn       *grpc.ClientConn
}

// Close closes the connection.
func (c *Clients) Close() error { return c.conn.Close() }

// Conn is the underlying connection, for health checks and the like.
func (c *Clients) Conn() *grpc.ClientConn { return c.conn }

// DialOption adjusts Dial.
type DialOption func(*dialConfig)

type dialConfig struct {
	tls       *tls.Config
	plaintext *bool
	timeout   time.Duration
	extra     []grpc.DialOption
}

// WithTLS sets the TLS configuration (a private CA, a client certificate
// for mutual TLS). Without it, targets off loopback use the system roots.
func WithTLS(c *tls.Config) DialOption { return func(d *dialConfig) { d.tls = c } }

// WithPlaintext forces plaintext (true) or TLS (false). The default is
// plaintext on loopback, TLS elsewhere: the API key never crosses a
// network in the clear unless asked.
func WithPlaintext(on bool) DialOption { return func(d *dialConfig) { d.plaintext = &on } }

// WithTimeout bounds each call that has no deadline of its own; default 10
// seconds, which covers a StartLogin on a busy server but not a stuck one.
func WithTimeout(t time.Duration) DialOption { return func(d *dialConfig) { d.timeout = t } }

// WithGRPCOptions adds dial options (interceptors, a custom resolver).
func WithGRPCOptions(o ...grpc.DialOption) DialOption {
	return func(d *dialConfig) { d.extra = append(d.extra, o...) }
}

// retryServiceConfig retries UNAVAILABLE (a replica going away, a
// connection reset) on the calls that are safe to repeat: reads,
// ValidateToken and the revocations. StartLogin, ExchangeCode,
// RefreshToken and writes are never retried: a retried RefreshToken would
// present a spent token and revoke the session.
const retryServiceConfig = `{
  "methodConfig": [{
    "name": [
      {"service": "ssogate.v1.LoginService", "method": "ValidateToken"},
      {"service": "ssogate.v1.LoginService", "method": "RevokeSession"},
      {"service": "ssogate.v1.LoginService", "method": "RevokeSubject"},
      {"service": "ssogate.v1.ConnectionService", "method": "GetConnection"},
      {"service": "ssogate.v1.ConnectionService", "method": "ListConnections"},
      {"service": "ssogate.v1.ConnectionService", "method": "GetServiceProviderMetadata"},
      {"service": "ssogate.v1.KeyService", "method": "GetJWKS"},
      {"service": "ssogate.v1.KeyService", "method": "ListSigningKeys"},
      {"service": "ssogate.v1.AuditService", "method": "ListAuditEvents"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Dial connects to ssogate's gRPC listener at target (host:port) with an
// API key. It does not wait for the connection: the first call does.
func Dial(ctx context.Context, target, apiKey string, opts ...DialOption) (*Clients, error) {
	if apiKey == "" {
		return nil, errors.New("client: an API key is required")
	}
	cfg := dialConfig{timeout: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	plaintext := isLoopback(target)
	if cfg.plaintext != nil {
		plaintext = *cfg.plaintext
	}
	transport := insecure.NewCredentials()
	if !plaintext {
		transport = credentials.NewTLS(cfg.tls)
	}
	dopts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(apiKeyCredential{key: apiKey, secure: !plaintext}),
		grpc.WithDefaultServiceConfig(retryServiceConfig),
		grpc.WithChainUnaryInterceptor(defaultDeadline(cfg.timeout)),
	}, cfg.extra...)
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", target, err)
	}
	return &Clients{
		Login:      ssogatev1.NewLoginServiceClient(conn),
		Connection: ssogatev1.NewConnectionServiceClient(conn),
		Key:        ssogatev1.NewKeyServiceClient(conn),
		Audit:      ssogatev1.NewAuditServiceClient(conn),
		conn:       conn,
	}, nil
}

func defaultDeadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

type apiKeyCredential struct {
	key    string
	secure bool
}

func (c apiKeyCredential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + c.key}, nil
}

func (c apiKeyCredential) RequireTransportSecurity() bool { return c.secure }

func isLoopback(target string) bool {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
