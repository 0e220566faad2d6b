package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/telemetry"
)

const (
	parentTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpanID  = "00f067aa0ba902b7"
	parentTP      = "00-" + parentTraceID + "-" + parentSpanID + "-01"
)

func newTestTracer(t *testing.T, sinkTypes map[string]string, secrets ...string) (*telemetry.Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return telemetry.NewTracer(tp, sinkTypes, secrets), exp
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		out[kv.Key] = kv.Value
	}
	return out
}

// traceparentParts splits a W3C traceparent into trace id, parent span id and flags.
func traceparentParts(t *testing.T, tp string) (traceID, spanID, flags string) {
	t.Helper()
	p := strings.Split(tp, "-")
	require.Len(t, p, 4, tp)
	require.Equal(t, "00", p[0])
	return p[1], p[2], p[3]
}

func TestPublishSpanContinuesTheCapturedTrace(t *testing.T) {
	t.Parallel()
	tracer, exp := newTestTracer(t, map[string]string{"bus": "nats"})
	ev := &conveyor.Event{ID: uuid.Must(uuid.NewV7()), Type: "order.paid", Source: "/shop", Subject: "order-42",
		Data: []byte(`{"order_id":42}`), Attempts: 2,
		Headers: map[string]string{"traceparent": parentTP, "tracestate": "vendor=abc", "correlation-id": "req-1"}}

	headers, end := tracer.StartPublish(ev, "orders", "bus", "events.order.paid")
	end(nil)

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	s := spans[0]
	require.Equal(t, "publish events.order.paid", s.Name)
	require.Equal(t, trace.SpanKindProducer, s.SpanKind)
	require.Equal(t, parentTraceID, s.SpanContext.TraceID().String())
	require.Equal(t, parentSpanID, s.Parent.SpanID().String())
	require.True(t, s.Parent.IsRemote())
	require.Equal(t, codes.Unset, s.Status.Code)

	a := attrs(s)
	require.Equal(t, "nats", a["messaging.system"].AsString())
	require.Equal(t, "send", a["messaging.operation.type"].AsString())
	require.Equal(t, "publish", a["messaging.operation.name"].AsString())
	require.Equal(t, "events.order.paid", a["messaging.destination.name"].AsString())
	require.Equal(t, ev.ID.String(), a["messaging.message.id"].AsString())
	require.Equal(t, int64(len(ev.Data)), a["messaging.message.body.size"].AsInt64())
	require.Equal(t, "order.paid", a["cloudevents.event_type"].AsString())
	require.Equal(t, "/shop", a["cloudevents.event_source"].AsString())
	require.Equal(t, "order-42", a["cloudevents.event_subject"].AsString())
	require.Equal(t, "orders", a["conveyor.route"].AsString())
	require.Equal(t, "bus", a["conveyor.sink"].AsString())
	require.Equal(t, int64(2), a["conveyor.attempt"].AsInt64())

	// The consumer sees the relay span as its parent, in the same trace.
	tid, sid, flags := traceparentParts(t, headers["traceparent"])
	require.Equal(t, parentTraceID, tid)
	require.Equal(t, s.SpanContext.SpanID().String(), sid)
	require.Equal(t, "01", flags)
	require.Equal(t, "vendor=abc", headers["tracestate"])
	require.Equal(t, "req-1", headers["correlation-id"])
	require.Equal(t, parentTP, ev.Headers["traceparent"], "the event's own headers are not modified")
}

func TestPublishSpanWithoutCapturedContextStartsATrace(t *testing.T) {
	t.Parallel()
	tracer, exp := newTestTracer(t, map[string]string{"q": "amqp"})
	ev := &conveyor.Event{ID: uuid.Must(uuid.NewV7()), Type: "t", Headers: map[string]string{"Traceparent": "garbage"}}
	headers, end := tracer.StartPublish(ev, "r", "q", "x.t")
	end(nil)
	s := exp.GetSpans()[0]
	require.False(t, s.Parent.IsValid(), "an invalid traceparent is ignored")
	require.Equal(t, "rabbitmq", attrs(s)["messaging.system"].AsString())
	_, hasOld := headers["Traceparent"]
	require.False(t, hasOld, "header names match without regard to case")
	tid, sid, _ := traceparentParts(t, headers["traceparent"])
	require.Equal(t, s.SpanContext.TraceID().String(), tid)
	require.Equal(t, s.SpanContext.SpanID().String(), sid)
}

