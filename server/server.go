package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/ssogate/ssogate/config"
	"github.com/ssogate/ssogate/consent"
	"github.com/ssogate/ssogate/events"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/page"
	"github.com/ssogate/ssogate/portal"
	"github.com/ssogate/ssogate/ratelimit"
	"github.com/ssogate/ssogate/scim"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/telemetry"
	"github.com/ssogate/ssogate/token"
	"github.com/ssogate/ssogate/webhook"
)

// Server runs ssogate's two listeners.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *metrics
	health  *health.Server
	grpc    *grpc.Server
	// gatewayGRPC serves the REST gateway in memory, on gatewayLis.
	gatewayGRPC *grpc.Server
	gatewayLis  *bufconn.Listener
	auth        *authenticator

	extraRoutes []func(*http.ServeMux)
	version     string // the build's, in the served OpenAPI document
	scim        http.Handler
	scimLimiter scim.Limiter
	// beforeSession, when set (tests), runs between a login's admission
	// and the session's creation: the window a deactivation can race.
	beforeSession func()

	// pages render every HTML page; portal serves /setup/.
	pages         *page.Set
	portal        *portal.Portal
	portalLimiter portal.Limiter

	store    store.Store
	registry *registry
	keys     *token.KeySet
	tokens   *token.Issuer
	revoked  *revocations
	verified *verifiedCache
	// keysLoaded is when the key set was last reloaded on demand (UnixNano).
	keysLoaded atomic.Int64
	spCreds    *spCredentials
	// The event log's readers: watchers and webhook deliveries.
	eventHub      *events.Hub
	eventService  *events.Service
	webhooks      *webhook.Dispatcher
	webhookClient *http.Client
	webhookTuning []func(*webhook.Config)
	consent       *consent.Consent
	// allowHTTP admits plain-http IdP endpoints (loopback only).
	allowHTTP func(host string) bool
	// httpClient, when a test sets it, replaces the guarded fetch client;
	// fetchTLS is the TLS configuration of the guarded one.
	httpClient *http.Client
	fetchTLS   *tls.Config
	warnedMu   sync.Mutex
	warned     map[string]time.Time
	now        func() time.Time
	rand       io.Reader

	// The public edge: rate limits, the validation gate, aggregated
	// refusals, and the operator listener when operator_addr is set.
	limiter     *ratelimit.Limiter
	gate        *ratelimit.Gate
	trusted     []netip.Prefix
	refusals    *refusalLog
	operatorLis net.Listener
	// operatorGRPC serves reflection on the operator listener.
	operatorGRPC *grpc.Server

	tracing *telemetry.Tracing

	// pending are config-file connections waiting for their IdP.
	pending pendingConnections

	draining atomic.Bool
	// storeState is the store's health as last probed or met by a request.
	storeState storeHealth
	// checks decide readiness besides draining; each names what it checks.
	checks []readinessCheck
}

type readinessCheck struct {
	name  string
	check func(ctx context.Context) error
}

// serviceNames are the gRPC services whose health is reported one by one.
var serviceNames = []string{
	ssogatev1.LoginService_ServiceDesc.ServiceName,
	ssogatev1.ConnectionService_ServiceDesc.ServiceName,
	ssogatev1.KeyService_ServiceDesc.ServiceName,
	ssogatev1.AuditService_ServiceDesc.ServiceName,
	ssogatev1.EventService_ServiceDesc.ServiceName,
}

// Option adjusts a Server at construction.
type Option func(*Server)

// WithClock sets the server's clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithHTTPClient sets the client that fetches IdP metadata, bypassing the
// address guard (tests only; prefer WithFetchTLSConfig).
func WithHTTPClient(c *http.Client) Option { return func(s *Server) { s.httpClient = c } }

// WithWebhookClient sets the client that sends webhook deliveries (the
// guarded dialer in production; tests give one that trusts their TLS
// server).
func WithWebhookClient(c *http.Client) Option { return func(s *Server) { s.webhookClient = c } }

// WithWebhookTuning adjusts the webhook dispatcher's settings (tests:
// short backoff and retry window).
func WithWebhookTuning(fn func(*webhook.Config)) Option {
	return func(s *Server) { s.webhookTuning = append(s.webhookTuning, fn) }
}

// WithVersion names the build (the OpenAPI document served at
// /v1/openapi.json carries it).
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithSetupLimiter bounds how often one client may act in the setup
// portal.
func WithSetupLimiter(l portal.Limiter) Option { return func(s *Server) { s.portalLimiter = l } }

