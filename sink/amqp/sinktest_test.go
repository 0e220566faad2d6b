package amqp_test

import (
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/sink/amqp"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// TestSinkConformance runs the universal sink suite against the private RabbitMQ node
// (scripts/services.sh up rabbitmq). Not parallel: its outage test stops the node's
// app, and the package's parallel tests run only after it.
func TestSinkConformance(t *testing.T) {
	sinktest.Exercise(t, sinktest.Harness{
		Name: "rabbitmq",
		Features: sinktest.Features{
			Ordering: true,
			Dedup:    false, // RabbitMQ does not deduplicate; consumers drop duplicates by message_id
			Headers:  true,
			// The node's max_message_size (1 MiB); the broker closes the channel with
			// PRECONDITION_FAILED, which the sink reports as permanent for that message.
			MaxMessageBytes: maxMessage(t),
			Outage:          true, // rabbitmqctl stop_app / start_app: listeners close, connection refused
		},
		New: func(t *testing.T) *sinktest.Env {
			b := newBroker(t)
			s := newSink(t, amqp.Config{ConfirmTimeout: 5 * time.Second, ConnectTimeout: 2 * time.Second})
			return &sinktest.Env{
				Sink:        s,
				Destination: func(name string) string { return b.queue(t, name) },
				Receive:     b.receive,
				Stop:        func(t *testing.T) { rabbitmqctl(t, "stop_app") },
				Start: func(t *testing.T) {
					rabbitmqctl(t, "start_app")
					rabbitmqctl(t, "await_startup")
				},
			}
		},
	})
}
