package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/loadtest"
)

const loadtestSummary = `Drive whole logins through a running ssogate to size it: StartLogin, the ACS (an
HTTP POST of a SAMLResponse signed by the load test's own throwaway IdP), ExchangeCode,
ValidateToken and RefreshToken. It creates one connection (loadtest-<random>, tenant
"loadtest"), checks it with a test login, activates it, and deletes it at the end, also
on Ctrl-C or an error. Give -c N (N logins in flight) or -rate N/s (N logins started a
second, at most -c in flight). A line a second goes to stderr; the result table (or -o
json) to stdout. The API key needs the admin and login scopes. The server's per-client
ACS rate limit (rate_limit.client_rate, 50/s after a burst of 3,000) applies: beyond it,
the acs step fails with HTTP 429. --ca-file also verifies an https --url.`

// loadtestCmd runs `ssogate loadtest`.
func (c *cli) loadtestCmd(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("loadtest", "", loadtestSummary)
	conc := fs.Int("c", 0, fmt.Sprintf("logins in flight, 1 to %d (with -rate: at most this many; default %d)", loadtest.MaxConcurrency, loadtest.DefaultRateConcurrency))
	rate := fs.String("rate", "", fmt.Sprintf("logins started per second, e.g. 20/s (at most %g/s)", loadtest.MaxRate))
	dur := fs.Duration("d", loadtest.DefaultDuration, "how long to run the load, 1s to "+loadtest.MaxDuration.String())
	public := fs.String("url", "", "the server's public HTTP base URL to post the ACS to (default: the connection's ACS URL,\nfrom the server's external_url)")
	var metrics []string
	fs.Func("metrics", "a replica's /metrics URL (e.g. http://ssogate:9090/metrics); repeat it, or separate with commas,\nfor every replica under the load: their CPU during it is reported per login", func(v string) error {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				metrics = append(metrics, u)
			}
		}
		return nil
	})
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	opts := loadtest.Options{Concurrency: *conc, Duration: *dur, PublicURL: *public, MetricsURLs: metrics, CallTimeout: cf.timeout, Progress: c.stderr, Now: c.now}
	if *rate != "" {
		r, err := strconv.ParseFloat(strings.TrimSuffix(*rate, "/s"), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("-rate %q: want logins per second, e.g. 20/s", *rate)
		}
		opts.Rate = r
	}
	if err := opts.Check(); err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	httpClient, err := loadtestHTTPClient(cf, opts.Concurrency)
	if err != nil {
		return err
	}
	opts.HTTPClient = httpClient
	cc, err := c.dial(cf)
	if err != nil {
		return err
	}
	defer cc.Close()
	clients := loadtest.Clients{Login: ssogatev1.NewLoginServiceClient(cc), Connection: ssogatev1.NewConnectionServiceClient(cc)}
	res, runErr := loadtest.Run(ctx, clients, opts)
	if res != nil {
		if err := c.printLoadtest(cf, res); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if runErr != nil {
		return fmt.Errorf("loadtest: %w", runErr)
	}
	return nil
}

// loadtestHTTPClient posts to the ACS: --ca-file, when given, also
// verifies an https --url.
func loadtestHTTPClient(cf *clientFlags, conc int) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conc
	if cf.caFile != "" {
		pem, err := os.ReadFile(cf.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", cf.caFile)
		}
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &http.Client{Transport: t}, nil
}

// printLoadtest prints the result as JSON (-o json) or a table.
func (c *cli) printLoadtest(cf *clientFlags, res *loadtest.Result) error {
	if cf.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := c.stdout
	mode := fmt.Sprintf("-c %d", res.Concurrency)
	if res.Mode == "rate" {
		mode = fmt.Sprintf("-rate %g/s -c %d", res.Rate, res.Concurrency)
	}
	fmt.Fprintf(w, "\nconnection %s, %s, -d %s (%.1fs elapsed)%s\n", res.ConnectionID, mode,
		time.Duration(res.DurationSeconds*float64(time.Second)), res.ElapsedSeconds, map[bool]string{true: ", INTERRUPTED"}[res.Interrupted])
	fmt.Fprintf(w, "logins: %d complete (%.1f/s), %d failed", res.Logins, res.LoginsPerSecond, res.FailedLogins)
	if res.Mode == "rate" {
		fmt.Fprintf(w, ", %d starts missed (all -c in flight)", res.Missed)
	}
	fmt.Fprintln(w)
	if cpu := res.ServerCPU; cpu != nil {
		if cpu.Error != "" {
			fmt.Fprintf(w, "server CPU: not measured: %s\n", cpu.Error)
		} else {
			fmt.Fprintf(w, "server CPU: %.2f s over %d replica(s), %.2f ms per login (process_cpu_seconds_total)\n", cpu.Seconds, cpu.Replicas, cpu.PerLoginMS)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STEP           \tOPS\tOPS/S\tP50 ms\tP95 ms\tP99 ms\tMAX ms\tERRORS\t")
	for _, s := range res.Steps {
		fmt.Fprintf(tw, "%-15s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", s.Name, s.Ops, s.OpsPerSecond,
			s.Latency.P50, s.Latency.P95, s.Latency.P99, s.Latency.Max, s.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first := true
	for _, s := range res.Steps {
		reasons := slices.Collect(maps.Keys(s.ErrorsByReason))
		slices.SortFunc(reasons, func(a, b string) int {
			return cmp.Or(cmp.Compare(s.ErrorsByReason[b], s.ErrorsByReason[a]), cmp.Compare(a, b))
		})
		for _, reason := range reasons {
			if first {
				fmt.Fprintln(w, "\nerrors by reason:")
				first = false
			}
			fmt.Fprintf(w, "  %-15s %-40s %d\n", s.Name, reason, s.ErrorsByReason[reason])
		}
	}
	fmt.Fprintf(w, "\nconnection %s: %s\n", res.ConnectionID, res.Cleanup)
	return nil
}
