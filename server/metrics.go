package server

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ssogate/ssogate/internal/buildinfo"
)

// metrics are the server's Prometheus collectors, on a registry of its own
// (no global state: two servers in one test process do not collide).
//
// Label cardinality is bounded: routes are mux patterns, reasons come from
// an enum, and the connection label takes only ids of stored connections
// (never a raw path segment; "" where none was found), so its size is the
// number of connections the operator created. Series of a deleted
// connection are dropped.
type metrics struct {
	registry     *prometheus.Registry
	grpcHandled  *prometheus.CounterVec
	grpcDuration *prometheus.HistogramVec
	httpHandled  *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	loginsStarted   *prometheus.CounterVec
	loginsRefused   *prometheus.CounterVec
	acsOutcomes     *prometheus.CounterVec
	exchangeLatency *prometheus.HistogramVec
	validateLatency prometheus.Histogram
	validations     *prometheus.CounterVec
	codeRejected    *prometheus.CounterVec
	refreshRejected *prometheus.CounterVec
	metadataRefresh *prometheus.CounterVec
	certExpiry      *prometheus.GaugeVec
	overloaded      *prometheus.CounterVec
	connPending     *prometheus.GaugeVec

	// certConns are the connections with certificate-expiry series.
	certMu    sync.Mutex
	certConns map[string]bool
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
	fast := prometheus.ExponentialBuckets(0.00005, 2.5, 14)
	m.loginsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_logins_started_total", Help: "Logins started (AuthnRequests stored), by whether they are test logins.",
	}, []string{"test"})
	m.loginsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_logins_refused_total", Help: "StartLogin calls refused before reaching the IdP, by check.",
	}, []string{"check"})
	m.acsOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_acs_outcomes_total", Help: "Outcomes of SAML responses by connection: SUCCESS, TEST, or the rejection reason.",
	}, []string{"connection", "reason"})
	m.exchangeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ssogate_exchange_duration_seconds", Help: "ExchangeCode and ExchangeAssertion latency.", Buckets: fast,
	}, []string{"kind"})
	m.validateLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ssogate_validate_token_duration_seconds", Help: "ValidateToken latency.", Buckets: fast,
	})
	m.validations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_token_validations_total", Help: "ValidateToken verdicts: valid, or the reason a token is not.",
	}, []string{"result"})
	m.codeRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_codes_rejected_total", Help: "Codes refused by ExchangeCode: unknown, reused, expired.",
	}, []string{"reason"})
	m.refreshRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_refresh_rejected_total", Help: "Refresh tokens refused: unknown, malformed, reused, expired, revoked.",
	}, []string{"reason"})
	m.metadataRefresh = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_idp_metadata_refresh_total", Help: "IdP metadata refreshes by result.",
	}, []string{"result"})
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ssogate_idp_certificate_expiry_seconds", Help: "Seconds until a pinned IdP signing certificate expires.",
	}, []string{"connection", "sha256"})
	m.overloaded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ssogate_overload_refused_total", Help: "ACS and SLO requests refused with 503 by the validation gate (concurrency or bytes in flight), by route.",
	}, []string{"route"})
	reg.MustRegister(m.overloaded)
	m.connPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ssogate_connection_pending", Help: "1 for each config-file connection not served yet because its IdP metadata URL is unreachable (retried with backoff).",
	}, []string{"connection"})
	reg.MustRegister(m.connPending)
	bi := buildinfo.Get()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ssogate_build_info", Help: "1, labelled with the running build's version, VCS revision and Go version.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	reg.MustRegister(buildInfo)
	reg.MustRegister(m.loginsStarted, m.loginsRefused, m.acsOutcomes, m.exchangeLatency, m.validateLatency,
		m.validations, m.codeRejected, m.refreshRejected, m.metadataRefresh, m.certExpiry)
	reg.MustRegister(m.grpcHandled, m.grpcDuration, m.httpHandled, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// setCertExpiry replaces a connection's certificate-expiry series (a
// certificate rotated out loses its series).
func (m *metrics) setCertExpiry(conn string, secondsLeft map[string]float64) {
	m.certMu.Lock()
	defer m.certMu.Unlock()
	m.certExpiry.DeletePartialMatch(prometheus.Labels{"connection": conn})
	for fp, v := range secondsLeft {
		m.certExpiry.WithLabelValues(conn, fp).Set(v)
	}
	if m.certConns == nil {
		m.certConns = map[string]bool{}
	}
	m.certConns[conn] = true
}

// dropConnection removes every per-connection series of a deleted
// connection.
func (m *metrics) dropConnection(conn string) {
	m.certMu.Lock()
	defer m.certMu.Unlock()
	m.certExpiry.DeletePartialMatch(prometheus.Labels{"connection": conn})
	m.acsOutcomes.DeletePartialMatch(prometheus.Labels{"connection": conn})
	delete(m.certConns, conn)
}

// keepConnections drops the series of connections not in live (deleted,
// perhaps through another replica).
func (m *metrics) keepConnections(live map[string]bool) {
	m.certMu.Lock()
	var gone []string
	for c := range m.certConns {
		if !live[c] {
			gone = append(gone, c)
		}
	}
	m.certMu.Unlock()
	for _, c := range gone {
		m.dropConnection(c)
	}
}
