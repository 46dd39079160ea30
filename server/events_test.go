package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/webhooktest"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
	"github.com/ssogate/ssogate/webhook"
)

// allowPrivate lets webhooks reach the test's receiver on loopback over
// plain http (allow_private_fetch, as `ssogate dev` sets it).
func allowPrivate(s *Server) { s.cfg.AllowPrivateFetch = true }

// fastRetries makes the dispatcher retry in milliseconds.
func fastRetries(window time.Duration) Option {
	return WithWebhookTuning(func(c *webhook.Config) {
		c.BackoffBase, c.BackoffMax, c.Poll = 10*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
		if window > 0 {
			c.RetryWindow = window
		}
	})
}

type eventsFixture struct {
	*wireFixture
	events ssogatev1.EventServiceClient
	recv   *webhooktest.Receiver
}

func newEventsFixture(t *testing.T, opts ...Option) *eventsFixture {
	t.Helper()
	f := &eventsFixture{recv: webhooktest.Start(t)}
	f.wireFixture = newWireFixture(t, []wireConn{{id: "acme"}}, opts...)
	f.events = ssogatev1.NewEventServiceClient(f.ts.dial(t, testEventsKey))
	return f
}

func (f *eventsFixture) createWebhook(t *testing.T, types ...string) *ssogatev1.CreateWebhookResponse {
	t.Helper()
	cw, err := f.events.CreateWebhook(context.Background(), &ssogatev1.CreateWebhookRequest{Url: f.recv.URL, EventTypes: types})
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	if !strings.HasPrefix(cw.Secret, webhook.SecretPrefix) || cw.Webhook.State != ssogatev1.WebhookState_WEBHOOK_STATE_ACTIVE {
		t.Fatalf("CreateWebhook = %v", cw)
	}
	return cw
}

