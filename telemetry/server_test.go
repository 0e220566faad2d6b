package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store/postgres"
	"github.com/conveyorhq/conveyor/telemetry"
)

func readyz(t *testing.T, base string) (int, telemetry.ReadyReport) {
	t.Helper()
	code, body := get(t, base+"/readyz")
	var rep telemetry.ReadyReport
	require.NoError(t, json.Unmarshal([]byte(body), &rep), body)
	return code, rep
}

func TestHealthzAndMetricsEndpoints(t *testing.T) {
	t.Parallel()
	m := telemetry.NewMetrics(telemetry.MetricsConfig{Routes: map[string]string{"r": "s"}, Sinks: []string{"s"}})
	srv, base := startServer(t, telemetry.ServerConfig{Gatherer: m.Registry()})

	code, body := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ok"}`, body)

	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `conveyor_events_published_total{route="r",sink="s"} 0`)
	require.Contains(t, body, "# TYPE conveyor_commit_to_ack_seconds histogram")

	code, _ = readyz(t, base)
	require.Equal(t, http.StatusOK, code, "no Health: always ready")

	code, _ = get(t, base+"/nope")
	require.Equal(t, http.StatusNotFound, code)

	srv.Stop()
	srv.Stop()
	_, err := http.Get(base + "/healthz")
	require.Error(t, err, "stopped")
}

func TestReadyzWithARealRelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	down := &fakeSink{fail: func(*sink.Message) error { return sink.Transient(errors.New("connection refused")) }}
	b.route("all", "*", "main", down, 3)
	r := b.relay(relay.Options{})
	health := &telemetry.Health{Ping: b.st.Check, PingTTL: time.Nanosecond, CircuitOpenThreshold: 50 * time.Millisecond}
	health.WatchBreakers(telemetry.RelayBreakers(r, b.sinkNames()))
	_, base := startServer(t, telemetry.ServerConfig{Gatherer: telemetry.NewMetrics(telemetry.MetricsConfig{}).Registry(), Health: health})

	code, rep := readyz(t, base)
	require.Equal(t, http.StatusOK, code, "%+v", rep)
	require.True(t, rep.Ready)
	require.True(t, rep.Database.OK)
	require.Equal(t, []telemetry.CircuitReport{{Sink: "main", State: "closed"}}, rep.Circuits)

	// The broker goes down: the circuit opens. Briefly open is still ready...
	b.insert(&outbox.Event{Type: "x"})
	b.drain(r)
	code, rep = readyz(t, base)
	if rep.Circuits[0].OpenSeconds < 0.05 {
		require.Equal(t, http.StatusOK, code, "%+v", rep)
	}
	require.Equal(t, "open", rep.Circuits[0].State)

	// ...open longer than the threshold is not.
	time.Sleep(60 * time.Millisecond)
	code, rep = readyz(t, base)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.False(t, rep.Ready)
	require.True(t, rep.Database.OK)
	require.Len(t, rep.Problems, 1)
	require.Contains(t, rep.Problems[0], "sink main: circuit open for")
	require.Contains(t, rep.Problems[0], "threshold 50ms")

	// The database goes away too.
	require.NoError(t, b.st.Close())
	code, rep = readyz(t, base)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.False(t, rep.Database.OK)
	require.Len(t, rep.Problems, 2)
	require.Contains(t, rep.Problems[0], "database: ")

	code, _ = get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on the database")
}

func TestReadyzWhenPostgresGoesAway(t *testing.T) {
	t.Parallel()
	dsn := testdb.PostgresURL(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, postgres.Config{URL: dsn, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	health := &telemetry.Health{Ping: st.Check, PingTTL: time.Nanosecond, Secrets: []string{"conveyor-test-secret"}}
	_, base := startServer(t, telemetry.ServerConfig{Gatherer: telemetry.NewMetrics(telemetry.MetricsConfig{}).Registry(), Health: health})

	code, rep := readyz(t, base)
	require.Equal(t, http.StatusOK, code, "%+v", rep)

	admin, err := pgx.Connect(ctx, testdb.Require(t, "CONVEYOR_TEST_PG_DSN"))
	require.NoError(t, err)
	defer admin.Close(ctx)
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", pgx.Identifier{cfg.Database}.Sanitize()))
	require.NoError(t, err)

	code, body := get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.False(t, rep.Database.OK)
	require.Contains(t, rep.Problems[0], "database: ")
	require.NotContains(t, body, "conveyor-test-secret")
}

func TestReadyzCachesThePing(t *testing.T) {
	t.Parallel()
	calls := 0
	health := &telemetry.Health{Ping: func(context.Context) error { calls++; return nil }, PingTTL: time.Hour}
	for range 5 {
		require.True(t, health.Ready(context.Background()).Ready)
	}
	require.Equal(t, 1, calls)
}

func TestReadyzPingTimeout(t *testing.T) {
	t.Parallel()
	health := &telemetry.Health{PingTimeout: 20 * time.Millisecond, Ping: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	rep := health.Ready(context.Background())
	require.False(t, rep.Ready)
	require.Contains(t, rep.Database.Error, "no answer within 20ms")
}

func TestServerAddressInUse(t *testing.T) {
	t.Parallel()
	m := telemetry.NewMetrics(telemetry.MetricsConfig{})
	first, _ := startServer(t, telemetry.ServerConfig{Gatherer: m.Registry()})
	second := telemetry.NewServer(telemetry.ServerConfig{Addr: first.Addr(), Gatherer: m.Registry(), Logger: slog.New(slog.DiscardHandler)})
	err := second.Start(context.Background())
	require.ErrorContains(t, err, "telemetry.listen")
	second.Stop() // never started: nothing to do
}

func TestServerWarnsBeyondLocalhost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		warn bool
	}{{"127.0.0.1:0", false}, {"localhost:0", false}, {"[::1]:0", false}, {":0", true}, {"0.0.0.0:0", true}} {
		var buf bytes.Buffer
		srv := telemetry.NewServer(telemetry.ServerConfig{Addr: tc.addr, Gatherer: telemetry.NewMetrics(telemetry.MetricsConfig{}).Registry(),
			Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err := srv.Start(context.Background()); err != nil {
			require.Equal(t, "[::1]:0", tc.addr, "only IPv6 loopback may be missing here: %v", err)
			continue
		}
		srv.Stop()
		require.Equal(t, tc.warn, bytes.Contains(buf.Bytes(), []byte("no authentication")), "%s: %s", tc.addr, buf.String())
	}
}
