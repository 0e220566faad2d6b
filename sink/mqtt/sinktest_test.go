package mqtt_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/sink/mqtt"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// maxPacket is the max_packet_size of the test brokers; the broker announces it in its
// CONNACK and the sink refuses larger messages as permanent.
const maxPacket = 64 << 10

// TestSinkConformance runs the universal sink suite against mosquitto processes of the
// test's own (CONVEYOR_TEST_MOSQUITTO), which it stops and starts for the outage test.
func TestSinkConformance(t *testing.T) {
	t.Parallel()
	sinktest.Exercise(t, sinktest.Harness{
		Name: "mqtt",
		Features: sinktest.Features{
			Ordering:        true,  // QoS 1 from one client to one topic keeps its order
			Dedup:           false, // MQTT has no broker-side deduplication; consumers use the id property
			Headers:         true,  // MQTT 5 user properties
			MaxMessageBytes: maxPacket,
			Outage:          true,
		},
		New: func(t *testing.T) *sinktest.Env {
			b := newBroker(t, fmt.Sprintf("max_packet_size %d", maxPacket))
			c := newConsumer(t, b.URL())
			s := newSink(t, mqtt.Config{URL: b.URL(), ConnectTimeout: 2 * time.Second, PublishTimeout: 3 * time.Second})
			prefix := "sinktest/" + uuid.NewString()[:8] + "/"
			return &sinktest.Env{
				Sink:        s,
				Destination: func(name string) string { return c.subscribe(t, prefix+name) },
				Receive:     c.receive,
				Stop:        b.Stop,
				Start:       b.Start,
			}
		},
	})
}
