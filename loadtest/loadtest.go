// Package loadtest is `ssogate loadtest`: a bounded load generator that
// drives whole logins through a running ssogate, so an operator can size a
// deployment with their own hardware, store and network.
//
// One login is five steps, each timed on its own: StartLogin (gRPC); the
// ACS, an HTTP POST of a SAMLResponse to the connection's ACS URL as a
// browser makes it, whose 303 to return_to carries the code (return_to is
// read from the Location header, never fetched); ExchangeCode;
// ValidateToken; RefreshToken. The SAMLResponse is signed by the load
// test's own IdP (an RSA-2048 key and self-signed certificate made at
// start, held in memory only); building and signing it is the IdP's work
// and is not part of any step's time.
//
// What Run guarantees:
//
//   - It creates exactly one connection, ID loadtest-<8 random hex>,
//     tenant "loadtest", trusting only its IdP's certificate, with
//     .invalid (RFC 6761) SSO and return URLs that resolve nowhere. The
//     connection starts in TESTING, which serves only test logins (they
//     end on a diagnostic page and never issue a code); one test login
//     must pass (the ACS answers 200 with that page) and the connection is
//     then moved to ACTIVE the ordinary way, without force_activation,
//     which the server allows only after a passing test. A deployment that
//     refuses the load test's responses thus fails before any load, with
//     the reason.
//   - The connection is deleted before Run returns, whether the run ended,
//     failed or was cancelled (Ctrl-C): the delete runs on a context of
//     its own (15 s). Deleting revokes the sessions the run made. A delete
//     that fails is reported in Result.Cleanup and in the error, with the
//     ID to delete by hand.
//   - Bounds: at most MaxConcurrency logins in flight, at most MaxRate
//     starts a second, at most MaxDuration of load; no login starts after
//     the duration, and every call and POST has a deadline. Memory is fixed
//     whatever the run's length: one Histogram per step and at most
//     maxReasons distinct error reasons per step.
//   - Nothing secret is printed: no code, token, assertion or key.
//
// What stays behind: the audit events of the run (connection created,
// tested, activated and deleted; login.started and login.succeeded per
// login, as for any login), and the revoked sessions until the server's
// retention sweeps them (sessions are capped at one hour).
//
// Rate limits: a deployment's per-client ACS limit (rate_limit.client_rate,
// 50/s after a burst of 3,000 by default) applies to the load test like
// to any browser; beyond it the ACS step fails with HTTP 429. That is the
// limit working, not the server's capacity: raise it for the run, or run
// the load test from several hosts.
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// Bounds of a run.
const (
	MaxConcurrency  = 256
	MaxRate         = 1000.0
	MaxDuration     = 10 * time.Minute
	DefaultDuration = 30 * time.Second
	// DefaultRateConcurrency bounds logins in flight in rate mode when no
	// concurrency is given.
	DefaultRateConcurrency = 64
	// maxReasons bounds the distinct error reasons kept per step; more
	// are counted under "OTHER".
	maxReasons = 32
	// cleanupTimeout bounds the delete of the connection at the end.
	cleanupTimeout = 15 * time.Second
	// alreadyGone is Result.Cleanup when the connection was deleted
	// under the run.
	alreadyGone = "already gone (deleted by someone else during the run)"
	// Tenant is the tenant of the load test's connection.
	Tenant = "loadtest"
	// returnURL is the load test's return_to: never fetched.
	returnURL = "https://app.loadtest.invalid/callback"
)

// Step names, in the order a login runs them.
const (
	StepStartLogin    = "start_login"
	StepACS           = "acs"
	StepExchangeCode  = "exchange_code"
	StepValidateToken = "validate_token"
	StepRefreshToken  = "refresh_token"
)

// Steps lists the step names in order.
var Steps = []string{StepStartLogin, StepACS, StepExchangeCode, StepValidateToken, StepRefreshToken}

