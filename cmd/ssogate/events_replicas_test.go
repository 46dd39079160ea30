package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/ssogate/ssogate/devidp"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/internal/webhooktest"
	"github.com/ssogate/ssogate/store/storetest"
)

// eventReplica is one `ssogate serve` of three on PostgreSQL, with the
// clients the event tests use.
type eventReplica struct {
	*process
	login  ssogatev1.LoginServiceClient
	events ssogatev1.EventServiceClient
}

func startEventReplicas(t *testing.T, n int) (string, []eventReplica) {
	t.Helper()
	dsn := storetest.PostgresDSN(t)
	bin := buildBinary(t)
	idp, err := devidp.New("https://idp.example.test/idp", devidp.DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	apiKey := "events-replica-key-" + hex.EncodeToString(randomBytes(t, 8))
	sum := sha256.Sum256([]byte(apiKey))
	cfgYAML, err := yaml.Marshal(map[string]any{
		"external_url": "http://sso.example.test",
		"connections": []any{map[string]any{
			"id": "acme", "tenant_id": "acme-inc", "state": "CONNECTION_STATE_ACTIVE",
			"identity_provider": map[string]any{
				"entity_id": "https://idp.example.test/idp/metadata", "sso_url": "https://idp.example.test/idp/sso",
				"certificates": []any{map[string]any{"pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate.Raw}))}},
			},
			"allowed_return_urls": []string{"https://app.example.test/"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "ssogate.yaml")
	if err := os.WriteFile(cfgFile, cfgYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"SSOGATE_STORE=" + dsn,
		"SSOGATE_KEK=" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"SSOGATE_API_KEYS=product:" + hex.EncodeToString(sum[:]) + ":login+admin+events",
		"SSOGATE_SHUTDOWN_TIMEOUT=2s",
		"SSOGATE_ALLOW_PRIVATE_FETCH=true", // the receivers are on loopback
	}
	rs := make([]eventReplica, n)
	var wg sync.WaitGroup
	for i := range rs {
		wg.Go(func() {
			p := startProcess(t, bin, []string{"--config", cfgFile}, env)
			cc, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithPerRPCCredentials(bearerKey(apiKey)))
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { cc.Close() })
			rs[i] = eventReplica{process: p, login: ssogatev1.NewLoginServiceClient(cc), events: ssogatev1.NewEventServiceClient(cc)}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return dsn, rs
}

// startLogins makes n login.started events, round robin over the replicas.
func startLogins(t *testing.T, rs []eventReplica, n int) {
	t.Helper()
	for i := range n {
		if _, err := rs[i%len(rs)].login.StartLogin(context.Background(), &ssogatev1.StartLoginRequest{
			ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWebhooksAcrossReplicas: three replicas deliver to three endpoints
// and never send one delivery twice at once (nor, without failures, at
// all); then the replica in the middle of a delivery is killed with
// SIGKILL and another one delivers it after its lease, under the same
// webhook-id, with nothing lost and the order kept.
func TestWebhooksAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and waits out a lease")
	}
	dsn, rs := startEventReplicas(t, 3)
	ctx := context.Background()

	// Part 1: contention.
	recvs := make([]*webhooktest.Receiver, 3)
	for i := range recvs {
		recvs[i] = webhooktest.Start(t)
		cw, err := rs[i].events.CreateWebhook(ctx, &ssogatev1.CreateWebhookRequest{Url: recvs[i].URL, EventTypes: []string{"login.started"}})
		if err != nil {
			t.Fatal(err)
		}
		recvs[i].Configure(t, cw.Secret, 0, 0)
	}
	const burst = 30
	startLogins(t, rs, burst)
	for i, r := range recvs {
		log := r.WaitFor(t, 60*time.Second, "the burst", func(l []webhooktest.Delivery) bool { return len(l) >= burst })
		ids := map[string]bool{}
		var seqs []int64
		for _, d := range log {
			if !d.Verified || d.Status != 200 || d.Overlap || ids[d.ID] {
				t.Fatalf("endpoint %d: delivery %+v (verified, 200, not overlapping, once)", i, d)
			}
			ids[d.ID] = true
			seqs = append(seqs, d.Event.Sequence)
		}
		if !slices.IsSorted(seqs) || len(seqs) != burst {
			t.Fatalf("endpoint %d got sequences %v, want %d in order", i, seqs, burst)
		}
	}
	for _, r := range rs {
		if _, err := r.events.ListWebhooks(ctx, &ssogatev1.ListWebhooksRequest{}); err != nil {
			t.Fatal(err)
		}
	}

	// Part 2: kill -9 mid-delivery. The receiver holds its first request
	// open; whoever sent it dies.
	recv := webhooktest.Start(t)
	cw, err := rs[0].events.CreateWebhook(ctx, &ssogatev1.CreateWebhookRequest{Url: recv.URL, EventTypes: []string{"login.started"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.Configure(t, cw.Secret, 0, 1)
	const events = 5
	startLogins(t, rs, events)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(ctx) })
	var owner, heldID string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := db.QueryRow(ctx, "SELECT id, lease_owner FROM webhook_deliveries WHERE webhook_id = $1 AND lease_owner <> ''",
			cw.Webhook.Id).Scan(&heldID, &owner)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery leased: %v", err)
		}
	}
	parts := strings.Split(owner, "/")
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	killed := -1
	for i, r := range rs {
		if r.cmd.Process.Pid == pid {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("lease owner %q is none of the replicas", owner)
	}
	time.Sleep(200 * time.Millisecond) // the request is at the receiver
	if err := rs[killed].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	log := recv.WaitFor(t, 90*time.Second, "every event after the kill", func(l []webhooktest.Delivery) bool {
		n := 0
		for _, d := range l {
			if d.Status == 200 {
				n++
			}
		}
		return n >= events
	})
	var seqs []int64
	var redelivered bool
	for _, d := range log {
		if !d.Verified || d.Overlap {
			t.Fatalf("delivery %+v", d)
		}
		if d.Status == 200 {
			seqs = append(seqs, d.Event.Sequence)
			redelivered = redelivered || d.ID == heldID
		}
	}
	if !redelivered || len(seqs) != events || !slices.IsSorted(seqs) {
		t.Fatalf("after killing replica %d: accepted sequences %v (held %s redelivered: %v), want %d in order",
			killed+1, seqs, heldID, redelivered, events)
	}
	t.Logf("replica %d killed mid-delivery; another replica delivered it %s later (lease 30 s), then the rest in order",
		killed+1, time.Since(killedAt).Round(time.Second))
}

// TestWatchEventsAcrossReplicas measures how long an event committed on
// one replica takes to reach a watcher on another (PostgreSQL
// LISTEN/NOTIFY), and checks the stream is gap-free.
func TestWatchEventsAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	_, rs := startEventReplicas(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := rs[1].events.WatchEvents(ctx, &ssogatev1.WatchEventsRequest{Types: []string{"login.started"}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *ssogatev1.AuditEvent, 10)
	go func() {
		for {
			r, err := w.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- r.Event
		}
	}()
	const samples = 200
	lat := make([]time.Duration, 0, samples)
	var last int64
	for range samples {
		if _, err := rs[0].login.StartLogin(context.Background(), &ssogatev1.StartLoginRequest{
			ConnectionId: "acme", ReturnTo: "https://app.example.test/cb"}); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		select {
		case e := <-got:
			lat = append(lat, time.Since(committed))
			if last != 0 && e.Sequence <= last {
				t.Fatalf("stream went from %d to %d", last, e.Sequence)
			}
			last = e.Sequence
		case <-time.After(5 * time.Second):
			t.Fatal("event not seen on the other replica within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	t.Logf("commit on replica 1 → WatchEvents on replica 2, %d samples: p50 %s, p90 %s, p99 %s, max %s",
		len(lat), q(0.5).Round(10*time.Microsecond), q(0.9).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond),
		lat[len(lat)-1].Round(10*time.Microsecond))
}
