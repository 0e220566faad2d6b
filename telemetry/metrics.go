package telemetry

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
)

// Unrouted is the route label of events that no route matched (or that could not be
// decoded) when they are dead-lettered.
const Unrouted = "unrouted"

// Bucket boundaries, in seconds (or events for batch sizes).
var (
	// stepBuckets covers one claim, publish or settle step: 1ms to 60s.
	stepBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// commitToAckBuckets covers commit-to-ack latency: 1ms on a live relay up to an hour
	// for events that waited out an outage or a backlog.
	commitToAckBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	batchBuckets       = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
)

// MetricsConfig describes what the relay will report, so every series exists (at zero)
// from the first scrape and rate() works from the first event.
type MetricsConfig struct {
	// Version is the conveyor_build_info version label. Default "dev".
	Version string
	// Routes maps each route name to the name of its sink.
	Routes map[string]string
	// Sinks lists the sink names; each gets a circuit state series.
	Sinks []string
}

// Metrics implements relay.Hooks with Prometheus collectors on a registry of its own (plus
// the Go runtime and process collectors). It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	published   *prometheus.CounterVec
	failures    *prometheus.CounterVec
	dead        *prometheus.CounterVec
	retries     *prometheus.CounterVec
	leasesLost  prometheus.Counter
	claimDur    prometheus.Histogram
	publishDur  prometheus.Histogram
	settleDur   prometheus.Histogram
	batchSize   prometheus.Histogram
	commitToAck *prometheus.HistogramVec
	relayUp     prometheus.Gauge
	circuits    *circuitCollector
	backlog     *backlogCollector
}

var _ relay.Hooks = (*Metrics)(nil)

// NewMetrics registers the conveyor_* metrics on a new registry.
func NewMetrics(cfg MetricsConfig) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_events_published_total",
			Help: "Events the broker acknowledged, by route and sink.",
		}, []string{"route", "sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_publish_failures_total",
			Help: "Failed publishes by route, sink and kind: transient (outage, opens the circuit), message (retried with backoff), permanent (dead at once).",
		}, []string{"route", "sink", "kind"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_events_dead_total",
			Help: "Events moved to dead, by route (\"unrouted\" when no route matched).",
		}, []string{"route"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_retries_scheduled_total",
			Help: "Message-level failures scheduled for another attempt with backoff, by route.",
		}, []string{"route"}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conveyor_leases_lost_total",
			Help: "Events whose settle was refused because their lease expired or was taken over; they will be published again.",
		}),
		claimDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conveyor_claim_duration_seconds", Buckets: stepBuckets,
			Help: "Time to claim a non-empty batch.",
		}),
		publishDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conveyor_publish_duration_seconds", Buckets: stepBuckets,
			Help: "Time to publish a claimed batch, from the first send to the last broker ack.",
		}),
		settleDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conveyor_settle_duration_seconds", Buckets: stepBuckets,
			Help: "Time to settle a batch (one fenced write).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conveyor_batch_size", Buckets: batchBuckets,
			Help: "Events per claimed batch.",
		}),
		commitToAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "conveyor_commit_to_ack_seconds", Buckets: commitToAckBuckets,
			Help: "End-to-end latency from the event's created_at (its transaction) to the broker ack, by route and sink.",
		}, []string{"route", "sink"}),
		relayUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "conveyor_relay_up",
			Help: "1 while the relay loop runs, 0 before it starts and after it stops.",
		}),
		circuits: newCircuitCollector(cfg.Sinks),
		backlog:  &backlogCollector{},
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "conveyor_build_info",
		Help:        "Always 1; the labels carry the relay's version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": cmp.Or(cfg.Version, "dev"), "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(m.published, m.failures, m.dead, m.retries, m.leasesLost, m.claimDur, m.publishDur,
		m.settleDur, m.batchSize, m.commitToAck, m.relayUp, buildInfo, m.circuits, m.backlog,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	kinds := []sink.Kind{sink.KindTransient, sink.KindMessage, sink.KindPermanent}
	m.dead.WithLabelValues(Unrouted)
	for route, sinkName := range cfg.Routes {
		m.published.WithLabelValues(route, sinkName)
		m.commitToAck.WithLabelValues(route, sinkName)
		for _, k := range kinds {
			m.failures.WithLabelValues(route, sinkName, k.String())
		}
		m.dead.WithLabelValues(route)
		m.retries.WithLabelValues(route)
	}
	return m
}

// Registry returns the registry holding every metric, for /metrics and OTLP export.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetRelayUp sets conveyor_relay_up.
func (m *Metrics) SetRelayUp(up bool) {
	if up {
		m.relayUp.Set(1)
	} else {
		m.relayUp.Set(0)
	}
}

