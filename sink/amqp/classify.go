package amqp

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/sink"
)

// errBystander marks a message whose channel closed before its confirm for a reason
// that is not about it: it is published again on a new session, and is transient if
// that fails too.
var errBystander = errors.New("amqp: channel closed before the publisher confirm")

// RabbitMQ's close reasons that name the message at fault.
var (
	// "PRECONDITION_FAILED - message size 1049624 is larger than configured max size 1048576"
	tooLargeRe = regexp.MustCompile(`message size (\d+) is larger than (?:configured )?max size (\d+)`)
	// "NOT_FOUND - no exchange 'orders' in vhost 'conveyor'"
	noExchangeRe = regexp.MustCompile(`no exchange '(.*)' in vhost`)
	// "ACCESS_REFUSED - write access to exchange 'orders' in vhost 'conveyor' refused for user 'u'"
	accessRe = regexp.MustCompile(`access to exchange '(.*)' in vhost '.*' refused`)
)

// publishError classifies a failure to send m (before any confirm).
func (s *Sink) publishError(m *sink.Message, t target, err error) error {
	err = s.redact(err)
	var se *sink.Error
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, errSessionClosed), errors.Is(err, amqp091.ErrClosed):
		return sink.Transient(fmt.Errorf("amqp: cannot publish event %s to %s: connection to %s closed: %w", m.Event.ID, t, s.url, err))
	case errors.Is(err, amqp091.ErrFieldType):
		return sink.Permanent(fmt.Errorf("amqp: event %s cannot be encoded as an AMQP message: %w", m.Event.ID, err))
	}
	return sink.Transient(fmt.Errorf("amqp: cannot publish event %s to %s on %s: %w", m.Event.ID, t, s.url, err))
}

// outcomeError turns the broker's answer to one message into its result.
func (s *Sink) outcomeError(m *sink.Message, p *inflight, o outcome) error {
	id := m.Event.ID
	if o.returned != nil {
		r := o.returned
		if r.ReplyCode == amqp091.NoRoute {
			return sink.Permanent(fmt.Errorf("amqp: event %s is unroutable: no queue bound for exchange %s routing key %q; bind a queue (or add one under topology) or fix the route's destination (%d %s)",
				id, exchangeName(r.Exchange), r.RoutingKey, r.ReplyCode, r.ReplyText))
		}
		return fmt.Errorf("amqp: event %s was returned by the broker from %s: %d %s", id, p.target, r.ReplyCode, r.ReplyText)
	}
	if !o.closed {
		if o.acked {
			return nil
		}
		// A nack means the broker could not store it (a queue process failed, a quorum
		// queue lost its leader, a reject-publish overflow policy): retry it.
		return fmt.Errorf("amqp: the broker nacked event %s on %s; it did not store it", id, p.target)
	}

	// Closed before the confirm: the message may or may not be stored. Unless the close
	// reason names this message, it is a bystander, published again on a new session
	// (a duplicate at worst, which consumers drop by message_id).
	reason := o.reason
	if reason == nil {
		return fmt.Errorf("%w: connection to %s lost before the publisher confirm of event %s", errBystander, s.url, id)
	}
	cause := s.redact(reason)
	switch reason.Code {
	case amqp091.PreconditionFailed:
		if mm := tooLargeRe.FindStringSubmatch(reason.Reason); mm != nil {
			size, _ := strconv.Atoi(mm[1])
			limit, _ := strconv.Atoi(mm[2])
			if limit > 0 {
				s.mu.Lock()
				s.maxBody = limit
				s.mu.Unlock()
			}
			if size == p.bodySize || (limit > 0 && p.bodySize > limit) {
				return sink.Permanent(fmt.Errorf("amqp: event %s (%d bytes of data) is larger than the broker's max_message_size of %d bytes: %w", id, p.bodySize, limit, cause))
			}
			return fmt.Errorf("%w: %w", errBystander, cause)
		}
	case amqp091.NotFound:
		if mm := noExchangeRe.FindStringSubmatch(reason.Reason); mm != nil {
			if mm[1] == p.target.exchange {
				return sink.Permanent(fmt.Errorf("amqp: event %s: exchange %q does not exist; declare it (or list it under topology.exchanges) or fix the route's destination: %w", id, mm[1], cause))
			}
			return fmt.Errorf("%w: %w", errBystander, cause)
		}
	case amqp091.AccessRefused:
		if mm := accessRe.FindStringSubmatch(reason.Reason); mm != nil {
			if mm[1] == p.target.exchange {
				return sink.Permanent(fmt.Errorf("amqp: event %s: the user may not publish to exchange %q; grant write permission or fix the route's destination: %w", id, mm[1], cause))
			}
			return fmt.Errorf("%w: %w", errBystander, cause)
		}
	}
	return fmt.Errorf("%w: %s closed the channel before the publisher confirm of event %s: %w", errBystander, s.url, id, cause)
}

func exchangeName(ex string) string {
	if ex == "" {
		return `"" (the default exchange)`
	}
	return strconv.Quote(ex)
}
