package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/conveyorhq/conveyor/sink"
)

// errTooLarge marks a record refused by the client before it was sent.
var errTooLarge = errors.New("record too large")

// classify turns a produce failure of m (record r) into a sink error (G5). verdicts
// caches per-topic answers (does the topic exist?) for one Publish call.
func (s *Sink) classify(ctx context.Context, m *sink.Message, r *kgo.Record, err error, verdicts map[string]error) error {
	err = sink.RedactError(err, s.secrets)
	id, topic := m.Event.ID, m.Destination
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return s.tooLarge(ctx, m, r, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return s.unknownTopic(ctx, topic, err, verdicts)
	case errors.Is(err, kerr.InvalidTopicException):
		return sink.Permanent(fmt.Errorf("kafka: event %s: the broker refuses topic name %q; fix the route's destination: %w", id, topic, err))
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return sink.Permanent(fmt.Errorf("kafka: event %s: not allowed to write to topic %q; grant the client WRITE and DESCRIBE on it, or fix the route's destination: %w",
			id, topic, err))
	case errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.InvalidTimestamp), errors.Is(err, kerr.PolicyViolation):
		// A compacted topic refuses records without a key, a policy refuses a header...:
		// this record will be refused again.
		return sink.Permanent(fmt.Errorf("kafka: event %s: topic %q refused the record: %w", id, topic, err))
	case isAuthError(err):
		// Every message of the sink fails alike; an outage, not this message's fault.
		return sink.Transient(fmt.Errorf("kafka: %s refused the client's credentials or permissions; check sasl and the cluster ACLs (IDEMPOTENT_WRITE): %w", s.brokers, err))
	case isTransient(err):
		return sink.Transient(fmt.Errorf("kafka: produce of event %s to topic %q on %s failed: %w", id, topic, s.brokers, err))
	}
	return fmt.Errorf("kafka: produce of event %s to topic %q failed: %w", id, topic, err)
}

// isTransient reports failures of the cluster or of waiting, not of the message: a
// broker that cannot be reached, no leader, not enough in-sync replicas, timeouts.
func isTransient(err error) bool {
	for _, target := range []error{
		context.Canceled, context.DeadlineExceeded,
		kgo.ErrRecordTimeout, kgo.ErrRecordRetries, kgo.ErrClientClosed, kgo.ErrMaxBuffered,
		io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	var eof *kgo.ErrFirstReadEOF
	switch {
	case errors.As(err, &netErr), errors.As(err, &eof):
		return true
	case errors.Is(err, kerr.CorruptMessage):
		return false // "retriable" for Kafka, but about this record
	}
	return kerr.IsRetriable(err)
}

func isAuthError(err error) bool {
	for _, target := range []error{
		kerr.SaslAuthenticationFailed, kerr.IllegalSaslState, kerr.UnsupportedSaslMechanism,
		kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// connectError explains a failed first contact and classifies it: a cluster that
// cannot be reached is an outage; bad credentials or TLS settings are not.
func (s *Sink) connectError(err error) error {
	err = sink.RedactError(err, s.secrets)
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("kafka: %s rejected the SASL credentials of user %q (mechanism %s); check sasl.user and sasl.password: %w",
			s.brokers, s.cfg.SASL.User, s.cfg.SASL.Mechanism, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka: %s does not enable SASL mechanism %s; set sasl.mechanism to one the listener enables: %w",
			s.brokers, s.cfg.SASL.Mechanism, err)
	case errors.As(err, &certErr), strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("kafka: TLS to %s failed; check the tls settings: %w", s.brokers, err)
	}
	return sink.Transient(fmt.Errorf("kafka: cannot reach a Kafka broker at %s (is it running and reachable? are brokers and the listener's security right?): %w",
		s.brokers, err))
}

// tooLarge classifies a record the client or the broker refused as too large. The
// broker refuses a whole batch, so a small record that shared a batch with others is
// not to blame: it is dead-lettered only when it alone exceeds the topic's limit.
func (s *Sink) tooLarge(ctx context.Context, m *sink.Message, r *kgo.Record, err error) error {
	size := recordSize(r) + batchOverhead
	if size > s.cfg.BatchMaxBytes-512 { // the client's own bound, give or take its estimate
		return sink.Permanent(fmt.Errorf("kafka: event %s is about %d bytes, more than batch_max_bytes (%d); shrink the event, or raise batch_max_bytes together with the topic's max.message.bytes: %w",
			m.Event.ID, size, s.cfg.BatchMaxBytes, err))
	}
	limit, lerr := s.maxMessageBytes(ctx, m.Destination)
	switch {
	case lerr != nil:
		return sink.Permanent(fmt.Errorf("kafka: event %s (about %d bytes) is larger than topic %q accepts (its max.message.bytes could not be read: %v); shrink the event or raise max.message.bytes: %w",
			m.Event.ID, size, m.Destination, lerr, err))
	case size > limit:
		return sink.Permanent(fmt.Errorf("kafka: event %s is about %d bytes, more than topic %q accepts (max.message.bytes %d); shrink the event or raise the topic's max.message.bytes: %w",
			m.Event.ID, size, m.Destination, limit, err))
	}
	return fmt.Errorf("kafka: event %s shared a batch larger than topic %q accepts (max.message.bytes %d); set batch_max_bytes to at most %d: %w",
		m.Event.ID, m.Destination, limit, limit, err)
}
