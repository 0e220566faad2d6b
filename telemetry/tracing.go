package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
)

// ScopeName is the instrumentation scope of the relay's spans.
const ScopeName = "github.com/conveyorhq/conveyor/relay"

// messagingSystems maps sink types to the OpenTelemetry messaging.system values; a type
// not listed is used as is.
var messagingSystems = map[string]string{
	"nats":     "nats",
	"kafka":    "kafka",
	"amqp":     "rabbitmq",
	"rabbitmq": "rabbitmq",
	"redis":    "redis",
	"mqtt":     "mqtt",
	"webhook":  "webhook",
	"http":     "webhook",
}

// Tracer implements relay.Tracer with OpenTelemetry: one PRODUCER span per published
// event, a child of the trace context captured in the event's headers at publish().
// It is safe for concurrent use.
type Tracer struct {
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	systems map[string]string
	secrets []string
}

var _ relay.Tracer = (*Tracer)(nil)

// NewTracer returns a Tracer on tp. sinkTypes maps each sink name to its type ("nats",
// "kafka", ...) for messaging.system. Errors recorded on spans are scrubbed of secrets.
func NewTracer(tp trace.TracerProvider, sinkTypes map[string]string, secrets []string) *Tracer {
	systems := make(map[string]string, len(sinkTypes))
	for name, typ := range sinkTypes {
		systems[name] = cmp.Or(messagingSystems[typ], typ)
	}
	return &Tracer{
		tracer:  tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:    propagation.TraceContext{},
		systems: systems,
		secrets: nonEmpty(secrets),
	}
}

// StartPublish implements relay.Tracer. The returned headers are a copy of ev.Headers
// whose traceparent and tracestate carry the new span, so a consumer continues the trace
// as a child of the relay's span.
func (t *Tracer) StartPublish(ev *conveyor.Event, route, sinkName, destination string) (map[string]string, func(error)) {
	parent := t.prop.Extract(context.Background(), headerCarrier(ev.Headers))
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(cmp.Or(t.systems[sinkName], sinkName)),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingDestinationName(destination),
		semconv.MessagingMessageID(ev.ID.String()),
		semconv.MessagingMessageBodySize(len(ev.Data)),
		semconv.CloudEventsEventID(ev.ID.String()),
		semconv.CloudEventsEventType(ev.Type),
		semconv.CloudEventsEventSource(ev.Source),
		attribute.String("conveyor.route", route),
		attribute.String("conveyor.sink", sinkName),
		attribute.Int("conveyor.attempt", ev.Attempts),
	}
	if ev.Subject != "" {
		attrs = append(attrs, semconv.CloudEventsEventSubject(ev.Subject))
	}
	ctx, span := t.tracer.Start(parent, "publish "+destination,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))

	headers := make(headerCarrier, len(ev.Headers)+2)
	maps.Copy(headers, ev.Headers)
	headers.del("traceparent")
	headers.del("tracestate")
	t.prop.Inject(ctx, headers)

	return headers, func(err error) {
		if err != nil {
			msg := Scrub(err.Error(), t.secrets)
			kind := sink.KindOf(err).String()
			span.SetAttributes(semconv.ErrorTypeKey.String(kind))
			span.AddEvent("exception", trace.WithAttributes(
				semconv.ExceptionTypeKey.String(fmt.Sprintf("%T", err)),
				semconv.ExceptionMessageKey.String(msg)))
			span.SetStatus(codes.Error, msg)
		}
		span.End()
	}
}

// headerCarrier adapts event headers to the propagator, matching names without regard
// to case (the captured names are lower case, user headers may not be).
type headerCarrier map[string]string

func (c headerCarrier) Get(key string) string {
	if v, ok := c[key]; ok {
		return v
	}
	for k, v := range c {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = value }

func (c headerCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

func (c headerCarrier) del(key string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
}

// Getenv reads an environment variable; tests replace os.Getenv with their own.
type Getenv func(string) string

// TracingEnabled decides whether to export traces. setting is telemetry.tracing.enabled
// (nil when unset). OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none always win;
// otherwise an explicit setting wins; otherwise tracing is on when an OTLP endpoint is
// set in OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
func TracingEnabled(setting *bool, getenv Getenv) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	if envTrue(getenv("OTEL_SDK_DISABLED")) || strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	if setting != nil {
		return *setting
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func envTrue(v string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err == nil && b
}

// TracingConfig configures NewTracerProvider.
type TracingConfig struct {
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// Exporter replaces the OTLP exporter (tests use tracetest.NewInMemoryExporter).
	Exporter sdktrace.SpanExporter
	// Getenv defaults to os.Getenv.
	Getenv Getenv
}

// NewTracerProvider builds a tracer provider that batches spans to an OTLP exporter
// configured by the standard environment variables: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT,
// _PROTOCOL (http/protobuf, the default, or grpc), _HEADERS, _TIMEOUT, _COMPRESSION,
// _CERTIFICATE; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; OTEL_TRACES_SAMPLER(_ARG)
// (default parentbased_always_on, so Django's sampling decision is kept); OTEL_BSP_*.
// Its Shutdown flushes the spans still buffered.
func NewTracerProvider(ctx context.Context, cfg TracingConfig) (*sdktrace.TracerProvider, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q is not supported; use otlp or none", e)
	}
	exp := cfg.Exporter
	if exp == nil {
		var err error
		switch p := otlpProtocol(getenv, "TRACES"); p {
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		case "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
		default:
			return nil, fmt.Errorf("telemetry: OTLP protocol %q is not supported for traces; use http/protobuf or grpc", p)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
	}
	res, err := Resource(ctx, cfg.ServiceVersion)
	if err != nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// otlpProtocol reads OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL;
// the default is http/protobuf, as the specification says.
func otlpProtocol(getenv Getenv, signal string) string {
	return strings.TrimSpace(cmp.Or(getenv("OTEL_EXPORTER_OTLP_"+signal+"_PROTOCOL"),
		getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf"))
}

// Resource describes this process to OpenTelemetry backends: service.name "conveyor"
// unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise, service.version,
// the SDK, the host and the process.
func Resource(ctx context.Context, version string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("conveyor"), semconv.ServiceVersion(cmp.Or(version, "dev"))),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(), // last, so OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}
