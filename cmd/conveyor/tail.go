package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/conveyorhq/conveyor/sink/natsjs"
)

func tailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tail", "Read a NATS JetStream stream from the start and print each message, as JSON lines\nwith --json. Stops after --count messages or when --timeout passes without one.", stderr)
	url := fs.String("url", "nats://127.0.0.1:4222", "NATS server URL")
	stream := fs.String("stream", "CONVEYOR", "stream name")
	subject := fs.String("subject", "", "subject filter (default: the whole stream)")
	count := fs.Int("count", 0, "stop after this many messages (0: no limit)")
	timeout := fs.Duration("timeout", 10*time.Second, "stop after this long without a message")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	n := 0
	return natsjs.Tail(ctx, natsjs.TailParams{Config: natsjs.Config{URL: *url, Stream: *stream}, Subject: *subject, Count: *count, Timeout: *timeout},
		func(m natsjs.Received) error {
			n++
			if *asJSON {
				return json.NewEncoder(stdout).Encode(map[string]any{
					"id": m.Attributes.ID, "type": m.Attributes.Type, "source": m.Attributes.Source,
					"subject": m.Subject, "time": m.Attributes.Time, "stream_seq": m.StreamSeq,
					"acked_at": m.Timestamp.UTC().Format(time.RFC3339Nano), "headers": m.Headers,
					"data": json.RawMessage(m.Data),
				})
			}
			_, err := fmt.Fprintf(stdout, "#%d %s %s %s %s\n", m.StreamSeq, m.Timestamp.UTC().Format(time.RFC3339Nano), m.Subject, m.Attributes.ID, m.Data)
			return err
		})
}
