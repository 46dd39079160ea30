package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/ssogate/ssogate/events"
	"github.com/ssogate/ssogate/netguard"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/webhook"
)

// Event follower cadence: with LISTEN/NOTIFY the poll is only a fallback;
// without it (SQLite, one process) it bounds how late a watcher hears of
// an event.
const (
	eventPollListening = time.Second
	eventPollAlone     = 50 * time.Millisecond
	webhookTimeout     = 10 * time.Second
)

// openEvents builds the event hub, the EventService and the webhook
// dispatcher; kek seals the webhook secrets.
func (s *Server) openEvents(kek []byte) error {
	poll := eventPollAlone
	if _, ok := s.store.(events.Listener); ok {
		poll = eventPollListening
	}
	s.eventHub = events.NewHub(s.store, poll, s.log)
	secrets, err := webhook.NewSecrets(kek, s.rand)
	if err != nil {
		return err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("webhook lease owner: %w", err)
	}
	host, _ := os.Hostname()
	// Deliveries go through the guarded dialer: no private addresses and
	// https only, unless private fetches are allowed (development).
	client := s.webhookClient
	if client == nil {
		client = netguard.NewClient(netguard.Options{AllowPrivate: s.cfg.AllowPrivateFetch, Timeout: webhookTimeout, TLSConfig: s.fetchTLS})
	}
	cfg := webhook.Config{
		Store: s.store, Secrets: secrets, Client: client, Now: s.now, Rand: s.rand, Log: s.log,
		Owner:     fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		Delivered: func(d store.WebhookDelivery) { s.metrics.webhookAttempts.WithLabelValues(d.Status).Inc() },
	}
	for _, fn := range s.webhookTuning {
		fn(&cfg)
	}
	if s.webhooks, err = webhook.New(cfg); err != nil {
		return err
	}
	s.eventHub.OnEvents(s.webhooks.Wake)
	s.eventService, err = events.NewService(events.Config{
		Store: s.store, Hub: s.eventHub, Secrets: secrets,
		AllowHTTP: func(string) bool { return s.cfg.AllowPrivateFetch },
		Retried:   s.webhooks.Kick, Now: s.now, Rand: s.rand,
	})
	return err
}
