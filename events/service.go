package events

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/webhook"
)

// Store is what the service needs of the store.
type Store interface {
	Log
	CreateWebhook(ctx context.Context, w store.Webhook) error
	GetWebhook(ctx context.Context, id string) (store.Webhook, error)
	ListWebhooks(ctx context.Context) ([]store.Webhook, error)
	UpdateWebhook(ctx context.Context, w store.Webhook) error
	DeleteWebhook(ctx context.Context, id string) error
	ListWebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]store.WebhookDelivery, error)
	RetryWebhookDelivery(ctx context.Context, id string, now time.Time) (store.WebhookDelivery, error)
}

// Config configures the service.
type Config struct {
	Store   Store
	Hub     *Hub
	Secrets *webhook.Secrets
	// AllowHTTP admits plain-http webhook URLs to the hosts it accepts
	// (loopback in `ssogate dev` and tests); otherwise only https.
	AllowHTTP func(host string) bool
	// Retried, if set, is called after a manual retry (wake the dispatcher).
	Retried func()
	Now     func() time.Time
	Rand    io.Reader
}

// Service implements ssogatev1.EventServiceServer.
type Service struct {
	ssogatev1.UnimplementedEventServiceServer
	cfg Config
}

// NewService checks cfg.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Hub == nil || cfg.Secrets == nil {
		return nil, errors.New("events: Store, Hub and Secrets are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Retried == nil {
		cfg.Retried = func() {}
	}
	return &Service{cfg: cfg}, nil
}

// WatchEvents implements ssogatev1.EventServiceServer.
func (s *Service) WatchEvents(req *ssogatev1.WatchEventsRequest, stream ssogatev1.EventService_WatchEventsServer) error {
	if req.After < 0 {
		return status.Error(codes.InvalidArgument, "after must be 0 or a sequence received before")
	}
	q := store.EventsQuery{After: req.After, Types: req.Types, ConnectionID: req.ConnectionId}
	err := s.cfg.Hub.Watch(stream.Context(), q, func(e store.AuditEvent) error {
		return stream.Send(&ssogatev1.WatchEventsResponse{Event: Proto(e)})
	})
	if err != nil && stream.Context().Err() == nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Unavailable, "read events: %v; reconnect with the last sequence received", err)
	}
	return nil
}

// Proto is the API form of a stored event.
func Proto(e store.AuditEvent) *ssogatev1.AuditEvent {
	ev := &ssogatev1.AuditEvent{Id: e.ID, Sequence: e.Sequence, Time: timestamppb.New(e.Time), Type: e.Type,
		ConnectionId: e.ConnectionID, TenantId: e.TenantID, Subject: e.Subject, Message: e.Message,
		CorrelationId: e.CorrelationID}
	if e.Reason != "" {
		ev.Reason = ssogatev1.RejectionReason(ssogatev1.RejectionReason_value["REJECTION_REASON_"+e.Reason])
	}
	if len(e.Detail) > 0 {
		st := &structpb.Struct{}
		if err := st.UnmarshalJSON(e.Detail); err == nil {
			ev.Detail = st
		}
	}
	return ev
}

// checkURL admits https URLs (and http where allowed), without user info
// or fragment.
func (s *Service) checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("url is required")
	case err != nil:
		return fmt.Errorf("url %q does not parse: %v", raw, err)
	case u.Scheme != "https" && !(u.Scheme == "http" && s.cfg.AllowHTTP != nil && s.cfg.AllowHTTP(u.Hostname())):
		return fmt.Errorf("url %q: want https://", raw)
	case u.Host == "":
		return fmt.Errorf("url %q has no host", raw)
	case u.User != nil || u.Fragment != "":
		return fmt.Errorf("url %q: no user info or fragment", raw)
	}
	return nil
}

func webhookProto(w store.Webhook) *ssogatev1.Webhook {
	out := &ssogatev1.Webhook{Id: w.ID, Url: w.URL, EventTypes: w.EventTypes, CreateTime: timestamppb.New(w.CreatedAt),
		State: ssogatev1.WebhookState_WEBHOOK_STATE_ACTIVE}
	if w.State == store.WebhookFailing {
		out.State = ssogatev1.WebhookState_WEBHOOK_STATE_FAILING
	}
	if len(w.PreviousSecretSealed) > 0 && !w.PreviousUntil.IsZero() {
		out.PreviousSecretExpireTime = timestamppb.New(w.PreviousUntil)
	}
	return out
}

func deliveryProto(d store.WebhookDelivery) *ssogatev1.WebhookDelivery {
	out := &ssogatev1.WebhookDelivery{Id: d.ID, WebhookId: d.WebhookID, EventId: d.EventID, EventSequence: d.EventSequence,
		Attempts: int32(d.Attempts), LastStatusCode: int32(d.LastStatusCode), LastError: d.LastError}
	switch d.Status {
	case store.DeliveryPending:
		out.Status = ssogatev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_PENDING
		out.NextAttemptTime = timestamppb.New(d.NextAttemptAt)
	case store.DeliverySucceeded:
		out.Status = ssogatev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_SUCCEEDED
	case store.DeliveryFailed:
		out.Status = ssogatev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_FAILED
	}
	if !d.LastAttemptAt.IsZero() {
		out.LastAttemptTime = timestamppb.New(d.LastAttemptAt)
		out.LastLatency = durationpb.New(d.LastLatency)
	}
	return out
}

