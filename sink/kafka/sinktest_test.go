package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testlog"
	"github.com/conveyorhq/conveyor/sink/kafka"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// TestSinkConformance runs the universal sink suite against a real Kafka broker that
// this test runs itself (from CONVEYOR_TEST_KAFKA_LIBS), so the outage test can kill
// and restart it without disturbing other tests. It is not parallel with the package's
// other tests for the same reason.
//
// Dedup is false: the idempotent producer drops its own retried batches, but Kafka has
// no idempotency key, so a re-sent event (same ce_id) is stored again; consumers
// deduplicate by ce_id.
func TestSinkConformance(t *testing.T) {
	b := newBroker(t)
	sinktest.Exercise(t, sinktest.Harness{
		Name: "kafka",
		Features: sinktest.Features{
			Ordering: true, Dedup: false, Headers: true,
			MaxMessageBytes: brokerMaxMessage,
			Outage:          true,
		},
		New: func(t *testing.T) *sinktest.Env {
			prefix := uniqueTopic("st")
			log, _ := testlog.New(t)
			s, err := kafka.New(context.Background(), kafka.Config{
				Brokers:         []string{b.Addr()},
				CreateTopics:    &kafka.CreateTopicsConfig{Partitions: 3},
				DeliveryTimeout: 3 * time.Second, // the outage test waits for it
				DialTimeout:     time.Second,
			}, log)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			return &sinktest.Env{
				Sink:        s,
				Destination: func(name string) string { return prefix + "." + name },
				Receive: func(t *testing.T, dest string, n int, timeout time.Duration) []sinktest.Received {
					var out []sinktest.Received
					for _, c := range consume(t, []string{b.Addr()}, dest, n, timeout) {
						out = append(out, sinktest.Received{ID: c.attrs.ID, Type: c.attrs.Type, Source: c.attrs.Source,
							Subject: c.attrs.Subject, Time: c.attrs.Time, Headers: c.headers, Data: c.rec.Value, Key: string(c.rec.Key)})
					}
					return out
				},
				Stop:  b.Stop,
				Start: b.Start,
			}
		},
	})
}
