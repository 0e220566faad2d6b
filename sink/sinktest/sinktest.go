// Package sinktest is the universal conformance suite every sink passes against its real
// server (watermill's habit). A sink declares what it supports in Features, so the suite
// checks each sink honestly: ordering, deduplication, headers and size limits.
package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

// Features is what a sink supports.
type Features struct {
	// Ordering: messages published one after another to one destination (with one key)
	// are received in that order.
	Ordering bool
	// Dedup: the broker itself drops a second message with the same event id.
	Dedup bool
	// Headers: attributes and event headers travel as message headers (binary mode);
	// false means structured mode, where only the CloudEvents attributes travel.
	Headers bool
	// MaxMessageBytes is a payload size the server refuses; the suite publishes a message
	// larger than it and expects a permanent error. 0 skips that test (say why in the
	// sink's test file).
	MaxMessageBytes int
	// Outage: Env.Stop and Env.Start can take the server down and bring it back.
	Outage bool
}

// Received is a message read back by a real consumer, normalised across brokers.
type Received struct {
	// ID, Type, Source, Subject and Time are the CloudEvents attributes as received.
	ID, Type, Source, Subject string
	Time                      time.Time
	// Headers are the extra headers (traceparent, correlation-id, ...), as received.
	Headers map[string]string
	// Data is the message body's event data (for structured mode, the data member).
	Data []byte
	// Key is the broker-level key, where the broker has one (Kafka record key); else "".
	Key string
}

// Env is one fresh environment: a sink, a place to publish and a consumer.
type Env struct {
	Sink sink.Sink
	// Destination returns a destination string (subject, topic, exchange/routing key,
	// stream, URL...) for a logical name, unique to this Env so tests don't collide.
	Destination func(name string) string
	// Receive reads up to n messages published to dest, waiting at most timeout.
	Receive func(t *testing.T, dest string, n int, timeout time.Duration) []Received
	// Stop and Start take the server down and bring it back (Features.Outage).
	Stop, Start func(t *testing.T)
}

// Harness adapts one sink to the suite.
type Harness struct {
	Features Features
	// Name is the sink type, used in messages.
	Name string
	// New builds a fresh Env; it registers its own cleanup.
	New func(t *testing.T) *Env
}

// Exercise runs the suite.
func Exercise(t *testing.T, h Harness) {
	t.Run("RoundTripAttributesAndHeaders", func(t *testing.T) {
		t.Parallel()
		e := h.New(t)
		dest := e.Destination("roundtrip")
		ev := NewEvent("order.placed", "customer-7", 1)
		RequireNoErrors(t, Publish(t, e.Sink, dest, ev))
		got := e.Receive(t, dest, 1, 15*time.Second)
		require.Len(t, got, 1)
		r := got[0]
		require.Equal(t, ev.ID.String(), r.ID)
		require.Equal(t, "order.placed", r.Type)
		require.Equal(t, "sinktest", r.Source)
		require.Equal(t, ev.Subject, r.Subject)
		require.WithinDuration(t, ev.CreatedAt, r.Time, time.Millisecond)
		require.JSONEq(t, string(ev.Data), string(r.Data))
		if h.Features.Headers {
			require.Equal(t, ev.Headers["traceparent"], r.Headers["traceparent"])
			require.Equal(t, "corr-1", r.Headers["correlation-id"])
		}
	})

	t.Run("BatchAllAcknowledged", func(t *testing.T) {
		t.Parallel()
		e := h.New(t)
		dest := e.Destination("batch")
		var evs []*conveyor.Event
		for i := range 300 {
			evs = append(evs, NewEvent("t", fmt.Sprintf("k%d", i), i))
		}
		RequireNoErrors(t, Publish(t, e.Sink, dest, evs...))
		got := e.Receive(t, dest, 300, 30*time.Second)
		ids := map[string]bool{}
		for _, r := range got {
			ids[r.ID] = true
		}
		require.Len(t, ids, 300, "every acknowledged message is received")
	})

	if h.Features.Ordering {
		t.Run("OrderWithinKey", func(t *testing.T) {
			t.Parallel()
			e := h.New(t)
			dest := e.Destination("order")
			var want []string
			for i := range 40 {
				ev := NewEvent("t", "hot", i)
				want = append(want, ev.ID.String())
				RequireNoErrors(t, Publish(t, e.Sink, dest, ev)) // one after another, as the relay does
			}
			got := e.Receive(t, dest, 40, 20*time.Second)
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			require.Equal(t, want, ids)
		})
	}

	if h.Features.Dedup {
		t.Run("BrokerDropsDuplicateID", func(t *testing.T) {
			t.Parallel()
			e := h.New(t)
			dest := e.Destination("dedup")
			ev := NewEvent("t", "", 1)
			RequireNoErrors(t, Publish(t, e.Sink, dest, ev))
			RequireNoErrors(t, Publish(t, e.Sink, dest, ev))
			marker := NewEvent("t", "", 2)
			RequireNoErrors(t, Publish(t, e.Sink, dest, marker))
			got := e.Receive(t, dest, 3, 5*time.Second)
			require.Len(t, got, 2, "the duplicate must be dropped")
		})
	}

	if h.Features.MaxMessageBytes > 0 {
		t.Run("TooLargeIsPermanent", func(t *testing.T) {
			t.Parallel()
			e := h.New(t)
			dest := e.Destination("large")
			ev := NewEvent("t", "", 1)
			ev.Data = []byte(`{"blob":"` + strings.Repeat("x", h.Features.MaxMessageBytes+1024) + `"}`)
			errs := Publish(t, e.Sink, dest, ev)
			require.Error(t, errs[0])
			require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "got %v", errs[0])
			// The sink still works afterwards.
			RequireNoErrors(t, Publish(t, e.Sink, dest, NewEvent("t", "", 2)))
		})
	}

	if h.Features.Outage {
		t.Run("OutageOpensCircuitLosesNothing", func(t *testing.T) {
			// Not parallel: it stops the server.
			e := h.New(t)
			exerciseOutage(t, e)
		})
	}

	t.Run("CloseIsIdempotent", func(t *testing.T) {
		t.Parallel()
		e := h.New(t)
		require.NoError(t, e.Sink.Close(context.Background()))
		require.NoError(t, e.Sink.Close(context.Background()))
	})
}

