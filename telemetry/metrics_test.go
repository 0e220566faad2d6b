package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/telemetry"
)

// failingBundle is a relay with one healthy sink that fails some messages by event type,
// and one sink whose broker is down.
func failingBundle(t *testing.T) *bundle {
	t.Helper()
	b := setup(t)
	main := &fakeSink{fail: func(m *sink.Message) error {
		switch m.Event.Type {
		case "order.flaky":
			return errors.New("nack")
		case "order.rejected":
			return sink.Permanent(errors.New("message too large"))
		}
		return nil
	}}
	down := &fakeSink{fail: func(*sink.Message) error { return sink.Transient(errors.New("connection refused")) }}
	b.route("orders", "order.*", "main", main, 2)
	b.route("outage", "down.*", "down", down, 2)
	b.insert(
		&outbox.Event{Type: "order.paid"}, &outbox.Event{Type: "order.paid"}, &outbox.Event{Type: "order.paid"},
		&outbox.Event{Type: "order.flaky"},
		&outbox.Event{Type: "order.rejected"},
		&outbox.Event{Type: "down.x"}, &outbox.Event{Type: "down.x"},
		&outbox.Event{Type: "nobody.listens"},
	)
	return b
}

func TestMetricsExistAtZeroBeforeAnyEvent(t *testing.T) {
	t.Parallel()
	m := telemetry.NewMetrics(telemetry.MetricsConfig{Version: "v1.2.3",
		Routes: map[string]string{"orders": "main"}, Sinks: []string{"main"}})
	reg := m.Registry()
	require.Zero(t, mustValue(t, reg, "conveyor_events_published_total", "route", "orders", "sink", "main"))
	for _, kind := range []string{"transient", "message", "permanent"} {
		require.Zero(t, mustValue(t, reg, "conveyor_publish_failures_total", "route", "orders", "sink", "main", "kind", kind))
	}
	require.Zero(t, mustValue(t, reg, "conveyor_events_dead_total", "route", "orders"))
	require.Zero(t, mustValue(t, reg, "conveyor_events_dead_total", "route", telemetry.Unrouted))
	require.Zero(t, mustValue(t, reg, "conveyor_retries_scheduled_total", "route", "orders"))
	require.Zero(t, mustValue(t, reg, "conveyor_leases_lost_total"))
	require.Zero(t, mustValue(t, reg, "conveyor_circuit_state", "sink", "main"))
	require.Zero(t, mustValue(t, reg, "conveyor_circuit_open_seconds", "sink", "main"))
	require.Zero(t, mustValue(t, reg, "conveyor_relay_up"))
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_build_info", "version", "v1.2.3", "goversion", runtime.Version()))
	require.Zero(t, mustValue(t, reg, "conveyor_backlog_poll_errors_total"))
	_, ok := value(t, reg, "conveyor_pending_events")
	require.False(t, ok, "no backlog figure before the first query: a false zero would hide a backlog")
	_, ok = value(t, reg, "go_goroutines")
	require.True(t, ok, "Go runtime collector")
	_, ok = value(t, reg, "process_open_fds")
	require.True(t, ok, "process collector")

	m.SetRelayUp(true)
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_relay_up"))
}

