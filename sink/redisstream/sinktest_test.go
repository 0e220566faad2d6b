package redisstream_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testlog"
	"github.com/conveyorhq/conveyor/sink/redisstream"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// TestSinkConformance runs the universal sink suite against redis-server processes
// the test runs itself, one per environment, so the outage test can kill and restart
// its server.
//
// Headers is true because the entry carries traceparent, tracestate and every extra
// header as fields (h:<name>) that a consumer maps back; Redis itself has no headers.
// Dedup is true for this configuration (dedup_window set); without dedup_window a
// re-sent event is added again.
func TestSinkConformance(t *testing.T) {
	t.Parallel()
	sinktest.Exercise(t, sinktest.Harness{
		Name: "redis",
		Features: sinktest.Features{
			Ordering: true, Dedup: true, Headers: true,
			MaxMessageBytes: maxBulk, // the servers' proto-max-bulk-len
			Outage:          true,
		},
		New: func(t *testing.T) *sinktest.Env {
			srv := newServer(t)
			log, _ := testlog.New(t)
			s, err := redisstream.New(context.Background(), redisstream.Config{URL: srv.URL(),
				DedupWindow: time.Minute, DialTimeout: time.Second, CommandTimeout: 2 * time.Second}, log)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			prefix := uniqueStream("st")
			return &sinktest.Env{
				Sink:        s,
				Destination: func(name string) string { return prefix + ":" + name },
				Receive: func(t *testing.T, dest string, n int, timeout time.Duration) []sinktest.Received {
					var out []sinktest.Received
					for _, e := range readStream(t, srv.URL(), dest, n, timeout) {
						h := maps.Clone(e.Headers)
						if h == nil {
							h = map[string]string{}
						}
						for _, ext := range []string{"traceparent", "tracestate"} {
							if v, ok := e.Attributes.Extensions[ext]; ok {
								h[ext] = v
							}
						}
						out = append(out, sinktest.Received{ID: e.Attributes.ID, Type: e.Attributes.Type,
							Source: e.Attributes.Source, Subject: e.Attributes.Subject, Time: e.Attributes.Time,
							Headers: h, Data: e.Data})
					}
					return out
				},
				Stop:  srv.Stop,
				Start: srv.Start,
			}
		},
	})
}