// Clients are the API services the load test calls; one API key with the
// admin and login scopes serves both.
type Clients struct {
	Login      ssogatev1.LoginServiceClient
	Connection ssogatev1.ConnectionServiceClient
}

// Options shape a run. Either Concurrency alone (closed loop: that many
// logins in flight, each starting when the last ended) or Rate (open loop:
// Rate logins started a second, at most Concurrency in flight; a start
// that finds them all busy is skipped and counted in Result.Missed).
type Options struct {
	Concurrency int
	Rate        float64
	// Duration of the load; DefaultDuration when zero.
	Duration time.Duration
	// PublicURL, when set, is the base URL the ACS is posted to
	// (PublicURL + "/saml/{id}/acs"), for a client that reaches the server
	// by another address than its external_url. The SAMLResponse still
	// names the connection's own ACS URL.
	PublicURL string
	// HTTPClient posts to the ACS; its redirects are never followed. Nil
	// means a client of its own.
	HTTPClient *http.Client
	// CallTimeout bounds each call and POST; 30 s when zero.
	CallTimeout time.Duration
	// MetricsURLs are the servers' /metrics (one per replica under the
	// load): their process CPU counter is read before and after the load,
	// for Result.ServerCPU. None means no server CPU figure.
	MetricsURLs []string
	// Progress gets a line a second while the load runs; nil for none.
	Progress io.Writer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Check applies the defaults and refuses values out of bounds.
func (o *Options) Check() error {
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Duration < time.Second || o.Duration > MaxDuration {
		return fmt.Errorf("duration %s: want 1s to %s", o.Duration, MaxDuration)
	}
	if o.Rate < 0 || o.Rate > MaxRate {
		return fmt.Errorf("rate %g/s: want up to %g/s", o.Rate, MaxRate)
	}
	if o.Rate > 0 && o.Concurrency == 0 {
		o.Concurrency = DefaultRateConcurrency
	}
	if o.Concurrency == 0 {
		return errors.New("give a concurrency (-c N) or a rate (-rate N/s)")
	}
	if o.Concurrency < 1 || o.Concurrency > MaxConcurrency {
		return fmt.Errorf("concurrency %d: want 1 to %d", o.Concurrency, MaxConcurrency)
	}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public URL %q: want an absolute http(s) URL", o.PublicURL)
		}
		o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	}
	if err := checkMetricsURLs(o.MetricsURLs); err != nil {
		return err
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.Concurrency
		o.HTTPClient = &http.Client{Transport: t}
	}
	c := *o.HTTPClient
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Jar = nil
	o.HTTPClient = &c
	return nil
}

