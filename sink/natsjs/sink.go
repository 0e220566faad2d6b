// Package natsjs is the NATS JetStream sink: it publishes each event as a CloudEvents
// binary-mode message with the event id as Nats-Msg-Id, so JetStream drops a duplicate
// within the stream's deduplication window (G4).
//
// It also holds the in-process server the relay uses when it runs with no config
// (StartEmbedded), and the reader behind `conveyor tail` (Tail).
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
)

// ErrClosed is returned, as a transient error, for a publish after Close.
var ErrClosed = errors.New("natsjs: sink is closed")

// Sink publishes to NATS JetStream. It implements sink.Sink and sink.Checker.
//
// Publish is safe for concurrent use; all calls share one window of MaxInFlight
// unacknowledged messages. Close stops new publishes, waits for those in flight, then
// drains the connection so everything written reaches the server.
type Sink struct {
	cfg  Config
	log  *slog.Logger
	conn *conn
	js   jetstream.JetStream

	gate      sink.Gate
	closeOnce sync.Once
	closeErr  error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New connects to the server, then checks that the stream exists, or creates it when
// cfg.CreateStream is set. A server that cannot be reached gives an error classified
// sink.Transient; a missing stream or bad credentials give a plain error that says what
// to change. Once connected the sink reconnects forever. A nil logger discards logs.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, sink.RedactError(err, cfg.secrets())
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cn, err := connect(cfg, log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(cn.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
	)
	if err != nil {
		cn.nc.Close()
		return nil, fmt.Errorf("natsjs: %w", err)
	}
	s := &Sink{cfg: cfg, log: log, conn: cn, js: js}
	if err := s.ensureStream(ctx); err != nil {
		cn.nc.Close()
		return nil, err
	}
	log.Info("natsjs: connected", "config", cfg)
	return s, nil
}

// ensureStream checks the configured stream, creating it or adding missing subjects
// when CreateStream is set.
func (s *Sink) ensureStream(ctx context.Context) error {
	str, err := s.js.Stream(ctx, s.cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && s.cfg.CreateStream:
		_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       s.cfg.Stream,
			Subjects:   s.cfg.Subjects,
			Replicas:   s.cfg.Replicas,
			Duplicates: s.cfg.Duplicates,
			Storage:    jetstream.FileStorage,
		})
		if err != nil {
			return s.streamError("create", err)
		}
		s.log.Info("natsjs: created stream", "stream", s.cfg.Stream, "subjects", s.cfg.Subjects)
		return nil
	case err != nil:
		return s.streamError("find", err)
	}
	info := str.CachedInfo()
	var missing []string
	for _, subj := range s.cfg.Subjects {
		if !slices.Contains(info.Config.Subjects, subj) {
			missing = append(missing, subj)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !s.cfg.CreateStream {
		s.log.Warn("natsjs: stream does not list the configured subjects; set create_stream: true to add them",
			"stream", s.cfg.Stream, "stream_subjects", info.Config.Subjects, "missing", missing)
		return nil
	}
	sc := info.Config
	sc.Subjects = append(slices.Clip(sc.Subjects), missing...)
	if _, err := s.js.UpdateStream(ctx, sc); err != nil {
		return s.streamError("update", err)
	}
	s.log.Info("natsjs: added subjects to stream", "stream", s.cfg.Stream, "subjects", missing)
	return nil
}

func (s *Sink) streamError(op string, err error) error {
	err = sink.RedactError(err, s.conn.secrets)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("natsjs: JetStream stream %q does not exist on %s; create it (for example `nats stream add %s --subjects '%s'`) or set create_stream: true: %w",
			s.cfg.Stream, s.conn.url, s.cfg.Stream, s.cfg.Subjects[0], err)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("natsjs: JetStream is not enabled on %s; start nats-server with -js (or enable it for the account): %w", s.conn.url, err)
	case isTransient(err):
		return sink.Transient(fmt.Errorf("natsjs: cannot %s stream %q on %s: %w", op, s.cfg.Stream, s.conn.url, err))
	}
	return fmt.Errorf("natsjs: cannot %s stream %q on %s: %w", op, s.cfg.Stream, s.conn.url, err)
}

// Check verifies that the server is reachable and the stream exists.
func (s *Sink) Check(ctx context.Context) error {
	if _, err := s.js.Stream(ctx, s.cfg.Stream); err != nil {
		return s.streamError("find", err)
	}
	return nil
}

// Publish publishes msgs asynchronously, at most MaxInFlight unacknowledged at a time,
// and waits for every acknowledgement. Each message goes to its Destination subject
// with the event's data as body, CloudEvents NATS headers and Nats-Msg-Id set to the
// event id. An acknowledgement that reports a duplicate is a success: the stream already
// holds the event.
func (s *Sink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if !s.gate.Enter() {
		return slices.Repeat([]error{sink.Transient(ErrClosed)}, len(msgs))
	}
	defer s.gate.Leave()
	if st := s.conn.nc.Status(); st != nats.CONNECTED {
		err := sink.Transient(fmt.Errorf("natsjs: not connected to %s (%s)", s.conn.url, st))
		return slices.Repeat([]error{err}, len(msgs))
	}

	errs := make([]error, len(msgs))

	verdicts := map[string]error{} // no-responders verdict per subject, for this call
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			errs[i] = sink.Transient(fmt.Errorf("natsjs: publish not started: %w", err))
			continue
		}
		nm, err := message(m)
		if err != nil {
			errs[i] = err
			continue
		}
		f, err := s.js.PublishMsgAsync(nm, jetstream.WithStallWait(s.cfg.AckTimeout))
		if err != nil {
			errs[i] = s.classify(ctx, m, err, verdicts)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				s.log.Debug("natsjs: duplicate acknowledged", "event_id", msgs[i].Event.ID, "stream", ack.Stream, "seq", ack.Sequence)
			}
		case err := <-f.Err():
			errs[i] = s.classify(ctx, msgs[i], err, verdicts)
		case <-ctx.Done():
			errs[i] = sink.Transient(fmt.Errorf("natsjs: gave up waiting for the acknowledgement of event %s: %w", msgs[i].Event.ID, ctx.Err()))
		}
	}
	return errs
}

// message builds the NATS message for m.
func message(m *sink.Message) (*nats.Msg, error) {
	if m == nil || m.Event == nil {
		return nil, sink.Permanent(errors.New("natsjs: message has no event"))
	}
	if err := checkSubject(m.Destination, false); err != nil {
		return nil, sink.Permanent(fmt.Errorf("natsjs: event %s: invalid destination for route %q: %w", m.Event.ID, m.Route, err))
	}
	h := nats.Header{}
	for k, v := range cloudevents.NATSHeaders(m.Event) {
		h[k] = []string{v}
	}
	h[jetstream.MsgIDHeader] = []string{m.Event.ID.String()}
	return &nats.Msg{Subject: m.Destination, Header: h, Data: m.Event.Data}, nil
}

// Close stops new publishes, waits for in-flight ones to finish or ctx to end, then
// drains and closes the connection. Calling it again returns the first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.gate.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("natsjs: closing with publishes still in flight: %w", err)
		}
		s.js.CleanupPublisher()
		s.conn.close(ctx.Done())
	})
	return s.closeErr
}
