package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/telemetry"
)

// relayTelemetry is the relay's metrics, health server and tracing. It starts before the
// relay is built, because relay.New takes the hooks and the tracer, and is attached to
// the relay afterwards so metrics and /readyz can read the circuit breakers.
type relayTelemetry struct {
	// Hooks go into relay.Options.Hooks.
	Hooks relay.Hooks
	// Tracer goes into relay.Options.Tracer; nil when tracing is off.
	Tracer relay.Tracer

	sinks   []string
	metrics *telemetry.Metrics
	health  *telemetry.Health
	server  *telemetry.Server
	backlog *telemetry.BacklogPoller
	flush   []func(context.Context) error
	log     *slog.Logger
}

// pinger is implemented by stores with a cheaper liveness query than Check.
type pinger interface {
	Ping(ctx context.Context) error
}

// startTelemetry builds the metrics, starts the backlog poller and the HTTP server
// (unless telemetry.listen is "off"), and the OTLP exporters when configured. Call Attach
// once the relay exists and Stop when it has returned.
func startTelemetry(ctx context.Context, c *config.Config, st store.Store, logger *slog.Logger) (*relayTelemetry, error) {
	t := &relayTelemetry{log: logger}
	routes := map[string]string{}
	for _, r := range c.Routes {
		routes[r.Name] = r.Sink
	}
	sinkTypes := map[string]string{}
	for name, s := range c.Sinks {
		sinkTypes[name] = s.Type
		t.sinks = append(t.sinks, name)
	}
	slices.Sort(t.sinks)
	t.metrics = telemetry.NewMetrics(telemetry.MetricsConfig{Version: version, Routes: routes, Sinks: t.sinks})
	t.Hooks = t.metrics

	// Export failures go to the log (scrubbed by it), not to stderr unformatted.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry export failed", "err", err)
	}))
	if telemetry.TracingEnabled(c.Telemetry.Tracing.Enabled, nil) {
		tp, err := telemetry.NewTracerProvider(ctx, telemetry.TracingConfig{ServiceVersion: version})
		if err != nil {
			return nil, err
		}
		t.flush = append(t.flush, tp.Shutdown)
		t.Tracer = telemetry.NewTracer(tp, sinkTypes, c.Secrets())
		logger.Info("tracing on: one span per published event, exported over OTLP")
	}
	if telemetry.OTLPMetricsEnabled(c.Telemetry.OTLPMetrics.Enabled, nil) {
		mp, err := telemetry.NewOTLPMetrics(ctx, telemetry.OTLPMetricsConfig{Gatherer: t.metrics.Registry(), ServiceVersion: version})
		if err != nil {
			t.Stop()
			return nil, err
		}
		t.flush = append(t.flush, mp.Shutdown)
		logger.Info("OTLP metrics export on")
	}

	t.backlog = &telemetry.BacklogPoller{Source: st, Metrics: t.metrics, Interval: c.Telemetry.BacklogInterval.D(), Logger: logger}
	t.backlog.Start(context.WithoutCancel(ctx))

	if c.Telemetry.ServerEnabled() {
		ping := st.Check
		if p, ok := st.(pinger); ok {
			ping = p.Ping
		}
		t.health = &telemetry.Health{Ping: ping, CircuitOpenThreshold: c.Telemetry.ReadyCircuitOpenThreshold.D(), Secrets: c.Secrets()}
		t.server = telemetry.NewServer(telemetry.ServerConfig{Addr: c.Telemetry.Listen, Gatherer: t.metrics.Registry(),
			Health: t.health, Logger: logger})
		if err := t.server.Start(ctx); err != nil {
			t.Stop()
			return nil, err
		}
	}
	return t, nil
}

// Attach connects the circuit gauges and /readyz to the relay's breakers and marks the
// relay up.
func (t *relayTelemetry) Attach(r *relay.Relay) {
	src := telemetry.RelayBreakers(r, t.sinks)
	t.metrics.WatchBreakers(src)
	if t.health != nil {
		t.health.WatchBreakers(src)
	}
	t.metrics.SetRelayUp(true)
}

// Stop marks the relay down, stops the poller and the server, and flushes the OTLP
// exporters (bounded to 5s). Safe to call twice.
func (t *relayTelemetry) Stop() {
	t.metrics.SetRelayUp(false)
	if t.backlog != nil {
		t.backlog.Stop()
	}
	if t.server != nil {
		t.server.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, f := range t.flush {
		errs = append(errs, f(ctx))
	}
	t.flush = nil
	if err := errors.Join(errs...); err != nil {
		t.log.Warn("telemetry: flushing the OTLP exporters failed; the last spans or metrics may be lost", "err", err)
	}
}