func TestPublishSpanRecordsScrubbedFailures(t *testing.T) {
	t.Parallel()
	tracer, exp := newTestTracer(t, nil, "hunter2")
	ev := &conveyor.Event{ID: uuid.Must(uuid.NewV7()), Type: "t", Headers: map[string]string{"traceparent": parentTP}}
	_, end := tracer.StartPublish(ev, "r", "custom", "d")
	end(sink.Transient(errors.New("dial nats://app:hunter2@broker: connection refused")))
	s := exp.GetSpans()[0]
	require.Equal(t, codes.Error, s.Status.Code)
	require.Contains(t, s.Status.Description, "connection refused")
	require.NotContains(t, s.Status.Description, "hunter2")
	a := attrs(s)
	require.Equal(t, "transient", a["error.type"].AsString())
	require.Equal(t, "custom", a["messaging.system"].AsString(), "unknown sink: its name")
	require.Len(t, s.Events, 1)
	for _, kv := range s.Events[0].Attributes {
		require.NotContains(t, kv.Value.String(), "hunter2")
	}
}

func TestUnsampledParentStaysUnsampled(t *testing.T) {
	t.Parallel()
	tracer, exp := newTestTracer(t, nil)
	ev := &conveyor.Event{ID: uuid.Must(uuid.NewV7()), Headers: map[string]string{"traceparent": "00-" + parentTraceID + "-" + parentSpanID + "-00"}}
	headers, end := tracer.StartPublish(ev, "r", "s", "d")
	end(nil)
	require.Empty(t, exp.GetSpans(), "the default sampler follows Django's decision")
	tid, _, flags := traceparentParts(t, headers["traceparent"])
	require.Equal(t, parentTraceID, tid, "the trace still propagates")
	require.Equal(t, "00", flags)
}

func TestRelayHeadersCarryThePublishSpan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fs := &fakeSink{}
	b.route("all", "*", "main", fs, 3)
	tracer, exp := newTestTracer(t, map[string]string{"main": "nats"})
	ids := b.insert(&outbox.Event{Type: "order.paid", Headers: map[string]string{"traceparent": parentTP}},
		&outbox.Event{Type: "order.paid"})
	b.drain(b.relay(relay.Options{Tracer: tracer}))

	got := fs.delivered()
	require.Len(t, got, 2)
	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		spans[s.SpanContext.SpanID().String()] = s
	}
	require.Len(t, spans, 2)
	for _, m := range got {
		tid, sid, _ := traceparentParts(t, m.Event.Headers["traceparent"])
		s, ok := spans[sid]
		require.True(t, ok, "the message's parent is a relay span")
		require.Equal(t, s.SpanContext.TraceID().String(), tid)
		require.Equal(t, m.Event.ID.String(), attrs(s)["messaging.message.id"].AsString())
		if m.Event.ID == ids[0] {
			require.Equal(t, parentTraceID, tid, "continues Django's trace")
			require.Equal(t, parentSpanID, s.Parent.SpanID().String())
		} else {
			require.False(t, s.Parent.IsValid(), "no captured context: a new trace")
		}
	}
}