// eventsSince lists the log after a sequence, as the pull API gives it.
func (f *eventsFixture) eventsSince(t *testing.T, after int64) []*ssogatev1.AuditEvent {
	t.Helper()
	resp, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{After: &after, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Events
}

func lastSequence(t testing.TB, st store.Store) int64 {
	t.Helper()
	n, err := st.LastEventSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWebhooksVerifiedByStandardWebhooks: every delivery verifies under
// the npm standardwebhooks package; a login and a refused login arrive as
// login.succeeded (connection, subject) and login.failed (reason); the
// receiver failing its first requests gets every event once it recovers,
// in sequence order, retried under the same webhook-id.
func TestWebhooksVerifiedByStandardWebhooks(t *testing.T) {
	f := newEventsFixture(t, allowPrivate, fastRetries(0))
	from := lastSequence(t, f.ts.srv.store)
	cw := f.createWebhook(t)
	f.recv.Configure(t, cw.Secret, 4, 0)

	code := f.loginCode(t, "acme", "alice")
	ex, err := f.login.ExchangeCode(context.Background(), &ssogatev1.ExchangeCodeRequest{Code: code})
	if err != nil {
		t.Fatal(err)
	}
	subject := ex.TokenSet.Identity.Subject
	// A replayed response is refused with a reason.
	resp, relay := f.signedResponse(t, "acme", "bob")
	f.postACS(t, "acme", resp, relay)
	if a := f.postACS(t, "acme", resp, relay); a.status == http.StatusSeeOther {
		t.Fatalf("replayed response accepted")
	}
	failed, err := f.audit.ListAuditEvents(context.Background(), &ssogatev1.ListAuditEventsRequest{Type: "login.failed", PageSize: 1})
	if err != nil || len(failed.Events) != 1 {
		t.Fatalf("login.failed in the audit log: %v %v", failed, err)
	}
	wantReason := strings.TrimPrefix(failed.Events[0].Reason.String(), "REJECTION_REASON_")

	want := f.eventsSince(t, from)
	log := f.recv.WaitFor(t, 20*time.Second, "every event accepted", func(log []webhooktest.Delivery) bool {
		n := 0
		for _, d := range log {
			if d.Status == http.StatusOK {
				n++
			}
		}
		return n >= len(want)
	})
	retried := map[string]bool{}
	var accepted []webhooktest.Delivery
	for _, d := range log {
		if !d.Verified {
			t.Fatalf("delivery %s does not verify under standardwebhooks: %s", d.ID, d.Error)
		}
		if d.SchemaError != "" {
			t.Fatalf("delivery %s (%s) does not match docs/events.schema.json: %s", d.ID, d.Event.Type, d.SchemaError)
		}
		switch d.Status {
		case http.StatusInternalServerError:
			retried[d.ID] = true
		case http.StatusOK:
			accepted = append(accepted, d)
		}
	}
	var gotSeq, wantSeq []int64
	for _, d := range accepted {
		gotSeq = append(gotSeq, d.Event.Sequence)
		delete(retried, d.ID)
	}
	for _, e := range want {
		wantSeq = append(wantSeq, e.Sequence)
	}
	if !slices.Equal(gotSeq, wantSeq) {
		t.Fatalf("accepted sequences %v, want every event in order %v", gotSeq, wantSeq)
	}
	if len(retried) > 0 {
		t.Fatalf("refused deliveries never accepted under their webhook-id: %v", retried)
	}
	var sawSuccess, sawFailure bool
	for _, d := range accepted {
		e := d.Event
		switch e.Type {
		case "login.succeeded": // alice's, then bob's
			if e.ConnectionID != "acme" || e.TenantID != "tenant-acme" {
				t.Errorf("login.succeeded = %+v, want connection acme", e)
			}
			sawSuccess = sawSuccess || e.Data["subject"] == subject
		case "login.failed":
			sawFailure = true
			if e.ConnectionID != "acme" || e.Data["reason"] != wantReason || wantReason == "UNSPECIFIED" {
				t.Errorf("login.failed = %+v, want reason %s", e, wantReason)
			}
		}
	}
	if !sawSuccess || !sawFailure {
		t.Fatalf("deliveries lack login.succeeded (%v) or login.failed (%v)", sawSuccess, sawFailure)
	}
	// The delivery log says the same, once the outcomes are recorded.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		dl, err := f.events.ListWebhookDeliveries(context.Background(), &ssogatev1.ListWebhookDeliveriesRequest{WebhookId: cw.Webhook.Id})
		if err != nil {
			t.Fatal(err)
		}
		attempts, done, problems := 0, 0, []string{}
		for _, d := range dl.Deliveries {
			if !slices.Contains(wantSeq, d.EventSequence) {
				continue // a later event
			}
			if d.Status == ssogatev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_SUCCEEDED {
				done++
			}
			if d.LastStatusCode != 200 || d.LastLatency == nil {
				problems = append(problems, d.String())
			}
			attempts += int(d.Attempts)
		}
		tried := 0
		for _, d := range f.recv.Log(t) {
			if slices.Contains(wantSeq, d.Event.Sequence) {
				tried++
			}
		}
		if done == len(wantSeq) {
			if len(problems) > 0 || attempts != tried {
				t.Fatalf("delivery log: %d attempts (receiver saw %d); entries %v", attempts, tried, problems)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery log shows %d of %d succeeded", done, len(wantSeq))
		}
	}
	if strings.Contains(f.ts.logs.String(), strings.TrimPrefix(cw.Secret, webhook.SecretPrefix)) {
		t.Error("the webhook secret is in the logs")
	}
}

// TestWebhookSCIMDeprovisioned: a deactivation (PATCH active false) and a
// deletion over the SCIM endpoint each arrive as user.deprovisioned,
// verified by the npm standardwebhooks package, with the connection, its
// tenant and the user's data.
func TestWebhookSCIMDeprovisioned(t *testing.T) {
	f := newEventsFixture(t, allowPrivate, fastRetries(0))
	cw := f.createWebhook(t, "user.deprovisioned")
	f.recv.Configure(t, cw.Secret, 0, 0)
	sc := f.scimClient(t, "acme")
	carol := sc.createUser(t, "carol@acme.test")
	dave := sc.createUser(t, "dave@acme.test")
	sc.setActive(t, carol, false)
	sc.must(t, http.StatusNoContent, "DELETE", "/Users/"+dave, "")

	log := f.recv.WaitFor(t, 20*time.Second, "two user.deprovisioned accepted", func(log []webhooktest.Delivery) bool {
		n := 0
		for _, d := range log {
			if d.Status == http.StatusOK {
				n++
			}
		}
		return n >= 2
	})
	got := map[string]webhooktest.Event{}
	for _, d := range log {
		if !d.Verified || d.SchemaError != "" {
			t.Fatalf("delivery %s: verified %v (%s), schema: %s", d.ID, d.Verified, d.Error, d.SchemaError)
		}
		if d.Event.Type != "user.deprovisioned" {
			t.Fatalf("delivery of %s to an endpoint filtered on user.deprovisioned", d.Event.Type)
		}
		got[fmt.Sprint(d.Event.Data["user_id"])] = d.Event
	}
	for _, w := range []struct {
		id, email string
		deleted   bool
	}{{carol, "carol@acme.test", false}, {dave, "dave@acme.test", true}} {
		e, ok := got[w.id]
		if !ok {
			t.Fatalf("no user.deprovisioned for user %s (%s); got %+v", w.id, w.email, got)
		}
		d := e.Data
		if e.ConnectionID != "acme" || e.TenantID != "tenant-acme" || d["user_name"] != w.email ||
			d["email"] != w.email || d["active"] != false || d["subject"] != token.Subject("acme", w.email) ||
			(d["deleted"] == true) != w.deleted {
			t.Errorf("user.deprovisioned of %s = %+v", w.email, e)
		}
	}
}

// TestWebhookFailingThenRetried: a receiver that keeps failing past the
// retry window marks the endpoint failing, with an event saying so; a
// manual retry revives it.
func TestWebhookFailingThenRetried(t *testing.T) {
	f := newEventsFixture(t, allowPrivate, fastRetries(300*time.Millisecond))
	cw := f.createWebhook(t, "login.started")
	f.recv.Configure(t, cw.Secret, 1<<30, 0)
	f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo})
	ctx := context.Background()
	var hook *ssogatev1.Webhook
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, err := f.events.ListWebhooks(ctx, &ssogatev1.ListWebhooksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if hook = l.Webhooks[0]; hook.State == ssogatev1.WebhookState_WEBHOOK_STATE_FAILING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook still %v after the retry window", hook.State)
		}
	}
	ev, err := f.audit.ListAuditEvents(ctx, &ssogatev1.ListAuditEventsRequest{Type: webhook.EventFailing})
	if err != nil || len(ev.Events) != 1 || ev.Events[0].Detail.AsMap()["webhook_id"] != cw.Webhook.Id {
		t.Fatalf("webhook.failing events: %v %v", ev, err)
	}
	dl, err := f.events.ListWebhookDeliveries(ctx, &ssogatev1.ListWebhookDeliveriesRequest{WebhookId: cw.Webhook.Id})
	if err != nil || len(dl.Deliveries) != 1 {
		t.Fatalf("deliveries: %v %v", dl, err)
	}
	d := dl.Deliveries[0]
	if d.Status != ssogatev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_FAILED || d.Attempts < 2 || d.LastStatusCode != 500 ||
		!strings.Contains(d.LastError, "500") {
		t.Fatalf("given-up delivery = %v", d)
	}
	f.recv.Configure(t, cw.Secret, 0, 0)
	if _, err := f.events.RetryWebhookDelivery(ctx, &ssogatev1.RetryWebhookDeliveryRequest{WebhookId: cw.Webhook.Id, DeliveryId: d.Id}); err != nil {
		t.Fatal(err)
	}
	f.recv.WaitFor(t, 10*time.Second, "the retried delivery accepted", func(log []webhooktest.Delivery) bool {
		return slices.ContainsFunc(log, func(x webhooktest.Delivery) bool { return x.ID == d.Id && x.Status == 200 })
	})
	_, err = f.events.RetryWebhookDelivery(ctx, &ssogatev1.RetryWebhookDeliveryRequest{WebhookId: cw.Webhook.Id, DeliveryId: "msg_nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("retry of an unknown delivery: %v", err)
	}
}