func storeErr(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.AlreadyExists, "%s already exists", what)
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// CreateWebhook implements ssogatev1.EventServiceServer.
func (s *Service) CreateWebhook(ctx context.Context, req *ssogatev1.CreateWebhookRequest) (*ssogatev1.CreateWebhookResponse, error) {
	if err := s.checkURL(req.Url); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	for _, t := range req.EventTypes {
		if t == "" || strings.ContainsAny(t, ", ") {
			return nil, status.Errorf(codes.InvalidArgument, "event_types: %q is not an event type (e.g. login.succeeded)", t)
		}
	}
	var b [8]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return nil, status.Errorf(codes.Internal, "webhook id: %v", err)
	}
	id := "wh_" + hex.EncodeToString(b[:])
	secret, sealed, err := s.cfg.Secrets.New(id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	// It receives what commits from now on.
	last, err := s.cfg.Store.LastEventSequence(ctx)
	if err != nil {
		return nil, storeErr("event log", err)
	}
	w := store.Webhook{ID: id, URL: req.Url, EventTypes: req.EventTypes, SecretSealed: sealed, Cursor: last,
		CreatedAt: s.cfg.Now()}
	if err := s.cfg.Store.CreateWebhook(ctx, w); err != nil {
		return nil, storeErr("webhook", err)
	}
	w.State = store.WebhookActive
	return &ssogatev1.CreateWebhookResponse{Webhook: webhookProto(w), Secret: secret}, nil
}

// ListWebhooks implements ssogatev1.EventServiceServer.
func (s *Service) ListWebhooks(ctx context.Context, _ *ssogatev1.ListWebhooksRequest) (*ssogatev1.ListWebhooksResponse, error) {
	hooks, err := s.cfg.Store.ListWebhooks(ctx)
	if err != nil {
		return nil, storeErr("webhooks", err)
	}
	out := &ssogatev1.ListWebhooksResponse{}
	for _, w := range hooks {
		out.Webhooks = append(out.Webhooks, webhookProto(w))
	}
	return out, nil
}

// DeleteWebhook implements ssogatev1.EventServiceServer.
func (s *Service) DeleteWebhook(ctx context.Context, req *ssogatev1.DeleteWebhookRequest) (*ssogatev1.DeleteWebhookResponse, error) {
	if err := s.cfg.Store.DeleteWebhook(ctx, req.WebhookId); err != nil {
		return nil, storeErr(fmt.Sprintf("webhook %q", req.WebhookId), err)
	}
	return &ssogatev1.DeleteWebhookResponse{}, nil
}

// Rotation overlap bounds.
const (
	defaultOverlap = 24 * time.Hour
	maxOverlap     = 7 * 24 * time.Hour
)

// RotateWebhookSecret implements ssogatev1.EventServiceServer.
func (s *Service) RotateWebhookSecret(ctx context.Context, req *ssogatev1.RotateWebhookSecretRequest) (*ssogatev1.RotateWebhookSecretResponse, error) {
	overlap := defaultOverlap
	if req.Overlap != nil {
		overlap = req.Overlap.AsDuration()
	}
	if overlap < 0 || overlap > maxOverlap {
		return nil, status.Errorf(codes.InvalidArgument, "overlap %s: want between 0 and %s", overlap, maxOverlap)
	}
	w, err := s.cfg.Store.GetWebhook(ctx, req.WebhookId)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("webhook %q", req.WebhookId), err)
	}
	secret, sealed, err := s.cfg.Secrets.New(w.ID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	w.PreviousSecretSealed, w.PreviousUntil, w.SecretSealed = w.SecretSealed, s.cfg.Now().Add(overlap), sealed
	if err := s.cfg.Store.UpdateWebhook(ctx, w); err != nil {
		return nil, storeErr(fmt.Sprintf("webhook %q", req.WebhookId), err)
	}
	return &ssogatev1.RotateWebhookSecretResponse{Webhook: webhookProto(w), Secret: secret}, nil
}

// ListWebhookDeliveries implements ssogatev1.EventServiceServer.
func (s *Service) ListWebhookDeliveries(ctx context.Context, req *ssogatev1.ListWebhookDeliveriesRequest) (*ssogatev1.ListWebhookDeliveriesResponse, error) {
	if _, err := s.cfg.Store.GetWebhook(ctx, req.WebhookId); err != nil {
		return nil, storeErr(fmt.Sprintf("webhook %q", req.WebhookId), err)
	}
	ds, err := s.cfg.Store.ListWebhookDeliveries(ctx, req.WebhookId, cmp.Or(int(req.PageSize), store.DefaultPageSize))
	if err != nil {
		return nil, storeErr("deliveries", err)
	}
	out := &ssogatev1.ListWebhookDeliveriesResponse{}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryProto(d))
	}
	return out, nil
}

// RetryWebhookDelivery implements ssogatev1.EventServiceServer.
func (s *Service) RetryWebhookDelivery(ctx context.Context, req *ssogatev1.RetryWebhookDeliveryRequest) (*ssogatev1.RetryWebhookDeliveryResponse, error) {
	ds, err := s.cfg.Store.ListWebhookDeliveries(ctx, req.WebhookId, store.MaxPageSize)
	if err != nil {
		return nil, storeErr("deliveries", err)
	}
	found := false
	for _, d := range ds {
		found = found || d.ID == req.DeliveryId
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "webhook %q has no delivery %q among its latest %d", req.WebhookId, req.DeliveryId, store.MaxPageSize)
	}
	d, err := s.cfg.Store.RetryWebhookDelivery(ctx, req.DeliveryId, s.cfg.Now())
	if err != nil {
		return nil, storeErr(fmt.Sprintf("delivery %q", req.DeliveryId), err)
	}
	s.cfg.Retried()
	return &ssogatev1.RetryWebhookDeliveryResponse{Delivery: deliveryProto(d)}, nil
}
