package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

// syncBuffer is a bytes.Buffer safe for the relay's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestRunServesTelemetry runs `conveyor run` in-process and reads its endpoints while it
// publishes an event.
func TestRunServesTelemetry(t *testing.T) {
	t.Parallel()
	dbPath := testdb.SQLitePath(t)
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
database:
  url: sqlite:///%s
relay:
  poll_interval: 50ms
sinks:
  default:
    type: nats
    embedded: {enabled: true, port: -1, store_dir: %s}
    create_stream: true
routes:
  - {name: all, sink: default, destination: "events.{event_type}"}
telemetry:
  listen: %s
  backlog_interval: 1s
`, dbPath, t.TempDir(), addr))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- runCmd(ctx, []string{"--config", cfg}, io.Discard, &logs) }()

	base := "http://" + addr
	require.Eventually(t, func() bool {
		code, _, err := httpGet(base + "/healthz")
		return err == nil && code == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "logs:\n%s", logs.String())

	st, err := sqlite.Open(ctx, sqlite.Config{Path: dbPath})
	require.NoError(t, err)
	defer st.Close()
	_, err = outbox.Insert(ctx, st.DB(), outbox.SQLite, &outbox.Event{Type: "order.paid", Source: "test", Data: map[string]int{"id": 1}})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		_, body, err := httpGet(base + "/metrics")
		return err == nil && strings.Contains(body, `conveyor_events_published_total{route="all",sink="default"} 1`) &&
			strings.Contains(body, "conveyor_pending_events 0")
	}, 20*time.Second, 50*time.Millisecond, "logs:\n%s", logs.String())
	_, body, err := httpGet(base + "/metrics")
	require.NoError(t, err)
	require.Contains(t, body, "conveyor_relay_up 1")
	require.Contains(t, body, `conveyor_circuit_state{sink="default"} 0`)
	require.Contains(t, body, `conveyor_build_info{goversion="go`)

	code, body, err := httpGet(base + "/readyz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"ready": true`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	_, _, err = httpGet(base + "/healthz")
	require.Error(t, err, "the server stops with the relay")
	require.Contains(t, logs.String(), "telemetry server listening")
}

func TestTelemetryOffAndTracingOn(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(`
database: {url: "sqlite:///unused.sqlite3"}
sinks:
  default: {type: nats}
routes:
  - {sink: default, destination: "events.{event_type}"}
telemetry:
  listen: "off"
  tracing: {enabled: true}
`))
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: testdb.SQLitePath(t)})
	require.NoError(t, err)
	defer st.Close()
	tel, err := startTelemetry(context.Background(), c, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Nil(t, tel.server, "listen: off")
	require.NotNil(t, tel.Tracer, "tracing.enabled: true")
	require.NotNil(t, tel.Hooks)
	tel.Stop()
	tel.Stop()
}

func TestTelemetryListenTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := config.Parse([]byte(fmt.Sprintf(`
database: {url: "sqlite:///unused.sqlite3"}
sinks:
  default: {type: nats}
routes:
  - {sink: default, destination: "events.{event_type}"}
telemetry: {listen: "%s"}
`, ln.Addr())))
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: testdb.SQLitePath(t)})
	require.NoError(t, err)
	defer st.Close()
	_, err = startTelemetry(context.Background(), c, st, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "set telemetry.listen to a free address")
}