// Result is what a run measured; with -o json it is printed as is.
type Result struct {
	// ConnectionID is the throwaway connection's ID.
	ConnectionID string `json:"connection_id"`
	// Mode is "concurrency" or "rate".
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
	// DurationSeconds is the load's duration asked for; ElapsedSeconds
	// runs from the first start to the end of the last login in flight.
	DurationSeconds float64 `json:"duration_seconds"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
	// Logins is the number of logins whose five steps all succeeded;
	// LoginsPerSecond divides it by ElapsedSeconds.
	Logins          uint64  `json:"logins"`
	LoginsPerSecond float64 `json:"logins_per_second"`
	// FailedLogins stopped at a failed step (counted in that step's
	// errors).
	FailedLogins uint64 `json:"failed_logins"`
	// Missed is the starts rate mode skipped with Concurrency logins in
	// flight: the server (or this client) could not keep up with Rate.
	Missed uint64 `json:"missed_starts"`
	// Interrupted is set when the run was cancelled before its duration.
	Interrupted bool `json:"interrupted"`
	// Steps has one entry per step, in order.
	Steps []StepResult `json:"steps"`
	// ServerCPU is set when Options.MetricsURLs were given.
	ServerCPU *ServerCPU `json:"server_cpu,omitempty"`
	// Cleanup is "deleted", or why the connection could not be deleted.
	Cleanup string `json:"cleanup"`
}

// StepResult is one step's figures.
type StepResult struct {
	Name string `json:"name"`
	// Ops is the successful calls; OpsPerSecond divides them by the
	// elapsed time.
	Ops          uint64  `json:"ops"`
	OpsPerSecond float64 `json:"ops_per_second"`
	// Latency of the successful calls, in milliseconds.
	Latency Latency `json:"latency_ms"`
	// Errors is the failed calls; ErrorsByReason splits them: the
	// ErrorInfo reason of a gRPC error (else its code), "HTTP <status>"
	// for an ACS answer other than the 303 with a code, "NOT_VALID:<why>"
	// for a ValidateToken that answered valid=false, "TRANSPORT" or
	// "TIMEOUT" for a call that got no answer.
	Errors         uint64            `json:"errors"`
	ErrorsByReason map[string]uint64 `json:"errors_by_reason"`
}

// Latency holds quantiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// stepStats collects one step's samples from every worker.
type stepStats struct {
	mu      sync.Mutex
	hist    Histogram
	errs    uint64
	reasons map[string]uint64
}

func (s *stepStats) ok(d time.Duration) {
	s.mu.Lock()
	s.hist.Record(d)
	s.mu.Unlock()
}

func (s *stepStats) fail(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs++
	if _, seen := s.reasons[reason]; !seen && len(s.reasons) >= maxReasons {
		reason = "OTHER"
	}
	s.reasons[reason]++
}

// run is one load test in progress.
type run struct {
	opts    Options
	clients Clients
	idp     *IdP
	conn    *ssogatev1.Connection
	acsPost string // where the ACS is posted
	stats   map[string]*stepStats
	logins  atomic.Uint64
	failed  atomic.Uint64
	errors  atomic.Uint64
	missed  atomic.Uint64
	seq     atomic.Uint64
}

// Run creates the connection, checks it with a test login, activates it,
// runs the load and deletes the connection. Once load ran, the Result is
// returned even with an error (an interrupted run, a failed delete);
// before, a failure returns no Result.
func Run(ctx context.Context, clients Clients, opts Options) (res *Result, err error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	id, err := connectionID()
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, clients: clients, stats: map[string]*stepStats{}}
	for _, s := range Steps {
		r.stats[s] = &stepStats{reasons: map[string]uint64{}}
	}
	r.idp, err = NewIdP("urn:ssogate:loadtest:"+id, "https://idp.loadtest.invalid/sso", opts.Now)
	if err != nil {
		return nil, err
	}
	if err := r.create(ctx, id); err != nil {
		return nil, err
	}
	if err := r.preflight(ctx); err != nil {
		return nil, r.abort(ctx, err)
	}
	res = &Result{ConnectionID: id, Concurrency: opts.Concurrency, Rate: opts.Rate, DurationSeconds: opts.Duration.Seconds(), Mode: "concurrency"}
	if opts.Rate > 0 {
		res.Mode = "rate"
	}
	defer func() {
		res.Cleanup = r.delete(ctx)
		switch res.Cleanup {
		case "deleted":
		case alreadyGone:
			err = errors.Join(err, fmt.Errorf("the load test's connection %q was deleted by someone else during the run", id))
		default:
			err = errors.Join(err, fmt.Errorf("the load test's connection %q was not deleted (%s): delete it with `ssogate connections delete %s --yes`", id, res.Cleanup, id))
		}
	}()
	r.load(ctx, res)
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, fmt.Errorf("interrupted after %.1fs: %w", res.ElapsedSeconds, context.Cause(ctx))
	}
	return res, nil
}

func connectionID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random connection ID: %w", err)
	}
	return "loadtest-" + hex.EncodeToString(b), nil
}

// call runs one RPC under the call timeout.
func call[Req, Resp any](ctx context.Context, timeout time.Duration, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return rpc(ctx, req)
}

// create registers the connection in TESTING.
func (r *run) create(ctx context.Context, id string) error {
	resp, err := call(ctx, r.opts.CallTimeout, r.clients.Connection.CreateConnection, &ssogatev1.CreateConnectionRequest{
		Connection: &ssogatev1.Connection{
			Id:          id,
			TenantId:    Tenant,
			DisplayName: "ssogate loadtest (deleted when the run ends)",
			State:       ssogatev1.ConnectionState_CONNECTION_STATE_TESTING,
			IdentityProvider: &ssogatev1.IdentityProviderSettings{
				EntityId:     r.idp.EntityID,
				SsoUrl:       r.idp.SSOURL,
				Certificates: []*ssogatev1.Certificate{{Pem: r.idp.CertificatePEM}},
			},
			AllowedReturnUrls:  []string{returnURL},
			MaxSessionDuration: durationpb.New(time.Hour),
		},
	})
	if err != nil {
		// Named: an answer lost on the way (a timeout) may leave it behind.
		return fmt.Errorf("create the load test's connection %s: %s", id, describe(err))
	}
	r.conn = resp.Connection
	r.acsPost = r.conn.GetServiceProvider().GetAcsUrl()
	if r.opts.PublicURL != "" {
		r.acsPost = r.opts.PublicURL + "/saml/" + url.PathEscape(id) + "/acs"
	}
	return nil
}

// abort deletes the connection after a failure before the load.
func (r *run) abort(ctx context.Context, err error) error {
	if c := r.delete(ctx); c != "deleted" {
		return errors.Join(err, fmt.Errorf("the load test's connection %q was not deleted (%s): delete it with `ssogate connections delete %s --yes`", r.conn.Id, c, r.conn.Id))
	}
	return err
}

// delete removes the connection on a context of its own, so that a
// cancelled run still cleans up.
func (r *run) delete(ctx context.Context) string {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := r.clients.Connection.DeleteConnection(dctx, &ssogatev1.DeleteConnectionRequest{ConnectionId: r.conn.Id})
	switch {
	case err == nil:
		return "deleted"
	case status.Code(err) == codes.NotFound:
		return alreadyGone
	default:
		return describe(err)
	}
}

// preflight runs one test login (the ACS must answer 200, the diagnostic
// page of a passing test) and then activates the connection as an admin
// would.
func (r *run) preflight(ctx context.Context) error {
	start, err := call(ctx, r.opts.CallTimeout, r.clients.Login.StartLogin,
		&ssogatev1.StartLoginRequest{ConnectionId: r.conn.Id, Test: true})
	if err != nil {
		return fmt.Errorf("test login: StartLogin: %s", describe(err))
	}
	form, err := r.respond(start, 0)
	if err != nil {
		return fmt.Errorf("test login: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	resp, err := r.post(pctx, form)
	if err != nil {
		return fmt.Errorf("test login: POST %s: %w", r.acsPost, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("test login: the ACS at %s answered %s, not the diagnostic page of a passing test; see `ssogate audit tail --connection %s --type login.failed` for why", r.acsPost, resp.Status, r.conn.Id)
	}
	// Activation without force_activation: the server refuses it unless a
	// test login passed since the IdP settings were set, so this also
	// proves the test login above passed.
	_, err = call(ctx, r.opts.CallTimeout, r.clients.Connection.UpdateConnection, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: r.conn.Id, State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})
	if err != nil {
		return fmt.Errorf("activate the load test's connection: %s", describe(err))
	}
	return nil
}

// respond plays the IdP: it reads the AuthnRequest from the redirect and
// signs a Response for user n.
func (r *run) respond(start *ssogatev1.StartLoginResponse, n uint64) (url.Values, error) {
	req, err := r.idp.ParseRedirect(start.RedirectUrl)
	if err != nil {
		return nil, err
	}
	if req.ID != start.RequestId {
		return nil, fmt.Errorf("the redirect's AuthnRequest is %q, StartLogin said %q", req.ID, start.RequestId)
	}
	acs := req.ACSURL
	if acs == "" {
		acs = r.conn.GetServiceProvider().GetAcsUrl()
	}
	email := fmt.Sprintf("user-%d@loadtest.invalid", n)
	b64, err := r.idp.Response(req, acs, User{NameID: email, Email: email, GivenName: "Load", FamilyName: "Test " + strconv.FormatUint(n, 10), Groups: []string{"loadtest"}})
	if err != nil {
		return nil, err
	}
	form := url.Values{"SAMLResponse": {b64}}
	if req.RelayState != "" {
		form.Set("RelayState", req.RelayState)
	}
	return form, nil
}

// post sends the form to the ACS like a browser's auto-submitting page.
func (r *run) post(ctx context.Context, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.acsPost, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r.opts.HTTPClient.Do(req)
}

// load runs the workers until the duration is over or ctx ends.
func (r *run) load(ctx context.Context, res *Result) {
	begin := r.opts.Now()
	deadline := begin.Add(r.opts.Duration)
	cpuDone := r.measureCPU(ctx)
	stopProgress := r.progress(begin)
	var wg sync.WaitGroup
	if r.opts.Rate > 0 {
		r.paced(ctx, deadline, &wg)
	} else {
		for range r.opts.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil && r.opts.Now().Before(deadline) {
					r.login(ctx)
				}
			})
		}
	}
	wg.Wait()
	stopProgress()
	elapsed := r.opts.Now().Sub(begin)
	res.ElapsedSeconds = elapsed.Seconds()
	res.Logins, res.FailedLogins, res.Missed = r.logins.Load(), r.failed.Load(), r.missed.Load()
	res.LoginsPerSecond = perSecond(res.Logins, elapsed)
	cpuDone(res)
	for _, name := range Steps {
		s := r.stats[name]
		s.mu.Lock()
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.Steps = append(res.Steps, StepResult{
			Name: name, Ops: s.hist.Count(), OpsPerSecond: perSecond(s.hist.Count(), elapsed),
			Latency: Latency{P50: ms(s.hist.Quantile(0.50)), P95: ms(s.hist.Quantile(0.95)), P99: ms(s.hist.Quantile(0.99)), Max: ms(s.hist.Max())},
			Errors:  s.errs, ErrorsByReason: s.reasons,
		})
		s.mu.Unlock()
	}
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// paced starts Rate logins a second until the deadline, at most
// Concurrency in flight; a start that finds none free is skipped.
func (r *run) paced(ctx context.Context, deadline time.Time, wg *sync.WaitGroup) {
	slots := make(chan struct{}, r.opts.Concurrency)
	interval := time.Duration(float64(time.Second) / r.opts.Rate)
	next := r.opts.Now()
	for {
		now := r.opts.Now()
		if !now.Before(deadline) || ctx.Err() != nil {
			return
		}
		if wait := next.Sub(now); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		next = next.Add(interval)
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				r.login(ctx)
			})
		default:
			r.missed.Add(1)
		}
	}
}

// progress prints a line a second until the returned func is called.
func (r *run) progress(begin time.Time) func() {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last uint64
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			n := r.logins.Load()
			elapsed := r.opts.Now().Sub(begin)
			line := fmt.Sprintf("%5.0fs  logins %d  %.1f/s (mean %.1f/s)  errors %d", elapsed.Seconds(), n, float64(n-last), perSecond(n, elapsed), r.errors.Load())
			if m := r.missed.Load(); m > 0 {
				line += fmt.Sprintf("  missed starts %d", m)
			}
			fmt.Fprintln(r.opts.Progress, line)
			last = n
		}
	})
	return func() { close(done); wg.Wait() }
}

// login runs one login's five steps; the first that fails ends it.
func (r *run) login(ctx context.Context) {
	n := r.seq.Add(1)
	if r.steps(ctx, n) {
		r.logins.Add(1)
		return
	}
	if ctx.Err() == nil {
		r.failed.Add(1)
	}
}

// timed runs one step and records it; a failure during cancellation is
// the run ending, not the server failing, and is not counted.
func (r *run) timed(ctx context.Context, step string, fn func(context.Context) (reason string, err error)) bool {
	sctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	t0 := time.Now()
	reason, err := fn(sctx)
	d := time.Since(t0)
	if err == nil && reason == "" {
		r.stats[step].ok(d)
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	if reason == "" {
		reason = reasonOf(err)
	}
	r.stats[step].fail(reason)
	r.errors.Add(1)
	return false
}

func (r *run) steps(ctx context.Context, n uint64) bool {
	state := "lt-" + strconv.FormatUint(n, 10)
	var start *ssogatev1.StartLoginResponse
	if !r.timed(ctx, StepStartLogin, func(ctx context.Context) (_ string, err error) {
		start, err = r.clients.Login.StartLogin(ctx, &ssogatev1.StartLoginRequest{ConnectionId: r.conn.Id, ReturnTo: returnURL, State: state})
		return "", err
	}) {
		return false
	}
	// The IdP's part: not timed.
	form, err := r.respond(start, n)
	if err != nil {
		r.stats[StepACS].fail("IDP: " + err.Error())
		r.errors.Add(1)
		return false
	}
	var code string
	if !r.timed(ctx, StepACS, func(ctx context.Context) (string, error) {
		resp, err := r.post(ctx, form)
		if err != nil {
			return "", err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			return "HTTP " + strconv.Itoa(resp.StatusCode), nil
		}
		var reason string
		code, reason = codeFrom(resp.Header.Get("Location"), state)
		return reason, nil
	}) {
		return false
	}
	var tokens *ssogatev1.TokenSet
	if !r.timed(ctx, StepExchangeCode, func(ctx context.Context) (string, error) {
		ex, err := r.clients.Login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code})
		if err != nil {
			return "", err
		}
		tokens = ex.TokenSet
		return "", nil
	}) {
		return false
	}
	if !r.timed(ctx, StepValidateToken, func(ctx context.Context) (string, error) {
		v, err := r.clients.Login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: tokens.GetAccessToken()})
		if err != nil {
			return "", err
		}
		if !v.Valid {
			return "NOT_VALID:" + v.Reason, nil
		}
		return "", nil
	}) {
		return false
	}
	return r.timed(ctx, StepRefreshToken, func(ctx context.Context) (string, error) {
		_, err := r.clients.Login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: tokens.GetRefreshToken()})
		return "", err
	})
}

// codeFrom takes the code from the ACS's Location, which must be return_to
// with our state: the backend's side of the redirect, without fetching it.
func codeFrom(location, state string) (code, reason string) {
	u, err := url.Parse(location)
	if err != nil || !strings.HasPrefix(location, returnURL+"?") {
		return "", "REDIRECT_NOT_RETURN_TO"
	}
	q := u.Query()
	if q.Get("state") != state {
		return "", "STATE_MISMATCH"
	}
	if code = q.Get("code"); code == "" {
		return "", "NO_CODE"
	}
	return code, ""
}

// reasonOf names a failed call: the ErrorInfo reason of a gRPC status, else
// its code; TIMEOUT or TRANSPORT for a call that got no answer.
func reasonOf(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "TIMEOUT"
	}
	st, ok := status.FromError(err)
	if !ok {
		return "TRANSPORT"
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason != "" {
			return info.Reason
		}
	}
	if st.Code() == codes.DeadlineExceeded {
		return "TIMEOUT"
	}
	return codeName(st.Code())
}

// describe renders a gRPC error for a person: reason and message.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	return reasonOf(err) + ": " + st.Message()
}

// codeName spells a code as the gRPC spec does (PERMISSION_DENIED).
func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	s := c.String()
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && ch >= 'A' && ch <= 'Z' && s[i-1] >= 'a' && s[i-1] <= 'z' {
			b.WriteByte('_')
		}
		b.WriteRune(ch)
	}
	return strings.ToUpper(b.String())
}