// WithFetchTLSConfig sets the TLS configuration of the guarded client that
// fetches IdP metadata (tests give one trusting their TLS server).
func WithFetchTLSConfig(tc *tls.Config) Option { return func(s *Server) { s.fetchTLS = tc } }

// WithOperatorListener serves the operator routes on l (tests: a listener
// on port 0) instead of listening on operator_addr.
func WithOperatorListener(l net.Listener) Option { return func(s *Server) { s.operatorLis = l } }

// WithRoutes adds routes to the HTTP listener: `ssogate dev` mounts its
// demo page and test IdP this way. The routes get the same request ids,
// logs and metrics as the built-in ones.
func WithRoutes(register func(*http.ServeMux)) Option {
	return func(s *Server) { s.extraRoutes = append(s.extraRoutes, register) }
}

// New builds a server from a validated configuration: it opens the store
// (applying migrations), seeds the connections of the config file, and
// loads the signing keys, creating the first one if there is none. Close
// releases the store.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	// Check the TLS files before any store work: a bad path fails fast.
	creds, err := grpcTLS(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Token.Issuer == "" {
		cfg.Token.Issuer = cfg.ExternalURL
	}
	if len(cfg.Token.Audience) == 0 {
		cfg.Token.Audience = []string{cfg.ExternalURL}
	}
	s := &Server{
		auth:      auth,
		cfg:       cfg,
		log:       log,
		metrics:   newMetrics(prometheus.NewRegistry()),
		health:    health.NewServer(),
		revoked:   newRevocations(),
		verified:  newVerifiedCache(100_000),
		allowHTTP: loopbackOnly,
		now:       time.Now,
		rand:      rand.Reader,
		tracing:   telemetry.Disabled(),
	}
	s.registry = &registry{s: s}
	for _, o := range opts {
		o(s)
	}
	s.log = slog.New(telemetry.LogHandler(log.Handler())) // trace ids on lines logged with a span
	if err := s.newEdge(cfg); err != nil {
		return nil, err
	}
	if err := s.open(ctx); err != nil {
		if s.store != nil {
			s.store.Close()
		}
		return nil, err
	}
	if err := s.newPortal(); err != nil {
		s.store.Close()
		return nil, err
	}
	scimHandler, err := s.newSCIM()
	if err != nil {
		s.store.Close()
		return nil, err
	}
	s.scim = scimHandler
	s.grpc = s.newGRPCServer(cfg.OperatorAddr == "", creds...)
	// The REST gateway reaches the same services through an in-memory
	// listener: it never crosses the network, and needs no client
	// certificate when the public listener demands one. API keys still
	// apply: it runs the same interceptors.
	s.gatewayGRPC = s.newGRPCServer(false, grpc.MaxRecvMsgSize(max(4<<20, 2*cfg.MaxRequestBytes)))
	s.gatewayLis = bufconn.Listen(1 << 20)
	return s, nil
}

// newGRPCServer registers every service behind the interceptors, and
// reflection when withReflection.
func (s *Server) newGRPCServer(withReflection bool, opts ...grpc.ServerOption) *grpc.Server {
	// Stream workers: calls run on long-lived goroutines whose stacks have
	// already grown, instead of a new goroutine per call that grows (copies)
	// its stack on every call. A call finding them all busy gets its own
	// goroutine, so there are enough for a busy server's calls in flight;
	// an idle worker costs only its stack.
	opts = append(opts, grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0)))))
	g := grpc.NewServer(append(append(opts, s.grpcTracingOptions()...),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)...)
	ssogatev1.RegisterLoginServiceServer(g, loginService{s: s})
	ssogatev1.RegisterConnectionServiceServer(g, connectionService{s: s})
	ssogatev1.RegisterKeyServiceServer(g, keyService{s: s})
	ssogatev1.RegisterAuditServiceServer(g, auditService{s: s})
	ssogatev1.RegisterEventServiceServer(g, s.eventService)
	ssogatev1.RegisterDirectoryServiceServer(g, directoryService{s: s})
	healthpb.RegisterHealthServer(g, s.health)
	if withReflection {
		reflection.Register(g)
	}
	return g
}

