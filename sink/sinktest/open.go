package sinktest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testlog"
	"github.com/conveyorhq/conveyor/sink"
)

// Open opens a sink with open, which gets a logger whose output is printed if the test
// fails. The sink must close without error, within 10s, when the test ends.
func Open[S sink.Sink](t testing.TB, open func(log *slog.Logger) (S, error)) S {
	t.Helper()
	log, _ := testlog.New(t)
	s, err := open(log)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}
