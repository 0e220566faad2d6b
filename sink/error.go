package sink

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a publish failure; each kind has its own response (G5).
type Kind int

const (
	// KindMessage is a failure of this message: retried with backoff, using an attempt.
	KindMessage Kind = iota
	// KindTransient is a destination outage: it opens the circuit and uses no attempt.
	KindTransient
	// KindPermanent is a rejection that retrying cannot fix: the event goes dead at once.
	KindPermanent
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindPermanent:
		return "permanent"
	}
	return "message"
}

// Error carries a classified publish failure.
type Error struct {
	Kind Kind
	// RetryAfter, when set, is the broker's requested delay before the next attempt.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Kind, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Transient marks err as a destination outage.
func Transient(err error) error { return &Error{Kind: KindTransient, Err: err} }

// Permanent marks err as a permanent rejection of the message.
func Permanent(err error) error { return &Error{Kind: KindPermanent, Err: err} }

// Retry marks err as a message-level failure to retry after at least d.
func Retry(err error, d time.Duration) error {
	return &Error{Kind: KindMessage, RetryAfter: d, Err: err}
}

// KindOf returns the classification of err; unclassified errors are message-level.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindMessage
}

// RetryAfterOf returns the broker-requested retry delay carried by err, if any.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
