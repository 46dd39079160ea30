package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/ssogate/ssogate/events"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/webhook"
)

// Event follower cadence: with LISTEN/NOTIFY the poll is only a fallback;
// without it (SQLite, one process) it bounds how late a watcher hears of
// an event.
const (
	eventPollListening = time.Second
	eventPollAlone     = 50 * time.Millisecond
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
	client := s.webhookClient
	if client == nil {
		client = &http.Client{}
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
		Store: s.store, Hub: s.eventHub, Secrets: secrets, AllowHTTP: s.allowHTTP,
		Retried: s.webhooks.Wake, Now: s.now, Rand: s.rand,
	})
	return err
}
