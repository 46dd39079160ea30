package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// cpuMetric is the Prometheus process collector's counter of the CPU time
// (user + system) a process has used, which every ssogate replica exports
// on its /metrics.
const cpuMetric = "process_cpu_seconds_total"

// ServerCPU is the CPU the servers used during the load, read from their
// /metrics before and after it: what sizing needs, measured on the
// deployment itself rather than guessed from the client's side.
type ServerCPU struct {
	// Replicas is the number of /metrics URLs read.
	Replicas int `json:"replicas"`
	// Seconds is their CPU time over the load, added up.
	Seconds float64 `json:"seconds"`
	// PerLoginMS divides it by the completed logins (all five steps, so
	// it includes ValidateToken and RefreshToken), in milliseconds.
	PerLoginMS float64 `json:"per_login_ms"`
	// Error says why it could not be measured; the figures are then zero.
	Error string `json:"error,omitempty"`
}

// checkMetricsURLs refuses anything but absolute http(s) URLs.
func checkMetricsURLs(urls []string) error {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("metrics URL %q: want an absolute http(s) URL such as http://ssogate:9090/metrics", raw)
		}
	}
	return nil
}

// serversCPU adds up the process CPU counter of every URL.
func serversCPU(ctx context.Context, client *http.Client, timeout time.Duration, urls []string) (float64, error) {
	var total float64
	for _, u := range urls {
		s, err := processCPU(ctx, client, timeout, u)
		if err != nil {
			return 0, err
		}
		total += s
	}
	return total, nil
}

func processCPU(ctx context.Context, client *http.Client, timeout time.Duration, metricsURL string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, fmt.Errorf("metrics %s: %w", metricsURL, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics %s: %w", metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics %s: HTTP %d", metricsURL, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(http.MaxBytesReader(nil, resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("metrics %s: %w", metricsURL, err)
	}
	f, ok := families[cpuMetric]
	if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetCounter() == nil {
		return 0, fmt.Errorf("metrics %s: no %s counter (is this an ssogate /metrics?)", metricsURL, cpuMetric)
	}
	return f.GetMetric()[0].GetCounter().GetValue(), nil
}

// measureCPU reads the servers' CPU now and returns a function that reads
// it again and fills res.ServerCPU; with no URLs it does nothing.
func (r *run) measureCPU(ctx context.Context) func(res *Result) {
	urls := r.opts.MetricsURLs
	if len(urls) == 0 {
		return func(*Result) {}
	}
	before, err := serversCPU(ctx, r.opts.HTTPClient, r.opts.CallTimeout, urls)
	return func(res *Result) {
		res.ServerCPU = &ServerCPU{Replicas: len(urls)}
		if err == nil {
			var after float64
			after, err = serversCPU(context.WithoutCancel(ctx), r.opts.HTTPClient, r.opts.CallTimeout, urls)
			if err == nil && after < before {
				err = errors.New("a server's CPU counter went back: did a replica restart during the run?")
			}
			if err == nil {
				res.ServerCPU.Seconds = after - before
				if res.Logins > 0 {
					res.ServerCPU.PerLoginMS = res.ServerCPU.Seconds * 1000 / float64(res.Logins)
				}
			}
		}
		if err != nil {
			res.ServerCPU.Error = err.Error()
		}
	}
}