// exerciseOutage runs a real relay over SQLite with the sink: the server goes down, events
// are recorded, the circuit opens and no attempts are used; the server comes back, the
// circuit closes and every event is received.
func exerciseOutage(t *testing.T, e *Env) {
	dest := e.Destination("outage")
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: testdb.SQLitePath(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	r, err := relay.New(relay.Config{ID: "sinktest", BatchSize: 50, PerKey: 5, Lease: 20 * time.Second,
		Routes: []relay.Route{{Name: "all", Sink: "s", Destination: dest}}},
		st, map[string]sink.Sink{"s": e.Sink}, relay.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	// Warm up: the connection works.
	insert(t, st, 2)
	cycleUntil(t, r, func() bool { return countStatus(t, st, conveyor.StatusPublished) == 2 }, 20*time.Second)

	e.Stop(t)
	insert(t, st, 10)
	cycleUntil(t, r, func() bool {
		state, _ := r.Breaker("s").State()
		return state == relay.BreakerOpen
	}, 60*time.Second)
	var attempts int
	require.NoError(t, st.DB().QueryRow(`SELECT coalesce(max(attempts), 0) FROM conveyor_event WHERE status = 0`).Scan(&attempts))
	require.Equal(t, 0, attempts, "an outage must not use attempts")
	require.Equal(t, 10, countStatus(t, st, conveyor.StatusPending))

	e.Start(t)
	cycleUntil(t, r, func() bool { return countStatus(t, st, conveyor.StatusPublished) == 12 }, 90*time.Second)
	state, _ := r.Breaker("s").State()
	require.Equal(t, relay.BreakerClosed, state)
	require.Equal(t, 0, countStatus(t, st, conveyor.StatusDead))
	got := e.Receive(t, dest, 12, 30*time.Second)
	ids := map[string]bool{}
	for _, m := range got {
		ids[m.ID] = true
	}
	require.Len(t, ids, 12, "nothing lost across the outage")
}

func insert(t *testing.T, st *sqlite.Store, n int) {
	t.Helper()
	evs := make([]*outbox.Event, n)
	for i := range evs {
		evs[i] = &outbox.Event{Type: "outage.test", Source: "sinktest", Key: fmt.Sprintf("k%d", i%3),
			Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
	}
	_, err := outbox.Insert(context.Background(), st.DB(), outbox.SQLite, evs...)
	require.NoError(t, err)
}

func countStatus(t *testing.T, st *sqlite.Store, s conveyor.Status) int {
	t.Helper()
	var n int
	require.NoError(t, st.DB().QueryRow(`SELECT count(*) FROM conveyor_event WHERE status = ?`, int(s)).Scan(&n))
	return n
}

func cycleUntil(t *testing.T, r *relay.Relay, done func() bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %s", timeout)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := r.Cycle(ctx)
		cancel()
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
	}
}
