package mqtt

import (
	"context"
	"errors"
	"fmt"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/conveyorhq/conveyor/sink"
)

// PUBACK reason codes (MQTT 5, section 3.4.2.1) that decide a classification.
const (
	reasonNotAuthorized      = 0x87
	reasonTopicNameInvalid   = 0x90
	reasonPacketIDInUse      = 0x91
	reasonPacketTooLarge     = 0x95
	reasonQuotaExceeded      = 0x97
	reasonPayloadFormatError = 0x99
)

// reasonKind classifies a PUBACK reason code of 0x80 or more: what no retry fixes is
// permanent, a full quota is the broker's condition, the rest is the message's.
func reasonKind(code byte) sink.Kind {
	switch code {
	case reasonNotAuthorized, reasonTopicNameInvalid, reasonPacketTooLarge, reasonPayloadFormatError:
		return sink.KindPermanent
	case reasonQuotaExceeded:
		return sink.KindTransient
	}
	return sink.KindMessage
}

// classify turns a failed publish of m into a sink error (G5).
func (s *Sink) classify(m *sink.Message, resp *paho.PublishResponse, err error) error {
	err = s.redact(err)
	id := m.Event.ID
	if resp != nil && resp.ReasonCode >= 0x80 {
		reason := fmt.Sprintf("reason code 0x%02X", resp.ReasonCode)
		if resp.Properties != nil && resp.Properties.ReasonString != "" {
			reason += " (" + resp.Properties.ReasonString + ")"
		}
		e := fmt.Errorf("mqtt: the broker refused event %s on topic %q: %s: %w", id, m.Destination, reason, err)
		switch reasonKind(resp.ReasonCode) {
		case sink.KindPermanent:
			return sink.Permanent(e)
		case sink.KindTransient:
			return sink.Transient(e)
		}
		return e
	}
	switch {
	case errors.Is(err, autopaho.ConnectionDownError):
		return sink.Transient(fmt.Errorf("mqtt: not connected to %s: %w", s.url, s.downReason(err)))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return sink.Transient(fmt.Errorf("mqtt: no PUBACK for event %s from %s within %s (publish_timeout): %w", id, s.url, s.cfg.PublishTimeout, err))
	case errors.Is(err, paho.ErrInvalidArguments):
		return sink.Permanent(fmt.Errorf("mqtt: event %s cannot be published to topic %q: %w", id, m.Destination, err))
	}
	// Connection lost or the client shutting down while waiting: an outage.
	return sink.Transient(fmt.Errorf("mqtt: publish of event %s to %s failed: %w", id, s.url, err))
}

// downReason adds the last connection failure, if any, to a connection-down error.
func (s *Sink) downReason(err error) error {
	s.mu.Lock()
	last := s.connectErr
	s.mu.Unlock()
	if last == nil {
		return err
	}
	return fmt.Errorf("%w (last attempt: %w)", err, last)
}
