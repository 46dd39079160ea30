package main

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/testenv"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/sqlite"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite docs/screenshots from the setup portal journey")

// pageChecker runs axe-core on pages and, with -update-screenshots, takes
// their screenshots at a desktop and a phone width.
type pageChecker struct {
	t   *testing.T
	axe string
	dir string
}

func newPageChecker(t *testing.T) *pageChecker {
	nm := testenv.NodeModules(t)
	src, err := os.ReadFile(filepath.Join(nm, "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return &pageChecker{t: t, axe: string(src), dir: filepath.Join("..", "..", "docs", "screenshots")}
}

// check fails on any serious or critical axe violation of the page ctx
// shows, and saves its screenshots under name when asked to.
func (pc *pageChecker) check(ctx context.Context, name string) {
	t := pc.t
	t.Helper()
	run := `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)}))))`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](pc.axe+";true")); err != nil {
		t.Fatalf("inject axe into %s: %v", name, err)
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe on %s: %v", name, err)
	}
	var violations []map[string]any
	if err := json.Unmarshal([]byte(res), &violations); err != nil {
		t.Fatalf("axe result of %s: %v: %s", name, err, res)
	}
	if len(violations) > 0 {
		t.Errorf("axe: %s has serious or critical violations: %s", name, res)
	}
	if !*updateScreenshots {
		return
	}
	for _, w := range []int64{1280, 390} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, 800)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.MkdirAll(pc.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pc.dir, name+"-"+strconv.FormatInt(w, 10)+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
}

// referers collects the Referer of every request a browser tab sends.
type referers struct {
	mu   sync.Mutex
	seen []string
}

func (r *referers) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("network events: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			r.mu.Lock()
			if ref, ok := e.Request.Headers["Referer"].(string); ok {
				r.seen = append(r.seen, ref)
			}
			r.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *referers) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := chromedp.Do(step, chromedp.WaitVisible(chromedp.CSS(sel)))
	s := ""
	if err == nil {
		s, err = chromedp.Run(step, chromedp.Text(chromedp.CSS(sel)))
	}
	if err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("read %s: %v\npage:\n%s", sel, err, body)
	}
	return strings.TrimSpace(s)
}