// TestWebhookSecretRotation: during the overlap both secrets sign, so a
// receiver on either verifies.
func TestWebhookSecretRotation(t *testing.T) {
	f := newEventsFixture(t, allowPrivate, fastRetries(0))
	cw := f.createWebhook(t, "login.started")
	rot, err := f.events.RotateWebhookSecret(context.Background(), &ssogatev1.RotateWebhookSecretRequest{
		WebhookId: cw.Webhook.Id, Overlap: durationpb.New(time.Hour)})
	if err != nil || rot.Secret == cw.Secret || rot.Webhook.PreviousSecretExpireTime == nil {
		t.Fatalf("RotateWebhookSecret = %v, %v", rot, err)
	}
	for i, secret := range []string{rot.Secret, cw.Secret} {
		f.recv.Configure(t, secret, 0, 0)
		f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo})
		log := f.recv.WaitFor(t, 10*time.Second, "delivery", func(log []webhooktest.Delivery) bool { return len(log) > i })
		if !log[i].Verified {
			t.Fatalf("secret %d of the overlap does not verify: %s", i, log[i].Error)
		}
	}
	// After the overlap only the new one does.
	_, err = f.events.RotateWebhookSecret(context.Background(), &ssogatev1.RotateWebhookSecretRequest{
		WebhookId: cw.Webhook.Id, Overlap: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	f.recv.Configure(t, rot.Secret, 0, 0)
	f.startLogin(t, &ssogatev1.StartLoginRequest{ConnectionId: "acme", ReturnTo: wireReturnTo})
	log := f.recv.WaitFor(t, 10*time.Second, "delivery", func(log []webhooktest.Delivery) bool { return len(log) > 2 })
	if log[2].Verified {
		t.Fatal("a secret rotated out without overlap still verifies")
	}
}

func TestWebhookURLsAndScope(t *testing.T) {
	f := newEventsFixture(t)
	ctx := context.Background()
	for _, u := range []string{"", "http://example.com/hook", "http://127.0.0.1:1/hook", "ftp://example.com/", "https://user:pw@example.com/", "https:///x"} {
		_, err := f.events.CreateWebhook(ctx, &ssogatev1.CreateWebhookRequest{Url: u})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("CreateWebhook(%q): %v, want InvalidArgument", u, err)
		}
	}
	if _, err := f.events.CreateWebhook(ctx, &ssogatev1.CreateWebhookRequest{Url: "https://example.com/hook"}); err != nil {
		t.Errorf("https URL refused: %v", err)
	}
	admin := ssogatev1.NewEventServiceClient(f.ts.dial(t, testAdminKey))
	if _, err := admin.ListWebhooks(ctx, &ssogatev1.ListWebhooksRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListWebhooks with the admin key: %v, want PermissionDenied", err)
	}
	w, err := admin.WatchEvents(ctx, &ssogatev1.WatchEventsRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("WatchEvents with the admin key: %v, want PermissionDenied", err)
	}
}

