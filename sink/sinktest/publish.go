package sinktest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/sink"
)

// Messages returns one message per event, bound for dest from a route named "test".
func Messages(dest string, evs ...*conveyor.Event) []*sink.Message {
	msgs := make([]*sink.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = &sink.Message{Event: ev, Destination: dest, Route: "test"}
	}
	return msgs
}

// Publish publishes evs to dest in one call, waiting at most 30s, and returns the
// error of each.
func Publish(t testing.TB, s sink.Sink, dest string, evs ...*conveyor.Event) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := s.Publish(ctx, Messages(dest, evs...))
	require.Len(t, errs, len(evs), "Publish must return one error slot per message")
	return errs
}

// RequireNoErrors fails the test unless every message was published.
func RequireNoErrors(t testing.TB, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "message %d", i)
	}
}