func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(step, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// runTest clicks the portal's test button and returns the new tab it
// opens, signed in at the IdP when the IdP asks, and a func that closes
// it (a background tab does not render, so screenshots wait for it).
func runTest(t *testing.T, ctx context.Context, refs *referers, signIn bool) (context.Context, func()) {
	t.Helper()
	ch := chromedp.WaitNewTarget(ctx, func(info *target.Info) bool { return info.Type == "page" })
	do(t, ctx, "start the test login", chromedp.Click(chromedp.CSS("#start-test")))
	var id target.ID
	select {
	case id = <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("the test login opened no new tab")
	}
	tab, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	refs.listen(t, tab)
	if signIn {
		signInAtIdP(t, tab, "alice")
	}
	return tab, func() {
		if err := chromedp.Cancel(tab); err != nil {
			t.Errorf("close the test tab: %v", err)
		}
	}
}

func TestSetupPortalJourney(t *testing.T) {
	ctx := browser(t)
	pc := newPageChecker(t)
	dev := startDev(t)
	cc, err := grpc.NewClient(dev.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerKey(dev.apiKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	admin := ssogatev1.NewConnectionServiceClient(cc)
	login := ssogatev1.NewLoginServiceClient(cc)
	rpc := context.Background()

	// The operator makes a DRAFT connection and a setup link over gRPC.
	if _, err := admin.CreateConnection(rpc, &ssogatev1.CreateConnectionRequest{Connection: &ssogatev1.Connection{
		Id: "acme", TenantId: "acme-inc", DisplayName: "Acme Corp", AllowedReturnUrls: []string{dev.base + "/app/"}}}); err != nil {
		t.Fatal(err)
	}
	link, err := admin.CreateSetupLink(rpc, &ssogatev1.CreateSetupLinkRequest{ConnectionId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	refs := &referers{}
	refs.listen(t, ctx)
	do(t, ctx, "viewport", chromedp.EmulateViewport(1280, 800))

	// The dev demo page, whose "new connection and setup link" button
	// starts this journey for an evaluator.
	do(t, ctx, "demo page", chromedp.Navigate(dev.base+"/"), chromedp.WaitVisible(chromedp.CSS("#new-setup")))
	pc.check(ctx, "dev-demo")

	// The IT admin opens the link: the secret leaves the address bar.
	do(t, ctx, "open the setup link", chromedp.Navigate(link.SetupLink.Url))
	if u := waitLocation(t, ctx, dev.base+"/setup/idp"); strings.Contains(u.String(), link.Secret) {
		t.Fatalf("address bar still holds the secret: %s", u)
	}
	pc.check(ctx, "portal-1-choose-idp")

	// Okta: our values are on the page under Okta's field names.
	do(t, ctx, "pick Okta", chromedp.Click(chromedp.CSS("#idp-okta")))
	acs, entity := text(t, ctx, "#acs-url"), text(t, ctx, "#entity-id")
	if acs != dev.base+"/saml/acme/acs" || entity != dev.base+"/saml/acme" {
		t.Fatalf("guide shows ACS %q and entity ID %q", acs, entity)
	}
	guide := text(t, ctx, "main")
	for _, want := range []string{"Single sign-on URL", "Audience URI (SP Entity ID)", "Group Attribute Statements"} {
		if !strings.Contains(guide, want) {
			t.Errorf("Okta guide lacks %q", want)
		}
	}
	pc.check(ctx, "portal-2-configure-okta")

	// A wrong metadata address is explained next to the field.
	do(t, ctx, "metadata page", chromedp.Navigate(dev.base+"/setup/metadata"))
	pc.check(ctx, "portal-3-idp-metadata")
	do(t, ctx, "submit a bad metadata URL",
		chromedp.SetValue(chromedp.CSS("#metadata_url"), dev.base+"/dev/idp/nothing-here"),
		chromedp.Click(chromedp.CSS("#submit-url")))
	if msg := text(t, ctx, "#metadata_url-error"); !strings.Contains(msg, "404") {
		t.Errorf("bad metadata URL message: %q", msg)
	}
	pc.check(ctx, "portal-3-idp-metadata-error")

	// Metadata kept from before a certificate rollover: the test fails,
	// and the result page names the reason and the fix.
	do(t, ctx, "submit stale metadata",
		chromedp.SetValue(chromedp.CSS("#metadata_url"), dev.base+"/dev/idp/stale-metadata"),
		chromedp.Click(chromedp.CSS("#submit-url")))
	waitLocation(t, ctx, dev.base+"/setup/test")
	pc.check(ctx, "portal-4-test")
	tab, closeTab := runTest(t, ctx, refs, true)
	if reason := text(t, tab, "#reason"); reason != "CERTIFICATE_NOT_TRUSTED" {
		t.Fatalf("failed test reason %q", reason)
	}
	if fix := text(t, tab, "#fix"); !strings.Contains(fix, "View IdP metadata") {
		t.Errorf("failed test fix is not Okta's: %q", fix)
	}
	if msg := text(t, tab, "#message"); msg == "" {
		t.Error("failed test shows no admin message")
	}
	pc.check(tab, "portal-5-test-failed")
	closeTab()

	// Activation before a passing test is refused, in the browser and
	// over the API.
	do(t, ctx, "try to activate", chromedp.Navigate(dev.base+"/setup/activate"), chromedp.Click(chromedp.CSS("#activate")))
	if msg := text(t, ctx, "#page-error"); !strings.Contains(msg, "run a test login that succeeds first") {
		t.Errorf("activation without a passing test: %q", msg)
	}
	pc.check(ctx, "portal-6-activate-refused")
	_, err = admin.UpdateConnection(rpc, &ssogatev1.UpdateConnectionRequest{
		Connection: &ssogatev1.Connection{Id: "acme", State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("API activation without a passing test = %v, want FAILED_PRECONDITION", err)
	}

	// The fix: the IdP's current metadata; the test passes.
	do(t, ctx, "submit the current metadata", chromedp.Navigate(dev.base+"/setup/metadata"),
		chromedp.SetValue(chromedp.CSS("#metadata_url"), dev.base+"/dev/idp/metadata"),
		chromedp.Click(chromedp.CSS("#submit-url")))
	waitLocation(t, ctx, dev.base+"/setup/test")
	tab, closeTab = runTest(t, ctx, refs, false) // the IdP session from the first test signs in
	if outcome := text(t, tab, "#outcome"); !strings.Contains(outcome, "Success") {
		t.Fatalf("second test: %q", outcome)
	}
	pc.check(tab, "portal-7-test-passed")
	closeTab()

	do(t, ctx, "activate", chromedp.Navigate(dev.base+"/setup/activate"), chromedp.Click(chromedp.CSS("#activate")))
	waitLocation(t, ctx, dev.base+"/setup/status")
	if state := text(t, ctx, "#state"); state != "ACTIVE" {
		t.Fatalf("state after activation %q", state)
	}

	// A real login through StartLogin works.
	start, err := login.StartLogin(rpc, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: dev.base + "/app/landing", State: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "real login", chromedp.Navigate(start.RedirectUrl))
	landing := waitLocation(t, ctx, dev.base+"/app/landing")
	ex, err := login.ExchangeCode(rpc, &ssogatev1.ExchangeCodeRequest{Code: landing.Query().Get("code")})
	if err != nil || ex.TokenSet.Identity.Email != "alice@example.com" || ex.TokenSet.Identity.ConnectionId != "acme" {
		t.Fatalf("ExchangeCode after activation: %v %v", ex, err)
	}

	// An end user's refusal: the plain page with a reference...
	do(t, ctx, "status page", chromedp.Navigate(dev.base+"/setup/status"))
	post := chromedp.Evaluate[bool](`(() => {
		const f = document.createElement("form"); f.method = "post"; f.action = "/saml/acme/acs";
		const i = document.createElement("input"); i.name = "SAMLResponse"; i.value = "not base64!"; f.appendChild(i);
		document.body.appendChild(f); f.submit(); return true; })()`)
	if _, err := chromedp.Run(ctx, post); err != nil {
		t.Fatalf("post a broken response to the ACS: %v", err)
	}
	ref := text(t, ctx, "#correlation-id")
	endUser := text(t, ctx, "main")
	if strings.Contains(endUser, "MALFORMED") || strings.Contains(endUser, "base64") {
		t.Errorf("the end user sees the detail: %q", endUser)
	}
	pc.check(ctx, "enduser-error")

	// ...which the IT admin looks up in the portal.
	do(t, ctx, "look up the reference", chromedp.Navigate(dev.base+"/setup/lookup"),
		chromedp.SetValue(chromedp.CSS("#reference"), ref), chromedp.Click(chromedp.CSS("#lookup")))
	if reason := text(t, ctx, "#found-reason"); reason != "MALFORMED_ENCODING" {
		t.Errorf("lookup reason %q", reason)
	}
	pc.check(ctx, "portal-9-lookup")
	// Notices as the sweeps write them (an IdP certificate and ours about
	// to expire), so the status page is checked with its notice list.
	st, err := sqlite.Open(rpc, filepath.Join(dev.dir, "ssogate.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []store.AuditEvent{
		{Type: "certificate.expiring", Message: "the IdP's signing certificate CN=acme-idp (SHA-256 9f2c…) expires 2027-01-01T00:00:00Z (in 720h0m0s)"},
		{Type: "sp_certificate.expiring", Message: "the deployment's shared SP certificate (SHA-256 41ab…) in SP metadata expires 2027-01-01T00:00:00Z (in 720h0m0s); " +
			"rotate it (ssogate connections rotate-sp-key acme) so that the IdP can take the next one from the metadata before then"},
	} {
		e.ID, e.Time, e.ConnectionID, e.TenantID = "journey-notice-"+strconv.Itoa(i), time.Now(), "acme", "acme-inc"
		if err := st.AppendAudit(rpc, e); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	do(t, ctx, "status page", chromedp.Navigate(dev.base+"/setup/status"))
	if events := text(t, ctx, "#events"); !strings.Contains(events, "MALFORMED_ENCODING") || !strings.Contains(events, "Signed in") {
		t.Errorf("status page events:\n%s", events)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "Our certificate expiring") || !strings.Contains(page, "Certificate expiring") {
		t.Errorf("status page lacks the notices:\n%s", page)
	}
	pc.check(ctx, "portal-8-status")

	// Directory sync: the SCIM step shows the base URL, makes a token
	// once, and the token reaches this connection's SCIM endpoint.
	do(t, ctx, "SCIM page", chromedp.Navigate(dev.base+"/setup/scim"))
	if base := text(t, ctx, "#scim-base-url"); base != dev.base+"/scim/v2/acme" {
		t.Errorf("SCIM base URL %q", base)
	}
	pc.check(ctx, "portal-10-scim")
	do(t, ctx, "make a SCIM token", chromedp.Click(chromedp.CSS("#create-token")))
	scimSecret := text(t, ctx, "#scim-secret")
	if u := waitLocation(t, ctx, dev.base+"/setup/scim/tokens"); strings.Contains(u.String(), scimSecret) {
		t.Errorf("the SCIM token is in the address: %s", u)
	}
	pc.check(ctx, "portal-11-scim-token")
	for path, want := range map[string]int{"/Users": http.StatusOK, "/Users/nobody": http.StatusNotFound} {
		req, err := http.NewRequest("GET", dev.base+"/scim/v2/acme"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+scimSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /scim/v2/acme%s with the portal's token = %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The status page shows the SCIM state and the requests just made.
	do(t, ctx, "status page with SCIM", chromedp.Navigate(dev.base+"/setup/status"))
	if st := text(t, ctx, "#scim-state"); !strings.HasPrefix(st, "1 working token") {
		t.Errorf("status SCIM state %q", st)
	}
	if log := text(t, ctx, "#scim-requests"); !strings.Contains(log, "GET /Users/nobody") || !strings.Contains(log, "404") {
		t.Errorf("status SCIM requests:\n%s", log)
	}
	pc.check(ctx, "portal-12-status-scim")
	if strings.Contains(dev.logs.String(), scimSecret) {
		t.Error("ssogate dev logged the SCIM token")
	}

	// The secret never reached a log or a Referer.
	if strings.Contains(dev.logs.String(), link.Secret) {
		t.Error("ssogate dev logged the setup link secret")
	}
	for _, r := range refs.all() {
		if strings.Contains(r, link.Secret) {
			t.Errorf("the secret rode along: %s", r)
		}
	}
}