// TestWatchEventsResumes: a watcher gone for 30 s reconnects with its
// cursor and gets exactly what it missed: no gap, no duplicate. REST
// streams the same as newline-delimited JSON.
func TestWatchEventsResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 30 s")
	}
	f := newEventsFixture(t, allowPrivate)
	st := f.ts.srv.store
	ctx := context.Background()
	appendN := func(n int, tag string) {
		for i := range n {
			if err := st.AppendAudit(ctx, store.AuditEvent{Type: "test.tick", Message: fmt.Sprintf("%s-%d", tag, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(5, "before")
	wctx, cancel := context.WithCancel(ctx)
	w, err := f.events.WatchEvents(wctx, &ssogatev1.WatchEventsRequest{Types: []string{"test.tick"}})
	if err != nil {
		t.Fatal(err)
	}
	var seen []int64
	for len(seen) < 5 {
		r, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, r.Event.Sequence)
	}
	cursor := seen[len(seen)-1]
	cancel()
	// Gone for 30 s while events keep committing.
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		appendN(3, "away")
	}
	missed := f.eventsSince(t, cursor)
	w, err = f.events.WatchEvents(ctx, &ssogatev1.WatchEventsRequest{After: cursor, Types: []string{"test.tick"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(200 * time.Millisecond); appendN(2, "after") }()
	var got []int64
	for len(got) < len(missed)+2 {
		r, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Event.Sequence)
	}
	for i, seq := range got {
		if seq != cursor+int64(i)+1 {
			t.Fatalf("resumed stream after %d: %v; want consecutive sequences from %d (gap or duplicate)", cursor, got, cursor+1)
		}
	}
	t.Logf("resumed after %d: %d missed events, then live ones, consecutive", cursor, len(missed))

	// REST: newline-delimited JSON from the same cursor.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/events:watch?after=%d&types=test.tick", f.ts.httpURL, cursor), nil)
	req.Header.Set("Authorization", "Bearer "+testEventsKey)
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	resp, err := http.DefaultClient.Do(req.WithContext(rctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for i := range 3 {
		if !sc.Scan() {
			t.Fatalf("REST stream ended after %d lines: %v", i, sc.Err())
		}
		var line struct {
			Result struct {
				Event struct {
					Sequence string `json:"sequence"`
					Type     string `json:"type"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("REST line %q: %v", sc.Text(), err)
		}
		if want := fmt.Sprint(cursor + int64(i) + 1); line.Result.Event.Sequence != want || line.Result.Event.Type != "test.tick" {
			t.Fatalf("REST line %d = %s, want sequence %s", i, sc.Text(), want)
		}
	}
}
