package telemetry_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/store/sqlite"
	"github.com/conveyorhq/conveyor/telemetry"
)

// djangoPublish configures Django on the SQLite file in argv[1], starts a span with the
// OpenTelemetry SDK (in-memory exporter), calls conveyor.publish() inside
// transaction.atomic() and prints the span's ids and the event id.
const djangoPublish = `
import json, sys

import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    INSTALLED_APPS=["conveyor"],
    USE_TZ=True,
    CONVEYOR={"SOURCE": "django:shop"},
)
django.setup()

from django.db import transaction
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import conveyor

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

with trace.get_tracer("shop.views").start_as_current_span("POST /orders") as span:
    with transaction.atomic():
        event = conveyor.publish("order.paid", {"order_id": 42})
ctx = span.get_span_context()
finished = exporter.get_finished_spans()
print(json.dumps({
    "trace_id": format(ctx.trace_id, "032x"),
    "span_id": format(ctx.span_id, "016x"),
    "event_id": str(event.id),
    "exported": [format(s.context.span_id, "016x") for s in finished],
}))
`

// TestTraceFromDjangoToConsumer proves one trace runs from a Django span, through the
// relay's publish span, to the headers a consumer receives from the broker.
func TestTraceFromDjangoToConsumer(t *testing.T) {
	t.Parallel()
	python := testdb.Require(t, "CONVEYOR_PYTHON")
	dbPath := testdb.SQLitePath(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// (a) Django records the event inside a traced request.
	out, err := exec.CommandContext(ctx, python, "-c", djangoPublish, dbPath).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("django snippet failed (is opentelemetry-sdk installed in the venv?):\n%s", ee.Stderr)
	}
	require.NoError(t, err)
	var django struct {
		TraceID  string   `json:"trace_id"`
		SpanID   string   `json:"span_id"`
		EventID  string   `json:"event_id"`
		Exported []string `json:"exported"`
	}
	require.NoError(t, json.Unmarshal(out, &django), string(out))
	require.Equal(t, []string{django.SpanID}, django.Exported, "the Django span went to its in-memory exporter")

	// (b) The relay publishes it to JetStream with the OpenTelemetry tracer.
	srv, err := natsjs.StartEmbedded(ctx, natsjs.EmbeddedConfig{Port: -1, StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer srv.Shutdown()
	nc := natsjs.Config{URL: srv.ClientURL(), CreateStream: true}
	sk, err := natsjs.New(ctx, nc, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer sk.Close(context.Background())
	st, err := sqlite.Open(ctx, sqlite.Config{Path: dbPath})
	require.NoError(t, err)
	defer st.Close()

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	r, err := relay.New(relay.Config{ID: "e2e", Routes: []relay.Route{{Name: "all", EventType: "*", Sink: "bus", Destination: "events.{event_type}"}}},
		st, map[string]sink.Sink{"bus": sk},
		relay.Options{Logger: slog.New(slog.DiscardHandler), Tracer: telemetry.NewTracer(tp, map[string]string{"bus": "nats"}, nil)})
	require.NoError(t, err)
	n, err := r.Cycle(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	relaySpan := spans[0]
	require.Equal(t, "publish events.order.paid", relaySpan.Name)
	require.Equal(t, django.TraceID, relaySpan.SpanContext.TraceID().String(), "the relay span joins Django's trace")
	require.Equal(t, django.SpanID, relaySpan.Parent.SpanID().String(), "as a child of the Django span")
	require.Equal(t, django.EventID, attrs(relaySpan)["messaging.message.id"].AsString())

	// (c) The consumer reads the message and continues the trace from its headers.
	var got []natsjs.Received
	require.NoError(t, natsjs.Tail(ctx, natsjs.TailParams{Config: natsjs.Config{URL: srv.ClientURL()}, Count: 1},
		func(m natsjs.Received) error { got = append(got, m); return nil }))
	require.Len(t, got, 1)
	require.Equal(t, django.EventID, got[0].Attributes.ID)
	tp0 := got[0].Headers["traceparent"]
	require.Len(t, tp0, 1, "headers: %v", got[0].Headers)
	tid, parent, flags := traceparentParts(t, tp0[0])
	require.Equal(t, django.TraceID, tid, "consumer's trace id is Django's")
	require.Equal(t, relaySpan.SpanContext.SpanID().String(), parent, "consumer's parent is the relay span")
	// Sampled (bit 0); Python's SDK also sets the W3C level-2 random-trace-id bit (0x02).
	require.Contains(t, []string{"01", "03"}, flags)
}
