// Package conveyor holds the types shared by the relay, the stores and the sinks: the
// outbox event as the relay sees it, its status, and the package's sentinel errors.
//
// The table behind these types is defined by the Django migrations in python/ and
// documented in docs/contract.md.
package conveyor

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// Status is a row's state, stored as a small integer.
type Status int16

// The row states; the numbers are part of the schema contract.
const (
	StatusPending   Status = 0
	StatusPublished Status = 1
	StatusDead      Status = 2
)

func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusPublished:
		return "published"
	case StatusDead:
		return "dead"
	}
	return "unknown"
}

// Event is one outbox row as the relay publishes it.
type Event struct {
	ID      uuid.UUID
	Type    string
	Source  string
	Key     string // ordering key; empty means unordered
	Subject string
	// Data is the payload exactly as stored: a JSON document.
	Data []byte
	// Headers are the event's string headers (traceparent, correlation id, user headers).
	Headers        map[string]string
	IdempotencyKey string
	CreatedAt      time.Time
	AvailableAt    time.Time
	// Attempts counts delivery attempts started, including the current one.
	Attempts int
}

// Sentinel errors. Each message says what to do about it.
var (
	// ErrLeaseLost means a settle was refused because the row's lease expired or was
	// taken by another relay; the broker may now hold a duplicate (G4).
	ErrLeaseLost = errors.New("conveyor: lease lost")
	// ErrSchemaMissing means the outbox table does not exist.
	ErrSchemaMissing = errors.New("conveyor: outbox table conveyor_event not found; run `python manage.py migrate conveyor`")
	// ErrSchemaUnknown means the database has conveyor migrations this relay does not know.
	ErrSchemaUnknown = errors.New("conveyor: schema version unknown to this relay")
)
