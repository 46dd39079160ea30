package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// Server runs ssogate's two listeners.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *metrics
	health  *health.Server
	grpc    *grpc.Server
	auth    *authenticator

	extraRoutes []func(*http.ServeMux)

	draining atomic.Bool
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
}

// Option adjusts a Server at construction.
type Option func(*Server)

// WithRoutes adds routes to the HTTP listener: `ssogate dev` mounts its
// demo page and test IdP this way. The routes get the same request ids,
// logs and metrics as the built-in ones.
func WithRoutes(register func(*http.ServeMux)) Option {
	return func(s *Server) { s.extraRoutes = append(s.extraRoutes, register) }
}

// New builds a server from a validated configuration.
func New(cfg config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	s := &Server{
		auth:    auth,
		cfg:     cfg,
		log:     log,
		metrics: newMetrics(prometheus.NewRegistry()),
		health:  health.NewServer(),
	}
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)
	ssogatev1.RegisterLoginServiceServer(s.grpc, loginService{})
	ssogatev1.RegisterConnectionServiceServer(s.grpc, connectionService{})
	ssogatev1.RegisterKeyServiceServer(s.grpc, keyService{})
	ssogatev1.RegisterAuditServiceServer(s.grpc, auditService{})
	for _, o := range opts {
		o(s)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
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

// Serve serves on the given listeners until ctx is done, then drains:
// health turns NOT_SERVING, new connections are refused, and in-flight
// requests get up to ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	handler, err := s.httpHandler(ctx, grpcLis.Addr().String())
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return err
	}
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.setServing(true)
	s.log.Info("listening", "grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.grpc.Serve(grpcLis); err != nil {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := httpSrv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
		s.setServing(false)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		herr := httpSrv.Shutdown(sctx)
		select {
		case <-stopped:
		case <-sctx.Done():
			s.grpc.Stop()
		}
		if herr != nil {
			httpSrv.Close()
			return fmt.Errorf("drain http: %w", herr)
		}
		s.log.Info("stopped")
		return nil
	})
	return g.Wait()
}

func (s *Server) setServing(up bool) {
	s.draining.Store(!up)
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if up {
		status = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", status)
	for _, name := range serviceNames {
		s.health.SetServingStatus(name, status)
	}
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
