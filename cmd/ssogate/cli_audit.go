package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// tailOverlap is how far back each -f poll looks again, so that an event
// stored late (another replica, a slow transaction) with a time before the
// newest one printed is still shown, once.
const tailOverlap = 10 * time.Second

// audit runs `ssogate audit …`.
func (c *cli) audit(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "audit", []subcommand{
		{"tail", "show the latest audit events; -f follows new ones", c.auditTail},
	}, args)
}

func (c *cli) auditTail(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("audit tail", "", "Show the latest audit events, oldest first; with -f keep printing new ones until\ninterrupted (-o json: one event per line).")
	conn := fs.String("connection", "", "only events of this connection")
	typ := fs.String("type", "", "only events of this type, e.g. login.failed, connection.created")
	ref := fs.String("reference", "", "only events with this reference (the correlation id on an end user's error page)")
	since := fs.String("since", "", "only events since this long ago (30m, 1h, 7d) or this RFC 3339 time")
	n := fs.Int("n", 20, "show at most the latest n events; 0: all (the default with --since)")
	var follow bool
	fs.BoolVar(&follow, "f", false, "follow: poll for new events until interrupted")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	interval := fs.Duration("interval", 2*time.Second, "with -f, time between polls")
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	limit := *n
	if *since != "" && !flagGiven(fs, "n") {
		limit = 0
	}
	if limit < 0 || *interval <= 0 {
		return errors.New("-n must be 0 or more and --interval positive")
	}
	start, err := parseSince(*since, c.now())
	if err != nil {
		return err
	}
	return withClient(c, cf, ssogatev1.NewAuditServiceClient, func(client ssogatev1.AuditServiceClient) error {
		t := &tailer{c: c, cf: cf, client: client, seen: map[string]time.Time{},
			filter: &ssogatev1.ListAuditEventsRequest{ConnectionId: *conn, Type: *typ, CorrelationId: *ref}}
		events, err := t.latest(ctx, start, limit)
		if err != nil {
			return err
		}
		if !follow {
			resp := &ssogatev1.ListAuditEventsResponse{Events: events}
			return c.emit(cf, resp, func(w io.Writer) { printEvents(w, true, events) })
		}
		return t.follow(ctx, events, start, *interval)
	})
}

// flagGiven reports whether the command line set the flag.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// parseSince reads "1h", "30m", "7d" (before now) or an RFC 3339 time; ""
// is the zero time (no bound).
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok && err != nil {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	}
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: want a duration such as 30m, 1h or 7d, or an RFC 3339 time", v)
	}
	return now.Add(-d), nil
}

// tailer pages through the audit log and remembers what it printed.
type tailer struct {
	c      *cli
	cf     *clientFlags
	client ssogatev1.AuditServiceClient
	filter *ssogatev1.ListAuditEventsRequest
	seen   map[string]time.Time // IDs printed, within tailOverlap of last
	last   time.Time            // time of the newest event printed
}

// fetch returns the events at or after start, newest first, at most limit
// (0: all).
func (t *tailer) fetch(ctx context.Context, start time.Time, limit int) ([]*ssogatev1.AuditEvent, error) {
	req := &ssogatev1.ListAuditEventsRequest{ConnectionId: t.filter.ConnectionId, Type: t.filter.Type,
		CorrelationId: t.filter.CorrelationId, PageSize: 500}
	if !start.IsZero() {
		req.StartTime = timestamppb.New(start)
	}
	if limit > 0 && limit < 500 {
		req.PageSize = int32(limit)
	}
	var out []*ssogatev1.AuditEvent
	for {
		page, err := call(ctx, t.cf, t.client.ListAuditEvents, req)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Events...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		req.PageToken = page.NextPageToken
	}
}

// latest returns the newest limit events since start, oldest first, and
// remembers them as printed.
func (t *tailer) latest(ctx context.Context, start time.Time, limit int) ([]*ssogatev1.AuditEvent, error) {
	events, err := t.fetch(ctx, start, limit)
	if err != nil {
		return nil, err
	}
	slices.Reverse(events)
	t.remember(events)
	return events, nil
}

