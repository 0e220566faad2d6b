package sink_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestFanOut(t *testing.T) {
	t.Parallel()
	msgs := []*sink.Message{{Destination: "a"}, {Destination: "fail"}, {Destination: "c"}}
	sem := make(chan struct{}, 2)
	var running, most atomic.Int32
	errs := sink.FanOut(t.Context(), msgs, sem, "test: publish not started", func(_ context.Context, m *sink.Message) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			old := most.Load()
			if n <= old || most.CompareAndSwap(old, n) {
				break
			}
		}
		if m.Destination == "fail" {
			return errors.New("refused")
		}
		return nil
	})
	require.Len(t, errs, 3)
	require.NoError(t, errs[0])
	require.EqualError(t, errs[1], "refused")
	require.NoError(t, errs[2])
	require.LessOrEqual(t, most.Load(), int32(2), "at most cap(sem) at once")
	require.Empty(t, sem, "every slot is given back")

	// With no free slot and ctx over, messages fail as an outage without running.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	full := make(chan struct{})
	errs = sink.FanOut(ctx, msgs[:1], full, "test: publish not started", func(context.Context, *sink.Message) error {
		t.Error("publish ran")
		return nil
	})
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]))
	require.EqualError(t, errs[0], "transient: test: publish not started: context canceled")
}
