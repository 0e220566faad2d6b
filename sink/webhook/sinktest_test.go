package webhook_test

import (
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/sink/sinktest"
	"github.com/conveyorhq/conveyor/sink/webhook"
)

// maxBody is what the test receiver accepts; larger requests get 413, which is permanent.
const maxBody = 256 << 10

// TestSinkConformance runs the universal sink suite against a real HTTP server in the
// test process that verifies every signature.
func TestSinkConformance(t *testing.T) {
	t.Parallel()
	sinktest.Exercise(t, sinktest.Harness{
		Name: "webhook",
		Features: sinktest.Features{
			Ordering:        true,  // the relay sends one request at a time per key
			Dedup:           false, // receivers drop duplicates by webhook-id
			Headers:         true,
			MaxMessageBytes: maxBody,
			Outage:          true, // the receiver stops listening and starts again on the same port
		},
		New: func(t *testing.T) *sinktest.Env {
			rc := newReceiver(t, secretA, maxBody)
			s := newSink(t, webhook.Config{SigningSecrets: []string{secretA}, Timeout: 2 * time.Second})
			return &sinktest.Env{
				Sink:        s,
				Destination: func(name string) string { return rc.URL("/hooks/" + name) },
				Receive:     rc.receive,
				Stop:        rc.Stop,
				Start:       rc.Start,
			}
		},
	})
}
