package natsjs_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestEmbeddedPortInUse(t *testing.T) {
	t.Parallel()
	first := newEmbedded(t)
	_, err := natsjs.StartEmbedded(t.Context(), natsjs.EmbeddedConfig{
		Port: first.port, StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
	})
	require.ErrorContains(t, err, "did not start")
}

func TestEmbeddedKeepsStreamsAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s, err := natsjs.New(t.Context(), natsjs.Config{URL: srv.URL(), CreateStream: true}, nil)
	require.NoError(t, err)
	sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid(""))))
	require.NoError(t, s.Close(t.Context()))

	srv.Stop(t)
	srv.Stop(t) // Shutdown is idempotent
	srv.Restart(t)
	newSink(t, natsjs.Config{URL: srv.URL()}) // the stream survived, so no create_stream needed
	require.Equal(t, uint64(1), streamMsgs(t, srv.URL(), natsjs.DefaultStream))
}

func TestEmbeddedCreatesStoreDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "jetstream")
	e, err := natsjs.StartEmbedded(t.Context(), natsjs.EmbeddedConfig{Port: -1, StoreDir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer e.Shutdown()
	require.True(t, strings.HasPrefix(e.ClientURL(), "nats://127.0.0.1:"), e.ClientURL())
	newSink(t, natsjs.Config{URL: e.ClientURL(), CreateStream: true})
	require.DirExists(t, dir)
}
