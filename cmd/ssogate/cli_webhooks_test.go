package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/webhook"
)

func TestCLIWebhooks(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	var got atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(webhook.HeaderSignature) == "" || r.Header.Get(webhook.HeaderID) == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if refuse.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
	}))
	t.Cleanup(recv.Close)
	s := startCLIServer(t, map[string]string{"SSOGATE_ALLOW_PRIVATE_FETCH": "true"}) // the receiver is on loopback

	created := s.cli(t, "webhooks", "create", recv.URL+"/hook", "--types", "signing_key.rotated").ok(t)
	if !strings.Contains(created.stdout, "whsec_") || !strings.Contains(created.stdout, "signing_key.rotated") {
		t.Fatalf("webhooks create:\n%s", created.stdout)
	}
	list := s.cli(t, "webhooks", "list", "-o", "json").ok(t)
	var hooks ssogatev1.ListWebhooksResponse
	if err := protojson.Unmarshal([]byte(list.stdout), &hooks); err != nil || len(hooks.Webhooks) != 1 {
		t.Fatalf("webhooks list -o json: %v\n%s", err, list.stdout)
	}
	if strings.Contains(list.stdout, "whsec_") {
		t.Fatal("webhooks list shows a secret")
	}
	id := hooks.Webhooks[0].Id
	s.cli(t, "keys", "rotate").ok(t)
	var ds ssogatev1.ListWebhookDeliveriesResponse
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := s.cli(t, "webhooks", "deliveries", id, "-o", "json").ok(t)
		if err := protojson.Unmarshal([]byte(out.stdout), &ds); err != nil {
			t.Fatal(err)
		}
		if len(ds.Deliveries) == 1 && ds.Deliveries[0].LastStatusCode == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refused attempt in the delivery log:\n%s", out.stdout)
		}
	}
	table := s.cli(t, "webhooks", "deliveries", id).ok(t)
	if !strings.Contains(table.stdout, "pending") || !strings.Contains(table.stdout, "503") {
		t.Fatalf("deliveries table:\n%s", table.stdout)
	}
	refuse.Store(false)
	s.cli(t, "webhooks", "retry", id, ds.Deliveries[0].Id).ok(t)
	for deadline := time.Now().Add(10 * time.Second); got.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("retried delivery never arrived")
		}
	}
	rot := s.cli(t, "webhooks", "rotate-secret", id, "--overlap", "1h").ok(t)
	if !strings.Contains(rot.stdout, "whsec_") {
		t.Fatalf("rotate-secret:\n%s", rot.stdout)
	}
	s.cli(t, "webhooks", "delete", id).ok(t)
	if r := s.cli(t, "webhooks", "delete", id); r.err == nil || !strings.Contains(r.err.Error(), "NOT_FOUND") && !strings.Contains(r.err.Error(), "not found") {
		t.Fatalf("second delete: %v", r.err)
	}
}