// remember marks events printed and forgets those too old to come again.
func (t *tailer) remember(events []*ssogatev1.AuditEvent) {
	for _, e := range events {
		at := e.Time.AsTime()
		t.seen[e.Id] = at
		if at.After(t.last) {
			t.last = at
		}
	}
	for id, at := range t.seen {
		if at.Before(t.last.Add(-tailOverlap)) {
			delete(t.seen, id)
		}
	}
}

// poll returns the events not printed yet, oldest first.
func (t *tailer) poll(ctx context.Context, start time.Time) ([]*ssogatev1.AuditEvent, error) {
	if !t.last.IsZero() {
		start = t.last.Add(-tailOverlap)
	}
	events, err := t.fetch(ctx, start, 0)
	if err != nil {
		return nil, err
	}
	events = slices.DeleteFunc(events, func(e *ssogatev1.AuditEvent) bool { _, ok := t.seen[e.Id]; return ok })
	slices.Reverse(events)
	t.remember(events)
	return events, nil
}

// prime marks as printed the events of the overlap window that -n left
// out: they are old, not new.
func (t *tailer) prime(ctx context.Context) error {
	if t.last.IsZero() {
		return nil
	}
	events, err := t.fetch(ctx, t.last.Add(-tailOverlap), 0)
	if err != nil {
		return err
	}
	for _, e := range events {
		if at := e.Time.AsTime(); !at.After(t.last) {
			t.seen[e.Id] = at
		}
	}
	return nil
}

// follow prints first, then new events every interval until ctx ends.
// A server that is briefly unreachable is retried; other errors stop it.
func (t *tailer) follow(ctx context.Context, first []*ssogatev1.AuditEvent, start time.Time, interval time.Duration) error {
	if err := t.prime(ctx); err != nil {
		return err
	}
	header := true
	if err := t.printLines(first, &header); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		events, err := t.poll(ctx, start)
		var ce *cliError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ce) && (ce.code == codes.Unavailable || ce.code == codes.DeadlineExceeded):
			fmt.Fprintf(t.c.stderr, "audit tail: %v; retrying\n", err)
			continue
		case err != nil:
			return err
		}
		if err := t.printLines(events, &header); err != nil {
			return err
		}
	}
}

// printLines writes events as table rows, or one JSON object per line.
func (t *tailer) printLines(events []*ssogatev1.AuditEvent, header *bool) error {
	if t.cf.output == "json" {
		for _, e := range events {
			if err := t.c.printJSON(e, false); err != nil {
				return err
			}
		}
		return nil
	}
	if len(events) == 0 && !*header {
		return nil
	}
	// Batches are aligned apart; a generous minimum width keeps the
	// columns of successive batches mostly in line.
	tw := tabwriter.NewWriter(t.c.stdout, 20, 0, 2, ' ', 0)
	printEvents(tw, *header, events)
	*header = false
	return tw.Flush()
}

func printEvents(w io.Writer, header bool, events []*ssogatev1.AuditEvent) {
	if header {
		fmt.Fprintln(w, "TIME\tTYPE\tCONNECTION\tSUBJECT\tREASON\tMESSAGE")
	}
	for _, e := range events {
		reason := ""
		if e.Reason != ssogatev1.RejectionReason_REJECTION_REASON_UNSPECIFIED {
			reason = strings.TrimPrefix(e.Reason.String(), "REJECTION_REASON_")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ts(e.Time), e.Type, orDash(e.ConnectionId), orDash(e.Subject),
			orDash(reason), orDash(eventText(e)))
	}
}

// eventText is the message followed by the detail as sorted key=value
// pairs.
func eventText(e *ssogatev1.AuditEvent) string {
	parts := []string{}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	detail := e.GetDetail().AsMap()
	keys := make([]string, 0, len(detail))
	for k := range detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, detail[k]))
	}
	if e.CorrelationId != "" {
		parts = append(parts, "correlation_id="+e.CorrelationId)
	}
	return strings.Join(parts, " ")
}