func TestTracingEnabled(t *testing.T) {
	t.Parallel()
	on, off := true, false
	env := func(kv ...string) telemetry.Getenv {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	require.False(t, telemetry.TracingEnabled(nil, env()), "off unless configured")
	require.True(t, telemetry.TracingEnabled(nil, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")))
	require.True(t, telemetry.TracingEnabled(nil, env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")))
	require.True(t, telemetry.TracingEnabled(&on, env()))
	require.False(t, telemetry.TracingEnabled(&off, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c")))
	require.False(t, telemetry.TracingEnabled(&on, env("OTEL_TRACES_EXPORTER", "none")))
	require.False(t, telemetry.TracingEnabled(&on, env("OTEL_SDK_DISABLED", "true")))

	require.False(t, telemetry.OTLPMetricsEnabled(nil, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c")), "/metrics is enough by default")
	require.True(t, telemetry.OTLPMetricsEnabled(nil, env("OTEL_METRICS_EXPORTER", "otlp")))
	require.True(t, telemetry.OTLPMetricsEnabled(&on, env()))
	require.False(t, telemetry.OTLPMetricsEnabled(&on, env("OTEL_METRICS_EXPORTER", "none")))

	_, err := telemetry.NewTracerProvider(context.Background(), telemetry.TracingConfig{Getenv: env("OTEL_TRACES_EXPORTER", "zipkin")})
	require.ErrorContains(t, err, "use otlp or none")
	_, err = telemetry.NewTracerProvider(context.Background(), telemetry.TracingConfig{Getenv: env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")})
	require.ErrorContains(t, err, "use http/protobuf or grpc")
}

// otlpReceiver is a minimal OTLP/HTTP collector.
type otlpReceiver struct {
	mu      sync.Mutex
	traces  []*collectortrace.ExportTraceServiceRequest
	metrics []*collectormetrics.ExportMetricsServiceRequest
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err == nil {
			o.traces = append(o.traces, req)
		}
	case "/v1/metrics":
		req := &collectormetrics.ExportMetricsServiceRequest{}
		if err := proto.Unmarshal(body, req); err == nil {
			o.metrics = append(o.metrics, req)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// Not parallel: the exporters read the process environment, as they do in production.
func TestOTLPExportFromEnvironment(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "relay-eu")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
	ctx := context.Background()
	require.True(t, telemetry.TracingEnabled(nil, nil))

	tp, err := telemetry.NewTracerProvider(ctx, telemetry.TracingConfig{ServiceVersion: "v9"})
	require.NoError(t, err)
	tracer := telemetry.NewTracer(tp, map[string]string{"main": "kafka"}, nil)
	_, end := tracer.StartPublish(&conveyor.Event{ID: uuid.Must(uuid.NewV7()), Type: "t",
		Headers: map[string]string{"traceparent": parentTP}}, "r", "main", "topic-a")
	end(nil)

	m := telemetry.NewMetrics(telemetry.MetricsConfig{Routes: map[string]string{"r": "main"}, Sinks: []string{"main"}})
	m.OnPublished("r", "main", 5*time.Millisecond)
	mp, err := telemetry.NewOTLPMetrics(ctx, telemetry.OTLPMetricsConfig{Gatherer: m.Registry()})
	require.NoError(t, err)

	// Shutdown flushes: nothing was exported before it (batcher, hour-long interval).
	require.NoError(t, tp.Shutdown(ctx))
	require.NoError(t, mp.Shutdown(ctx))

	recv.mu.Lock()
	defer recv.mu.Unlock()
	require.Len(t, recv.traces, 1)
	rs := recv.traces[0].GetResourceSpans()[0]
	resAttrs := map[string]string{}
	for _, kv := range rs.GetResource().GetAttributes() {
		resAttrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	require.Equal(t, "relay-eu", resAttrs["service.name"], "OTEL_SERVICE_NAME wins")
	require.Equal(t, "v9", resAttrs["service.version"])
	span := rs.GetScopeSpans()[0].GetSpans()[0]
	require.Equal(t, "publish topic-a", span.GetName())
	require.Equal(t, parentSpanID, trace.SpanID(span.GetParentSpanId()).String())

	require.NotEmpty(t, recv.metrics)
	names := map[string]bool{}
	for _, req := range recv.metrics {
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, metric := range sm.GetMetrics() {
					names[metric.GetName()] = true
				}
			}
		}
	}
	require.True(t, names["conveyor_events_published_total"], "%v", names)
	require.True(t, names["conveyor_commit_to_ack_seconds"], "%v", names)
}