// WatchBreakers makes the circuit gauges read the breakers at scrape time, which also
// sees the half-open state the hooks do not report.
func (m *Metrics) WatchBreakers(src BreakerSource) { m.circuits.src.Store(&src) }

// OnBatch implements relay.Hooks.
func (m *Metrics) OnBatch(claimed int, claim, publish, settle time.Duration) {
	m.batchSize.Observe(float64(claimed))
	m.claimDur.Observe(claim.Seconds())
	m.publishDur.Observe(publish.Seconds())
	m.settleDur.Observe(settle.Seconds())
}

// OnPublished implements relay.Hooks.
func (m *Metrics) OnPublished(route, sinkName string, latency time.Duration) {
	m.published.WithLabelValues(route, sinkName).Inc()
	// created_at comes from the database clock; a skewed relay clock must not go negative.
	m.commitToAck.WithLabelValues(route, sinkName).Observe(max(latency, 0).Seconds())
}

// OnFailure implements relay.Hooks.
func (m *Metrics) OnFailure(route, sinkName string, kind sink.Kind) {
	m.failures.WithLabelValues(route, sinkName, kind.String()).Inc()
}

// OnRetry implements relay.Hooks.
func (m *Metrics) OnRetry(route string) { m.retries.WithLabelValues(route).Inc() }

// OnDead implements relay.Hooks.
func (m *Metrics) OnDead(route string) { m.dead.WithLabelValues(cmp.Or(route, Unrouted)).Inc() }

// OnLeaseLost implements relay.Hooks.
func (m *Metrics) OnLeaseLost(n int) { m.leasesLost.Add(float64(n)) }

// OnBreaker implements relay.Hooks.
func (m *Metrics) OnBreaker(sinkName string, state relay.BreakerState) {
	m.circuits.record(sinkName, state, time.Now())
}

// BreakerStatus is one sink's circuit as health checks and metrics see it.
type BreakerStatus struct {
	Sink  string
	State relay.BreakerState
	// Since is when the circuit left the closed state; zero when closed.
	Since time.Time
}

// BreakerSource returns the current circuit of every sink.
type BreakerSource func() []BreakerStatus

// RelayBreakers reads the circuit breakers of the named sinks of r.
func RelayBreakers(r *relay.Relay, sinks []string) BreakerSource {
	names := slices.Sorted(slices.Values(sinks))
	return func() []BreakerStatus {
		out := make([]BreakerStatus, 0, len(names))
		for _, name := range names {
			b := r.Breaker(name)
			if b == nil {
				continue
			}
			st, since := b.State()
			if st == relay.BreakerClosed {
				since = time.Time{}
			}
			out = append(out, BreakerStatus{Sink: name, State: st, Since: since})
		}
		return out
	}
}

// circuitCollector exports conveyor_circuit_state and conveyor_circuit_open_seconds from
// the breakers when a source is attached, else from the OnBreaker hook.
type circuitCollector struct {
	state, open *prometheus.Desc
	src         atomic.Pointer[BreakerSource]

	mu     sync.Mutex
	byHook map[string]BreakerStatus
}

func newCircuitCollector(sinks []string) *circuitCollector {
	c := &circuitCollector{
		state: prometheus.NewDesc("conveyor_circuit_state",
			"Circuit breaker state per sink: 0 closed, 1 open, 2 half-open.", []string{"sink"}, nil),
		open: prometheus.NewDesc("conveyor_circuit_open_seconds",
			"How long the sink's circuit has been open or half-open without closing; 0 when closed.", []string{"sink"}, nil),
		byHook: map[string]BreakerStatus{},
	}
	for _, s := range sinks {
		c.byHook[s] = BreakerStatus{Sink: s}
	}
	return c
}

func (c *circuitCollector) record(sinkName string, st relay.BreakerState, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.byHook[sinkName]
	switch {
	case st == relay.BreakerClosed:
		prev.Since = time.Time{}
	case prev.State == relay.BreakerClosed:
		prev.Since = now
	}
	prev.Sink, prev.State = sinkName, st
	c.byHook[sinkName] = prev
}

func (c *circuitCollector) statuses() []BreakerStatus {
	if src := c.src.Load(); src != nil {
		return (*src)()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]BreakerStatus, 0, len(c.byHook))
	for _, s := range c.byHook {
		out = append(out, s)
	}
	return out
}

func (c *circuitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.state; ch <- c.open }

func (c *circuitCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, s := range c.statuses() {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(s.State), s.Sink)
		var open float64
		if s.State != relay.BreakerClosed && !s.Since.IsZero() {
			open = now.Sub(s.Since).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, open, s.Sink)
	}
}
