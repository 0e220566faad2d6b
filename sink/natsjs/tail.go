package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
)

// TailParams says what Tail reads.
type TailParams struct {
	// Config holds the connection settings and the Stream to read (default "CONVEYOR");
	// the sink's own config works as is. Stream creation settings are ignored.
	Config
	// Subject filters the stream's messages; wildcards allowed. Default: all of them.
	Subject string
	// Count stops Tail after this many messages. Default: 0, no limit.
	Count int
	// Timeout stops Tail when no message arrives for this long, for example once it has
	// read everything stored. Default: 0, wait for new messages until ctx ends.
	Timeout time.Duration
}

// Received is one message read by Tail.
type Received struct {
	Subject string
	// Attributes are the CloudEvents attributes read from the headers; zero when the
	// message is not a valid binary-mode CloudEvent, and AttributesErr says why.
	Attributes    cloudevents.Attributes
	AttributesErr error
	// Headers are all the message headers, as received.
	Headers map[string][]string
	Data    []byte
	// StreamSeq is the message's sequence number in the stream.
	StreamSeq uint64
	// Timestamp is when the server stored the message, which is when it acknowledged
	// the publish.
	Timestamp time.Time
}

// Tail reads the stream from its first message through an ordered ephemeral consumer
// and calls fn for each message, in stream order. It returns nil after Count messages or
// when Timeout passes without a message, ctx.Err() when ctx ends first, and fn's error
// when fn fails.
func Tail(ctx context.Context, p TailParams, fn func(Received) error) error {
	cfg := p.Config
	if err := cfg.Validate(); err != nil {
		return sink.RedactError(err, cfg.secrets())
	}
	cfg = cfg.withDefaults()
	if p.Subject != "" {
		if err := checkSubject(p.Subject, true); err != nil {
			return fmt.Errorf("natsjs: tail subject: %w", err)
		}
	}
	if p.Count < 0 || p.Timeout < 0 {
		return errors.New("natsjs: tail count and timeout must not be negative")
	}
	cn, err := connect(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer cn.nc.Close()
	js, err := jetstream.New(cn.nc)
	if err != nil {
		return fmt.Errorf("natsjs: %w", err)
	}
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if p.Subject != "" {
		occ.FilterSubjects = []string{p.Subject}
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Stream, occ)
	if err != nil {
		s := &Sink{cfg: cfg, conn: cn}
		return s.streamError("read", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("natsjs: reading stream %q: %w", cfg.Stream, sink.RedactError(err, cn.secrets))
	}
	defer it.Stop()

	for n := 0; p.Count == 0 || n < p.Count; n++ {
		next, cancel := ctx, context.CancelFunc(func() {})
		if p.Timeout > 0 {
			next, cancel = context.WithTimeout(ctx, p.Timeout)
		}
		msg, err := it.Next(jetstream.NextContext(next))
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return nil // idle for Timeout
		default:
			return fmt.Errorf("natsjs: reading stream %q: %w", cfg.Stream, sink.RedactError(err, cn.secrets))
		}
		r := Received{Subject: msg.Subject(), Headers: msg.Headers(), Data: msg.Data()}
		r.Attributes, r.AttributesErr = cloudevents.ParseNATS(msg.Headers())
		if md, err := msg.Metadata(); err == nil {
			r.StreamSeq = md.Sequence.Stream
			r.Timestamp = md.Timestamp
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
