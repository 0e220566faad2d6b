package natsjs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// TestSinkConformance runs the universal sink suite against a real nats-server process.
func TestSinkConformance(t *testing.T) {
	t.Parallel()
	sinktest.Exercise(t, sinktest.Harness{
		Name: "nats",
		Features: sinktest.Features{
			Ordering: true, Dedup: true, Headers: true,
			MaxMessageBytes: 64 * 1024, // the server below sets max_payload
			Outage:          true,
		},
		New: func(t *testing.T) *sinktest.Env {
			srv := newProcess(t, "max_payload: 65536\n")
			prefix := "st" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
			stream := strings.ToUpper(prefix)
			s, err := natsjs.New(context.Background(), natsjs.Config{URL: srv.URL(), Stream: stream,
				Subjects: []string{prefix + ".>"}, CreateStream: true, AckTimeout: 2 * time.Second,
				ConnectTimeout: time.Second}, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			return &sinktest.Env{
				Sink:        s,
				Destination: func(name string) string { return prefix + "." + name },
				Receive: func(t *testing.T, dest string, n int, timeout time.Duration) []sinktest.Received {
					var out []sinktest.Received
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					defer cancel()
					err := natsjs.Tail(ctx, natsjs.TailParams{Config: natsjs.Config{URL: srv.URL(), Stream: stream},
						Subject: dest, Count: n, Timeout: 2 * time.Second}, func(m natsjs.Received) error {
						require.NoError(t, m.AttributesErr)
						h := map[string]string{}
						for k, v := range m.Headers {
							h[k] = v[0]
						}
						out = append(out, sinktest.Received{ID: m.Attributes.ID, Type: m.Attributes.Type,
							Source: m.Attributes.Source, Subject: m.Attributes.Subject, Time: m.Attributes.Time,
							Headers: h, Data: m.Data})
						return nil
					})
					if err != nil && ctx.Err() == nil {
						require.NoError(t, err, fmt.Sprintf("tail %s", dest))
					}
					return out
				},
				Stop:  func(t *testing.T) { srv.Stop(t) },
				Start: func(t *testing.T) { srv.Restart(t) },
			}
		},
	})
}
