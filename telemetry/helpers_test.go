package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store/sqlite"
	"github.com/conveyorhq/conveyor/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSink records what it is given; fail decides an error per message.
type fakeSink struct {
	mu   sync.Mutex
	got  []*sink.Message
	fail func(m *sink.Message) error
}

func (f *fakeSink) Publish(_ context.Context, msgs []*sink.Message) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if f.fail != nil {
			errs[i] = f.fail(m)
		}
		if errs[i] == nil {
			f.got = append(f.got, m)
		}
	}
	return errs
}

func (f *fakeSink) Close(context.Context) error { return nil }

func (f *fakeSink) delivered() []*sink.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sink.Message(nil), f.got...)
}

// bundle is a relay over a fresh migrated SQLite database with fake sinks.
type bundle struct {
	t     *testing.T
	st    *sqlite.Store
	sinks map[string]sink.Sink
	cfg   relay.Config
}

func setup(t *testing.T) *bundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: testdb.SQLitePath(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &bundle{t: t, st: st, sinks: map[string]sink.Sink{}, cfg: relay.Config{
		ID: "test-relay", BatchSize: 50, PerKey: 5, PollInterval: 20 * time.Millisecond, Lease: 10 * time.Second,
	}}
}

// route adds a route to a sink.
func (b *bundle) route(name, eventType, sinkName string, s sink.Sink, maxAttempts int) {
	b.sinks[sinkName] = s
	b.cfg.Routes = append(b.cfg.Routes, relay.Route{Name: name, EventType: eventType, Sink: sinkName,
		Destination: "events.{event_type}",
		Retry:       relay.RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxAttempts: maxAttempts}})
}

func (b *bundle) routes() map[string]string {
	out := map[string]string{}
	for _, r := range b.cfg.Routes {
		out[r.Name] = r.Sink
	}
	return out
}

func (b *bundle) sinkNames() []string {
	var out []string
	for name := range b.sinks {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (b *bundle) relay(opts relay.Options) *relay.Relay {
	opts.Logger = slog.New(slog.DiscardHandler)
	r, err := relay.New(b.cfg, b.st, b.sinks, opts)
	require.NoError(b.t, err)
	return r
}

func (b *bundle) insert(evs ...*outbox.Event) []uuid.UUID {
	b.t.Helper()
	for _, e := range evs {
		e.Source = "test"
		if e.Data == nil {
			e.Data = map[string]int{"n": 1}
		}
	}
	ids, err := outbox.Insert(context.Background(), b.st.DB(), outbox.SQLite, evs...)
	require.NoError(b.t, err)
	return ids
}

// drain runs cycles until nothing is claimable (events waiting out a backoff or a
// circuit cooldown count as not claimable).
func (b *bundle) drain(r *relay.Relay) {
	b.t.Helper()
	idle := 0
	for range 500 {
		n, err := r.Cycle(context.Background())
		require.NoError(b.t, err)
		if n > 0 {
			idle = 0
			continue
		}
		// Retries wait a millisecond or two; give them a few chances.
		if idle++; idle > 5 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.t.Fatal("relay did not drain")
}

// value returns the value of the series of name with exactly the given labels, and
// whether it exists. Histograms return their sample count.
func value(t *testing.T, g prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	require.Zero(t, len(labels)%2, "labels are name, value pairs")
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels)/2 {
				continue
			}
			for _, lp := range m.GetLabel() {
				found := false
				for i := 0; i < len(labels); i += 2 {
					if labels[i] == lp.GetName() && labels[i+1] == lp.GetValue() {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// mustValue is value that fails the test when the series is missing.
func mustValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(t, g, name, labels...)
	require.True(t, ok, "series %s%v missing", name, labels)
	return v
}

// startServer starts a telemetry server on a free loopback port.
func startServer(t *testing.T, cfg telemetry.ServerConfig) (*telemetry.Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := telemetry.NewServer(cfg)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(srv.Stop)
	return srv, "http://" + srv.Addr()
}

// get fetches a URL and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// metricNames lists the sample names in a Prometheus text exposition.
func metricNames(exposition string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}
