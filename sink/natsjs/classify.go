package natsjs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/conveyorhq/conveyor/sink"
)

// JetStream API error codes (nats-server's errors.json) that decide a classification.
const (
	codeAccountResources      = 10002 // resource limits exceeded for account
	codeInsufficientResources = 10023
	codeMemoryResources       = 10028
	codeStorageResources      = 10047
	codeMessageTooLarge       = 10054 // message size exceeds maximum allowed
	codeHeaderTooLarge        = 10097 // header size exceeds maximum allowed of 64k
	codeStreamSealed          = 10109
	codeDuplicateInProcess    = 10158 // duplicate message id is in process
)

// duplicateRetry is how soon to retry a message whose id the stream is still storing
// from an earlier attempt; by then that attempt has settled and the retry is acked as a
// duplicate.
const duplicateRetry = time.Second

// classify turns a publish failure of m into a sink error (G5). verdicts caches, per
// subject, the answer to "does any stream capture it?" for one Publish call.
func (s *Sink) classify(ctx context.Context, m *sink.Message, err error, verdicts map[string]error) error {
	err = sink.RedactError(err, s.conn.secrets)
	id := m.Event.ID
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case codeMessageTooLarge, codeHeaderTooLarge:
			return sink.Permanent(fmt.Errorf("natsjs: event %s (%d bytes of data) is larger than the stream allows on subject %q: %w",
				id, len(m.Event.Data), m.Destination, err))
		case codeStreamSealed:
			return sink.Permanent(fmt.Errorf("natsjs: event %s: the stream capturing subject %q is sealed: %w", id, m.Destination, err))
		case codeDuplicateInProcess:
			return sink.Retry(fmt.Errorf("natsjs: event %s: an earlier attempt is still being stored: %w", id, err), duplicateRetry)
		case codeAccountResources, codeInsufficientResources, codeMemoryResources, codeStorageResources:
			return sink.Transient(fmt.Errorf("natsjs: JetStream is out of resources for subject %q: %w", m.Destination, err))
		}
		if apiErr.Code == 503 {
			// Unavailable: no leader, JetStream disabled, store failure (a full stream
			// with discard-new): the destination, not the message.
			return sink.Transient(fmt.Errorf("natsjs: JetStream unavailable for subject %q: %w", m.Destination, err))
		}
		return fmt.Errorf("natsjs: event %s rejected on subject %q: %w", id, m.Destination, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return s.noResponders(ctx, m.Destination, err, verdicts)
	case errors.Is(err, nats.ErrMaxPayload):
		return sink.Permanent(fmt.Errorf("natsjs: event %s (%d bytes of data) exceeds the server's max_payload of %d bytes: %w",
			id, len(m.Event.Data), s.conn.nc.MaxPayload(), err))
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrBadHeaderMsg):
		return sink.Permanent(fmt.Errorf("natsjs: event %s cannot be sent to subject %q: %w", id, m.Destination, err))
	case isTransient(err):
		return sink.Transient(fmt.Errorf("natsjs: publish of event %s to %s failed: %w", id, s.conn.url, err))
	}
	return fmt.Errorf("natsjs: publish of event %s to subject %q failed: %w", id, m.Destination, err)
}

// isTransient reports errors of the connection or of waiting, not of the message.
func isTransient(err error) bool {
	for _, target := range []error{
		context.Canceled, context.DeadlineExceeded,
		nats.ErrTimeout, nats.ErrDisconnected, nats.ErrConnectionClosed, nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting, nats.ErrReconnectBufExceeded, nats.ErrNoServers,
		nats.ErrStaleConnection, nats.ErrSlowConsumer,
		jetstream.ErrAsyncPublishTimeout, jetstream.ErrTooManyStalledMsgs,
		jetstream.ErrJetStreamPublisherClosed, jetstream.ErrConnectionClosed,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// noResponders explains a publish nobody answered. JetStream answers every subject some
// stream captures, so first ask whether one does: if none, the route points nowhere, a
// config error no retry fixes; if one does, JetStream is unavailable for now.
func (s *Sink) noResponders(ctx context.Context, subject string, cause error, verdicts map[string]error) error {
	if v, ok := verdicts[subject]; ok {
		return v
	}
	lookup, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	defer cancel()
	var v error
	name, err := s.js.StreamNameBySubject(lookup, subject)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		v = sink.Permanent(fmt.Errorf("natsjs: no JetStream stream captures subject %q; add it to a stream's subjects (stream %q is configured with %q) or fix the route's destination: %w",
			subject, s.cfg.Stream, s.cfg.Subjects, cause))
	case err != nil:
		v = sink.Transient(fmt.Errorf("natsjs: JetStream did not answer for subject %q, and looking up its stream failed: %w", subject, sink.RedactError(err, s.conn.secrets)))
	default:
		v = sink.Transient(fmt.Errorf("natsjs: stream %q captures subject %q but did not answer; JetStream may be unavailable: %w", name, subject, cause))
	}
	verdicts[subject] = v
	return v
}
