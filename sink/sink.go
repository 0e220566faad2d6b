// Package sink defines how the relay hands events to a broker, and how a broker's
// failures are classified.
package sink

import (
	"context"

	"github.com/conveyorhq/conveyor"
)

// Message is one event bound for one destination (a subject, topic, exchange/routing key,
// stream or URL, already rendered from the route template).
type Message struct {
	Event       *conveyor.Event
	Destination string
	// Route is the name of the route that matched; for logs and metrics.
	Route string
}

// Sink publishes messages to one broker connection.
//
// Publish sends every message in msgs and waits until the broker has acknowledged or
// refused each one, or ctx ends. It returns one error per message, in the same order; a
// nil entry means the broker acknowledged that message durably. The relay never passes two
// messages with the same ordering key in one call, so a sink may publish a call's messages
// concurrently. Errors should be wrapped with Transient, Permanent or left plain (a plain
// error counts as a message-level failure, retried with backoff).
//
// Publish is safe for concurrent use. Close waits for in-flight publishes to finish or
// ctx to end, then releases the connection; calling it twice is safe.
type Sink interface {
	Publish(ctx context.Context, msgs []*Message) []error
	Close(ctx context.Context) error
}

// Checker is implemented by sinks that can verify their destination at startup (for
// example that a JetStream stream exists). `conveyor check` and `conveyor run` call it.
type Checker interface {
	Check(ctx context.Context) error
}
