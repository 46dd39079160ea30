package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// webhooks runs `ssogate webhooks …` (API key with the events scope).
func (c *cli) webhooks(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "webhooks", []subcommand{
		{"create", "add an endpoint; prints its signing secret once", c.webhooksCreate},
		{"list", "list the endpoints and their state", c.webhooksList},
		{"delete", "remove an endpoint and its delivery log", c.webhooksDelete},
		{"deliveries", "show an endpoint's delivery log, newest first", c.webhooksDeliveries},
		{"retry", "send a delivery again now (reactivates a failing endpoint)", c.webhooksRetry},
		{"rotate-secret", "make a new signing secret; the old one keeps signing during --overlap", c.webhooksRotate},
	}, args)
}

func (c *cli) withEvents(cf *clientFlags, fn func(ssogatev1.EventServiceClient) error) error {
	return withClient(c, cf, ssogatev1.NewEventServiceClient, fn)
}

func (c *cli) webhooksCreate(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("webhooks create", "<url>", "Add an endpoint that receives events as Standard Webhooks. The signing secret\nis printed once: store it with the receiver.")
	types := fs.String("types", "", "comma-separated event types to send (default: every type)")
	pos, err := parse(fs, cf, args, "url")
	if err != nil {
		return err
	}
	req := &ssogatev1.CreateWebhookRequest{Url: pos[0]}
	if *types != "" {
		req.EventTypes = strings.Split(*types, ",")
	}
	return c.withEvents(cf, func(client ssogatev1.EventServiceClient) error {
		resp, err := call(ctx, cf, client.CreateWebhook, req)
		if err != nil {
			return err
		}
		if err := c.emit(cf, resp, func(w io.Writer) {
			printWebhooks(w, resp.Webhook)
			fmt.Fprintf(w, "\nSecret (shown once):\t%s\n", resp.Secret)
		}); err != nil {
			return err
		}
		c.hint(cf, "\nThe receiver verifies webhook-signature with this secret (any Standard Webhooks library).")
		return nil
	})
}

func (c *cli) webhooksList(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("webhooks list", "", "List the webhook endpoints.")
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	return c.withEvents(cf, func(client ssogatev1.EventServiceClient) error {
		resp, err := call(ctx, cf, client.ListWebhooks, &ssogatev1.ListWebhooksRequest{})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) { printWebhooks(w, resp.Webhooks...) })
	})
}

func (c *cli) webhooksDelete(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("webhooks delete", "<webhook-id>", "Remove an endpoint and its delivery log.")
	pos, err := parse(fs, cf, args, "webhook-id")
	if err != nil {
		return err
	}
	return c.withEvents(cf, func(client ssogatev1.EventServiceClient) error {
		resp, err := call(ctx, cf, client.DeleteWebhook, &ssogatev1.DeleteWebhookRequest{WebhookId: pos[0]})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) { fmt.Fprintf(w, "Deleted webhook %s\n", pos[0]) })
	})
}

func (c *cli) webhooksDeliveries(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("webhooks deliveries", "<webhook-id>", "Show an endpoint's delivery log, newest event first.")
	n := fs.Int("n", 50, "at most this many")
	pos, err := parse(fs, cf, args, "webhook-id")
	if err != nil {
		return err
	}
	return c.withEvents(cf, func(client ssogatev1.EventServiceClient) error {
		resp, err := call(ctx, cf, client.ListWebhookDeliveries, &ssogatev1.ListWebhookDeliveriesRequest{WebhookId: pos[0], PageSize: int32(*n)})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) { printDeliveries(w, resp.Deliveries...) })
	})
}

func (c *cli) webhooksRetry(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("webhooks retry", "<webhook-id> <delivery-id>", "Send a delivery again now, whatever its status; a failing endpoint becomes active.")
	pos, err := parse(fs, cf, args, "webhook-id", "delivery-id")
	if err != nil {
		return err
	}
	return c.withEvents(cf, func(client ssogatev1.EventServiceClient) error {
		resp, err := call(ctx, cf, client.RetryWebhookDelivery, &ssogatev1.RetryWebhookDeliveryRequest{WebhookId: pos[0], DeliveryId: pos[1]})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) { printDeliveries(w, resp.Delivery) })
	})
}

func (c *cli) webhooksRotate(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("webhooks rotate-secret", "<webhook-id>", "Make a new signing secret (printed once). Deliveries carry signatures by both\nsecrets until the overlap ends, so the receiver can switch at its pace.")
	overlap := fs.Duration("overlap", 24*time.Hour, "how long the old secret keeps signing (at most 168h)")
	pos, err := parse(fs, cf, args, "webhook-id")
	if err != nil {
		return err
	}
	return c.withEvents(cf, func(client ssogatev1.EventServiceClient) error {
		resp, err := call(ctx, cf, client.RotateWebhookSecret, &ssogatev1.RotateWebhookSecretRequest{
			WebhookId: pos[0], Overlap: durationpb.New(*overlap)})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) {
			printWebhooks(w, resp.Webhook)
			fmt.Fprintf(w, "\nNew secret (shown once):\t%s\n", resp.Secret)
		})
	})
}

func printWebhooks(w io.Writer, hooks ...*ssogatev1.Webhook) {
	fmt.Fprintln(w, "ID\tURL\tTYPES\tSTATE\tCREATED")
	for _, h := range hooks {
		types := strings.Join(h.EventTypes, ",")
		if types == "" {
			types = "*"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", h.Id, h.Url, types,
			strings.ToLower(strings.TrimPrefix(h.State.String(), "WEBHOOK_STATE_")), ts(h.CreateTime))
	}
}

func printDeliveries(w io.Writer, ds ...*ssogatev1.WebhookDelivery) {
	fmt.Fprintln(w, "DELIVERY\tSEQUENCE\tSTATUS\tATTEMPTS\tLAST CODE\tLATENCY\tLAST ATTEMPT\tNEXT ATTEMPT\tERROR")
	for _, d := range ds {
		latency := "-"
		if d.LastLatency != nil {
			latency = d.LastLatency.AsDuration().Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", d.Id, d.EventSequence,
			strings.ToLower(strings.TrimPrefix(d.Status.String(), "WEBHOOK_DELIVERY_STATUS_")), d.Attempts, d.LastStatusCode,
			latency, ts(d.LastAttemptTime), ts(d.NextAttemptTime), orDash(d.LastError))
	}
}