func TestMetricsAfterARealRelayRun(t *testing.T) {
	t.Parallel()
	b := failingBundle(t)
	m := telemetry.NewMetrics(telemetry.MetricsConfig{Routes: b.routes(), Sinks: b.sinkNames()})
	reg := m.Registry()
	poller := &telemetry.BacklogPoller{Source: b.st, Metrics: m}
	ctx := context.Background()

	require.NoError(t, poller.Poll(ctx))
	require.Equal(t, 8.0, mustValue(t, reg, "conveyor_pending_events"))
	require.Equal(t, 3.0, mustValue(t, reg, "conveyor_backlog_events", "event_type", "order.paid"))
	require.Equal(t, 2.0, mustValue(t, reg, "conveyor_backlog_events", "event_type", "down.x"))
	require.GreaterOrEqual(t, mustValue(t, reg, "conveyor_oldest_pending_age_seconds", "event_type", "order.paid"), 0.0)
	require.Zero(t, mustValue(t, reg, "conveyor_backlog_truncated"))

	r := b.relay(relay.Options{Hooks: m})
	b.drain(r)

	require.Equal(t, 3.0, mustValue(t, reg, "conveyor_events_published_total", "route", "orders", "sink", "main"))
	require.Equal(t, 3.0, mustValue(t, reg, "conveyor_commit_to_ack_seconds", "route", "orders", "sink", "main"), "one latency per ack")
	require.Zero(t, mustValue(t, reg, "conveyor_events_published_total", "route", "outage", "sink", "down"))
	// order.flaky: attempt 1 fails and is retried, attempt 2 fails and dies (max_attempts 2).
	require.Equal(t, 2.0, mustValue(t, reg, "conveyor_publish_failures_total", "route", "orders", "sink", "main", "kind", "message"))
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_retries_scheduled_total", "route", "orders"))
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_publish_failures_total", "route", "orders", "sink", "main", "kind", "permanent"))
	require.Equal(t, 2.0, mustValue(t, reg, "conveyor_events_dead_total", "route", "orders"), "flaky after its attempts, rejected at once")
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_events_dead_total", "route", telemetry.Unrouted))
	// The outage uses no attempts, retries nothing and kills nothing; it opens the circuit.
	require.Equal(t, 2.0, mustValue(t, reg, "conveyor_publish_failures_total", "route", "outage", "sink", "down", "kind", "transient"))
	require.Zero(t, mustValue(t, reg, "conveyor_retries_scheduled_total", "route", "outage"))
	require.Zero(t, mustValue(t, reg, "conveyor_events_dead_total", "route", "outage"))
	require.Equal(t, float64(relay.BreakerOpen), mustValue(t, reg, "conveyor_circuit_state", "sink", "down"), "from the OnBreaker hook")
	require.Equal(t, float64(relay.BreakerClosed), mustValue(t, reg, "conveyor_circuit_state", "sink", "main"))

	batches := mustValue(t, reg, "conveyor_batch_size")
	require.Positive(t, batches)
	for _, h := range []string{"conveyor_claim_duration_seconds", "conveyor_publish_duration_seconds", "conveyor_settle_duration_seconds"} {
		require.Equal(t, batches, mustValue(t, reg, h), h)
	}
	require.Zero(t, mustValue(t, reg, "conveyor_leases_lost_total"))

	// Read from the breakers themselves: the same state, and how long it has been open.
	m.WatchBreakers(telemetry.RelayBreakers(r, b.sinkNames()))
	require.Equal(t, float64(relay.BreakerOpen), mustValue(t, reg, "conveyor_circuit_state", "sink", "down"))
	require.Equal(t, float64(relay.BreakerClosed), mustValue(t, reg, "conveyor_circuit_state", "sink", "main"))
	require.Positive(t, mustValue(t, reg, "conveyor_circuit_open_seconds", "sink", "down"))
	require.Zero(t, mustValue(t, reg, "conveyor_circuit_open_seconds", "sink", "main"))

	// Only the events behind the open circuit are still pending.
	require.NoError(t, poller.Poll(ctx))
	require.Equal(t, 2.0, mustValue(t, reg, "conveyor_pending_events"))
	require.Equal(t, 2.0, mustValue(t, reg, "conveyor_backlog_events", "event_type", "down.x"))
	_, ok := value(t, reg, "conveyor_backlog_events", "event_type", "order.paid")
	require.False(t, ok, "a drained type leaves the backlog")
	require.Equal(t, mustValue(t, reg, "conveyor_oldest_pending_age_seconds", "event_type", "down.x"),
		mustValue(t, reg, "conveyor_pending_oldest_age_seconds"))
}