// grpcTLS builds the gRPC listener's TLS settings: none, TLS, or mutual
// TLS requiring client certificates from the configured CA.
func grpcTLS(cfg config.Config) ([]grpc.ServerOption, error) {
	if cfg.GRPCTLSCertFile == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cfg.GRPCTLSCertFile, cfg.GRPCTLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("invalid setting grpc_tls_cert_file / grpc_tls_key_file: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if cfg.GRPCClientCAFile != "" {
		pemBytes, err := os.ReadFile(cfg.GRPCClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("invalid setting grpc_client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("invalid setting grpc_client_ca_file: %s holds no PEM certificate", cfg.GRPCClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(tc))}, nil
}

// Run listens on the configured addresses and serves until ctx is done,
// then drains. Bound addresses are logged (useful with port 0).
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc_addr %s: %w", s.cfg.GRPCAddr, err)
	}
	httpLis, err := lc.Listen(ctx, "tcp", s.cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listen http_addr %s: %w", s.cfg.HTTPAddr, err)
	}
	return s.Serve(ctx, grpcLis, httpLis)
}

// Serve serves on the given listeners until ctx is done, then shuts down
// for a rolling update: readiness turns 503 and gRPC health NOT_SERVING at
// once, the listeners keep serving for ShutdownDelay (while load balancers
// notice), then new connections are refused and in-flight requests get up
// to ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	handler, opHandler, err := s.httpHandlers(ctx)
	if err == nil && opHandler != nil && s.operatorLis == nil {
		var lc net.ListenConfig
		s.operatorLis, err = lc.Listen(ctx, "tcp", s.cfg.OperatorAddr)
		if err != nil {
			err = fmt.Errorf("listen operator_addr %s: %w", s.cfg.OperatorAddr, err)
		}
	}
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return err
	}
	newHTTPServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	httpSrv := newHTTPServer(handler)
	servers := []*http.Server{httpSrv}
	listeners := []net.Listener{httpLis}
	attrs := []any{"grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String()}
	if opHandler != nil {
		opSrv := newHTTPServer(opHandler)
		opSrv.Protocols = new(http.Protocols)
		opSrv.Protocols.SetHTTP1(true)
		opSrv.Protocols.SetUnencryptedHTTP2(true) // gRPC reflection
		servers = append(servers, opSrv)
		listeners = append(listeners, s.operatorLis)
		attrs = append(attrs, "operator_addr", s.operatorLis.Addr().String())
	}
	s.setServing(true)
	s.log.Info("listening", attrs...)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.grpc.Serve(grpcLis); err != nil {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.gatewayGRPC.Serve(s.gatewayLis); err != nil {
			return fmt.Errorf("serve gateway grpc: %w", err)
		}
		return nil
	})
	for i, srv := range servers {
		g.Go(func() error {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve http %s: %w", listeners[i].Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error { return s.refusals.run(gctx) })
	g.Go(func() error { return s.pollRevocations(gctx, revocationPoll) })
	g.Go(func() error { return s.listenRevocations(gctx) })
	g.Go(func() error { return s.maintainKeys(gctx) })
	g.Go(func() error { return s.eventHub.Run(gctx) })
	g.Go(func() error { return s.webhooks.Run(gctx) })
	g.Go(func() error { return s.sweep(gctx, sweepEvery) })
	g.Go(func() error { return s.watchStore(gctx) })
	g.Go(func() error { return s.registry.watch(gctx) })
	g.Go(func() error { return s.maintainConnections(gctx, metadataRefreshEvery) })
	g.Go(func() error { return s.retryPending(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		s.setServing(false)
		s.log.Info("shutting down: not ready, still serving", "shutdown_delay", s.cfg.ShutdownDelay.String(), "shutdown_timeout", s.cfg.ShutdownTimeout.String())
		time.Sleep(s.cfg.ShutdownDelay)
		s.log.Info("draining")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		var herr error
		for _, srv := range servers {
			herr = errors.Join(herr, srv.Shutdown(sctx)) // REST calls drain through the gateway first
		}
		if s.operatorGRPC != nil {
			s.operatorGRPC.Stop()
		}
		gwStopped := make(chan struct{})
		go func() { s.gatewayGRPC.GracefulStop(); close(gwStopped) }()
		for _, c := range []chan struct{}{stopped, gwStopped} {
			select {
			case <-c:
			case <-sctx.Done():
				s.grpc.Stop()
				s.gatewayGRPC.Stop()
			}
		}
		if herr != nil {
			for _, srv := range servers {
				srv.Close()
			}
			return fmt.Errorf("drain http: %w", herr)
		}
		s.log.Info("stopped")
		return nil
	})
	return g.Wait()
}

func (s *Server) setServing(up bool) {
	s.draining.Store(!up)
	s.applyHealth()
}

// ready reports nil when the server should receive traffic, or what is
// wrong.
func (s *Server) ready(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	for _, c := range s.checks {
		if err := c.check(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

// Close releases the store.
func (s *Server) Close() error {
	if s.store == nil {
		return nil
	}
	return s.store.Close()
}
