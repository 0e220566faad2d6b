// Package amqp is the RabbitMQ (AMQP 0-9-1) sink, sink type "rabbitmq". It publishes each
// event as a persistent message with publisher confirms and the mandatory flag, so the
// broker acknowledges every message it stored and returns every message no queue takes:
// an unroutable event is a permanent error, never a silent drop.
//
// The message body is the event data. The event id is the message_id (RabbitMQ does not
// deduplicate; consumers drop duplicates by it), the type the type property, the source
// the app_id, CreatedAt the timestamp, and the CloudEvents AMQP binding's attributes
// (cloudEvents:id, ...) plus traceparent and extra headers go in the headers table.
package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
)

// ErrClosed is returned, as a transient error, for a publish after Close.
var ErrClosed = errors.New("amqp: sink is closed")

// Sink publishes to RabbitMQ. It implements sink.Sink and sink.Checker.
//
// Publish is safe for concurrent use; all calls share one connection and one channel in
// confirm mode. When the broker or the network closes them, the messages in flight fail
// (transient, or permanent for the one message the broker refused) and the next Publish
// reconnects, declaring the topology again. Close stops new publishes, waits for those
// in flight, then closes the connection.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config
	url     string // redacted
	secrets []string

	dialMu sync.Mutex // one reconnect at a time
	mu     sync.Mutex
	cur    *session
	// maxBody is the broker's max_message_size once learned from a refusal; 0 until then.
	maxBody int

	gate      sink.Gate
	closeOnce sync.Once
	closeErr  error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New connects to the broker and declares cfg.Topology. A broker that cannot be
// reached gives an error classified sink.Transient; bad credentials, a missing vhost or
// a topology conflict give a plain error that says what to change. A nil logger
// discards logs.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, sink.RedactError(err, cfg.secrets())
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, log: log, url: sink.RedactPassword(cfg.URL), secrets: cfg.secrets()}
	if strings.HasPrefix(cfg.URL, "amqps://") || cfg.TLS.enabled() {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		s.tls = tc
	}
	if _, err := s.session(ctx); err != nil {
		return nil, err
	}
	log.Info("amqp: connected", "config", cfg)
	return s, nil
}

// session returns the open session, reconnecting (and declaring the topology) when the
// last one closed.
func (s *Sink) session(ctx context.Context) (*session, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur != nil && !cur.isClosed() {
		return cur, nil
	}
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	s.mu.Lock()
	cur = s.cur
	s.mu.Unlock()
	if cur != nil && !cur.isClosed() {
		return cur, nil // another caller reconnected meanwhile
	}
	if cur != nil {
		// The broker may have closed only the channel (a refused message): close the
		// connection too.
		cur.close(ctx.Done())
	}
	if err := ctx.Err(); err != nil {
		return nil, sink.Transient(fmt.Errorf("amqp: not connected to %s: %w", s.url, err))
	}
	ss, err := dial(s.cfg, s.tls)
	if err != nil {
		return nil, s.connectError(err)
	}
	if err := declare(ss.ch, s.cfg.Topology); err != nil {
		ss.close(ctx.Done())
		var amqpErr *amqp091.Error
		if errors.As(err, &amqpErr) && amqpErr.Server && amqpErr.Code != amqp091.ConnectionForced {
			return nil, s.redact(err) // the broker refused the topology: a config error
		}
		return nil, sink.Transient(s.redact(err))
	}
	s.mu.Lock()
	if s.gate.Closed() && s.cur != nil {
		s.mu.Unlock()
		ss.close(ctx.Done())
		return nil, sink.Transient(ErrClosed)
	}
	reconnect := s.cur != nil
	s.cur = ss
	s.mu.Unlock()
	if reconnect {
		s.log.Info("amqp: reconnected", "url", s.url)
	}
	return ss, nil
}

// connectError explains a failed connection and classifies it: a broker that cannot be
// reached is an outage; bad credentials, a missing vhost or bad TLS settings are not.
func (s *Sink) connectError(err error) error {
	err = s.redact(err)
	var amqpErr *amqp091.Error
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, amqp091.ErrCredentials), errors.Is(err, amqp091.ErrSASL),
		errors.As(err, &amqpErr) && amqpErr.Code == amqp091.AccessRefused:
		return fmt.Errorf("amqp: %s refused the credentials; check the user and password (or password_file): %w", s.url, err)
	case errors.Is(err, amqp091.ErrVhost),
		errors.As(err, &amqpErr) && amqpErr.Code == amqp091.NotAllowed:
		return fmt.Errorf("amqp: %s: the vhost does not exist or the user may not use it; create it (`rabbitmqctl add_vhost`) and grant permissions (`rabbitmqctl set_permissions`): %w", s.url, err)
	case errors.As(err, &certErr), strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("amqp: TLS to %s failed; check the tls settings: %w", s.url, err)
	}
	return sink.Transient(fmt.Errorf("amqp: cannot connect to RabbitMQ at %s (is it running and reachable?): %w", s.url, err))
}

func (s *Sink) redact(err error) error { return sink.RedactError(err, s.secrets) }

// Check verifies that the broker is reachable and that the configured exchange exists.
func (s *Sink) Check(ctx context.Context) error {
	ss, err := s.session(ctx)
	if err != nil {
		return err
	}
	if s.cfg.Exchange == "" {
		return nil
	}
	ch, err := ss.conn.Channel()
	if err != nil {
		return sink.Transient(fmt.Errorf("amqp: open a channel on %s: %w", s.url, s.redact(err)))
	}
	defer ch.Close() //nolint:errcheck // a failed passive declare already closed it
	// Passive: fails with NOT_FOUND if missing, whatever its type and flags.
	if err := ch.ExchangeDeclarePassive(s.cfg.Exchange, DefaultExchangeType, true, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: exchange %q does not exist on %s; declare it (or list it under topology.exchanges): %w", s.cfg.Exchange, s.url, s.redact(err))
	}
	return nil
}