func TestMetricsHooks(t *testing.T) {
	t.Parallel()
	m := telemetry.NewMetrics(telemetry.MetricsConfig{})
	reg := m.Registry()
	m.OnLeaseLost(3)
	require.Equal(t, 3.0, mustValue(t, reg, "conveyor_leases_lost_total"))
	m.OnDead("")
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_events_dead_total", "route", telemetry.Unrouted))
	m.OnPublished("r", "s", -time.Second) // created_at ahead of the relay's clock
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_commit_to_ack_seconds", "route", "r", "sink", "s"))
	m.OnBreaker("s", relay.BreakerOpen)
	require.Equal(t, 1.0, mustValue(t, reg, "conveyor_circuit_state", "sink", "s"))
	require.GreaterOrEqual(t, mustValue(t, reg, "conveyor_circuit_open_seconds", "sink", "s"), 0.0)
	m.OnBreaker("s", relay.BreakerClosed)
	require.Zero(t, mustValue(t, reg, "conveyor_circuit_state", "sink", "s"))
	require.Zero(t, mustValue(t, reg, "conveyor_circuit_open_seconds", "sink", "s"))
}

type backlogFunc func(ctx context.Context) (*store.Backlog, error)

func (f backlogFunc) Backlog(ctx context.Context) (*store.Backlog, error) { return f(ctx) }

func TestBacklogTypesAreBounded(t *testing.T) {
	t.Parallel()
	bl := &store.Backlog{ByType: map[string]int64{}, OldestByType: map[string]time.Duration{}}
	n := telemetry.MaxBacklogTypes + 5
	for i := range n {
		typ := fmt.Sprintf("t%03d", i)
		bl.ByType[typ] = int64(i + 1) // t000 is the smallest
		bl.OldestByType[typ] = time.Duration(i) * time.Second
	}
	bl.ByType["_other"], bl.OldestByType["_other"] = 1, time.Hour // a real type with the reserved name
	m := telemetry.NewMetrics(telemetry.MetricsConfig{})
	p := &telemetry.BacklogPoller{Source: backlogFunc(func(context.Context) (*store.Backlog, error) { return bl, nil }), Metrics: m}
	require.NoError(t, p.Poll(context.Background()))

	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	series := 0
	for _, f := range fams {
		if f.GetName() == "conveyor_backlog_events" {
			series = len(f.GetMetric())
		}
	}
	require.Equal(t, telemetry.MaxBacklogTypes+1, series)
	// The five smallest (1..5 events) and the reserved name (1) are summed.
	require.Equal(t, 16.0, mustValue(t, m.Registry(), "conveyor_backlog_events", "event_type", "_other"))
	require.Equal(t, 3600.0, mustValue(t, m.Registry(), "conveyor_oldest_pending_age_seconds", "event_type", "_other"))
	require.Equal(t, float64(n*(n+1)/2+1), mustValue(t, m.Registry(), "conveyor_pending_events"))
}

func TestBacklogPollerKeepsLastValuesOnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insert(&outbox.Event{Type: "a"})
	m := telemetry.NewMetrics(telemetry.MetricsConfig{})
	p := &telemetry.BacklogPoller{Source: b.st, Metrics: m, Interval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	p.Start(context.Background())
	p.Start(context.Background()) // a second Start does nothing
	require.Eventually(t, func() bool {
		_, ok := value(t, m.Registry(), "conveyor_pending_events")
		return ok
	}, 5*time.Second, 10*time.Millisecond)
	p.Stop()
	p.Stop()

	errorsBefore := mustValue(t, m.Registry(), "conveyor_backlog_poll_errors_total")
	require.NoError(t, b.st.Close()) // the database goes away
	require.Error(t, p.Poll(context.Background()))
	require.Equal(t, errorsBefore+1, mustValue(t, m.Registry(), "conveyor_backlog_poll_errors_total"))
	require.Equal(t, 1.0, mustValue(t, m.Registry(), "conveyor_pending_events"), "last good value kept")
}
