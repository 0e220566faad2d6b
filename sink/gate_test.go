package sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestGate(t *testing.T) {
	t.Parallel()
	var g sink.Gate
	require.True(t, g.Enter())
	require.False(t, g.Closed())

	// Close waits for the publish in flight; here it gives up when ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, g.Close(ctx), context.DeadlineExceeded)
	require.True(t, g.Closed())
	require.False(t, g.Enter(), "a closed gate admits nothing")

	g.Leave()
	require.NoError(t, g.Close(t.Context()), "nothing in flight; closing again is safe")
}
