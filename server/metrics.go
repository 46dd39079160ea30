package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus collectors, on a registry of its own
// (no global state: two servers in one test process do not collide).
type metrics struct {
	registry     *prometheus.Registry
	grpcHandled  *prometheus.CounterVec
	grpcDuration *prometheus.HistogramVec
	httpHandled  *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		registry: reg,
		grpcHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssogate_grpc_requests_total",
			Help: "gRPC requests handled, by service, method and status code.",
		}, []string{"service", "method", "code"}),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssogate_grpc_request_duration_seconds",
			Help:    "gRPC request latency, by service and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"service", "method"}),
		httpHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssogate_http_requests_total",
			Help: "HTTP requests handled, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssogate_http_request_duration_seconds",
			Help:    "HTTP request latency, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"route"}),
	}
	reg.MustRegister(m.grpcHandled, m.grpcDuration, m.httpHandled, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
