// Package telemetry sets up OpenTelemetry tracing for ssogate from the
// standard OTEL_* environment variables, and puts trace ids on log lines.
//
// Tracing is off unless configured: Setup returns a no-op provider unless
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (or OTEL_TRACES_EXPORTER=otlp), and always when OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none. When on, spans go to an OTLP exporter over
// gRPC or HTTP/protobuf (OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL, default
// http/protobuf as the specification says), in batches; the exporter reads
// its endpoint, headers, TLS and timeout settings from the same variables,
// the SDK its sampler (OTEL_TRACES_SAMPLER) and batch limits (OTEL_BSP_*),
// and the resource takes OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// (service.name defaults to "ssogate"). Trace context travels in W3C
// traceparent/tracestate headers and gRPC metadata.
//
// The package keeps no global state: callers pass the provider and the
// propagator to the instrumentation they build.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is what instrumentation needs: a provider, a propagator, and a
// Shutdown that flushes buffered spans.
type Tracing struct {
	Provider   trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Enabled says whether spans are exported.
	Enabled bool
	// Exporter describes where spans go, for the start-up log line.
	Exporter string
	sdk      *sdktrace.TracerProvider
}

// Disabled is tracing turned off: no-op spans, trace context still passed
// on.
func Disabled() *Tracing {
	return &Tracing{Provider: noop.NewTracerProvider(), Propagator: propagator()}
}

func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup reads the OTEL_* variables through env (os.LookupEnv in the
// program) and builds the tracing they ask for. The exporter itself reads
// its connection settings from the process environment.
func Setup(ctx context.Context, env func(string) (string, bool), serviceVersion string) (*Tracing, error) {
	get := func(k string) string { v, _ := env(k); return strings.TrimSpace(v) }
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return Disabled(), nil
	}
	switch exp := get("OTEL_TRACES_EXPORTER"); exp {
	case "none":
		return Disabled(), nil
	case "", "otlp":
		if exp == "" && get("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return Disabled(), nil
		}
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: ssogate exports traces with otlp (or none)", exp)
	}
	protocol := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		client otlptrace.Client
	)
	switch protocol {
	case "grpc":
		client = otlptracegrpc.NewClient()
	case "", "http/protobuf":
		protocol = "http/protobuf"
		client = otlptracehttp.NewClient()
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", protocol)
	}
	exporter, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "ssogate"), attribute.String("service.version", serviceVersion)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	endpoint := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	return &Tracing{Provider: sdk, Propagator: propagator(), Enabled: true, Exporter: "otlp " + protocol + " " + endpoint, sdk: sdk}, nil
}

// ForceFlush exports the spans buffered so far.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.ForceFlush(ctx)
}

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// LogHandler adds trace_id and span_id to every record logged with a
// context that carries a recording span, so a log line leads to its trace.
func LogHandler(h slog.Handler) slog.Handler { return traceLogHandler{h} }

type traceLogHandler struct{ slog.Handler }

func (h traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceLogHandler{h.Handler.WithAttrs(as)}
}

func (h traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{h.Handler.WithGroup(name)}
}