// Publish publishes msgs with the mandatory flag and waits for every publisher confirm.
// A message the broker returns as unroutable, or refuses as too large, fails
// permanently; a nack is a message-level failure; a broker or network failure is
// transient. Messages that were only bystanders when the channel closed (the broker
// closed it over another message, or the connection dropped) are published once more on
// a new session before Publish returns; when that fails too they are transient.
func (s *Sink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if !s.gate.Enter() {
		return slices.Repeat([]error{sink.Transient(ErrClosed)}, len(msgs))
	}
	defer s.gate.Leave()
	errs := make([]error, len(msgs))

	todo := make([]int, 0, len(msgs))
	for i := range msgs {
		todo = append(todo, i)
	}
	for round := 0; len(todo) > 0; round++ {
		todo = s.publishRound(ctx, msgs, todo, errs, round > 0)
	}
	return errs
}

// publishRound publishes msgs[i] for i in todo on the current session and fills errs. It
// returns the indexes to publish again: bystanders of a channel the broker closed over
// another message, unless last is set.
func (s *Sink) publishRound(ctx context.Context, msgs []*sink.Message, todo []int, errs []error, last bool) []int {
	ss, err := s.session(ctx)
	if err != nil {
		for _, i := range todo {
			errs[i] = err
		}
		return nil
	}
	var again []int
	waiting := make(map[int]*inflight, len(todo))
	for _, i := range todo {
		m := msgs[i]
		if err := ctx.Err(); err != nil {
			errs[i] = sink.Transient(fmt.Errorf("amqp: publish not started: %w", err))
			continue
		}
		t, pub, err := s.message(m)
		if err != nil {
			errs[i] = err
			continue
		}
		p, err := ss.publish(t, pub)
		if err != nil {
			if !last && (errors.Is(err, errSessionClosed) || errors.Is(err, amqp091.ErrClosed)) {
				// The channel closed under this call (perhaps over another of its
				// messages): publish it on the next session.
				again = append(again, i)
				continue
			}
			errs[i] = s.publishError(m, t, err)
			continue
		}
		waiting[i] = p
	}

	timer := time.NewTimer(s.cfg.ConfirmTimeout)
	defer timer.Stop()
	for _, i := range todo {
		p := waiting[i]
		if p == nil {
			continue
		}
		m := msgs[i]
		var o outcome
		var ok bool
		select {
		case o, ok = <-p.result: // answered already: never report it as timed out
		default:
		}
		if !ok {
			select {
			case o = <-p.result:
				ok = true
			case <-timer.C:
				ss.forget(p)
				errs[i] = sink.Transient(fmt.Errorf("amqp: no publisher confirm for event %s from %s within %s (confirm_timeout)",
					m.Event.ID, s.url, s.cfg.ConfirmTimeout))
				// Every later message waits no longer either.
				timer.Reset(0)
			case <-ctx.Done():
				ss.forget(p)
				errs[i] = sink.Transient(fmt.Errorf("amqp: gave up waiting for the publisher confirm of event %s: %w", m.Event.ID, ctx.Err()))
			}
		}
		if ok {
			err := s.outcomeError(m, p, o)
			if errors.Is(err, errBystander) {
				if !last {
					again = append(again, i)
					continue
				}
				err = sink.Transient(err)
			}
			errs[i] = err
		}
	}
	slices.Sort(again)
	return again
}

// message builds the AMQP message for m.
func (s *Sink) message(m *sink.Message) (target, amqp091.Publishing, error) {
	if m == nil || m.Event == nil {
		return target{}, amqp091.Publishing{}, sink.Permanent(errors.New("amqp: message has no event"))
	}
	e := m.Event
	t, err := parseDestination(m.Destination, s.cfg.Exchange)
	if err != nil {
		return target{}, amqp091.Publishing{}, sink.Permanent(fmt.Errorf("amqp: event %s: invalid destination %q for route %q: %w", e.ID, m.Destination, m.Route, err))
	}
	limit := s.cfg.MaxMessageBytes
	s.mu.Lock()
	if s.maxBody > 0 && (limit == 0 || s.maxBody < limit) {
		limit = s.maxBody
	}
	s.mu.Unlock()
	if limit > 0 && len(e.Data) > limit {
		return target{}, amqp091.Publishing{}, sink.Permanent(fmt.Errorf("amqp: event %s (%d bytes of data) is larger than the %d bytes the broker accepts (max_message_size)", e.ID, len(e.Data), limit))
	}
	contentType, props := cloudevents.AMQPProperties(e)
	headers := make(amqp091.Table, len(props))
	for k, v := range props {
		if len(k) <= 255 {
			headers[k] = v
		}
	}
	pub := amqp091.Publishing{
		Headers:      headers,
		ContentType:  contentType,
		DeliveryMode: amqp091.Persistent,
		MessageId:    e.ID.String(),
		Timestamp:    e.CreatedAt.UTC(),
		Body:         e.Data,
	}
	// Short-string properties hold 255 bytes; a longer type or source still travels in
	// the cloudEvents:* headers.
	if len(e.Type) <= 255 {
		pub.Type = e.Type
	}
	if len(e.Source) <= 255 {
		pub.AppId = e.Source
	}
	return t, pub, nil
}

// Close stops new publishes, waits for in-flight ones to finish or ctx to end, then
// closes the connection. Calling it again returns the first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.gate.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("amqp: closing with publishes still in flight: %w", err)
		}
		s.dialMu.Lock()
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		s.dialMu.Unlock()
		if cur != nil {
			cur.close(ctx.Done())
		}
	})
	return s.closeErr
}
