// Package store is the relay's one seam to the database. Every method takes a params
// struct and returns a result, so drivers (postgres, sqlite) can grow without breaking
// callers; storetest runs one conformance suite against each driver.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
)

// Store claims, settles and inspects outbox rows.
//
// All times that matter for correctness (lease expiry, available_at) come from the
// database clock, never the relay's.
type Store interface {
	// Claim leases up to Limit claimable events to RelayID for Lease. An event is claimable
	// when it is pending, available, unleased (or its lease expired), and it is the oldest
	// pending event of its key or has no key. It may also return up to PerKey consecutive
	// events of one key; those come back in id order, and the caller must publish them one
	// after another. Claim increments attempts and the fencing token of every row.
	Claim(ctx context.Context, p *ClaimParams) ([]*Claimed, error)
	// Settle applies outcomes with a fenced write: a row whose lease token no longer
	// matches, or whose lease expired, is left alone and reported in LeaseLost.
	Settle(ctx context.Context, p *SettleParams) (*SettleResult, error)
	// Check verifies the connection and that the schema is one this relay knows.
	Check(ctx context.Context) error
	// Stats returns counts by status and the age of the oldest pending event.
	Stats(ctx context.Context) (*Stats, error)
	// Backlog is the cheap, bounded summary metrics poll on a timer: pending events by
	// event type (at most BacklogScanLimit rows are counted) and the oldest one's age.
	Backlog(ctx context.Context) (*Backlog, error)
	// SupportsListenNotify reports whether Listen can deliver commit wake-ups.
	SupportsListenNotify() bool
	// Listen delivers a value shortly after a transaction that inserted events commits.
	// The channel closes when ctx ends. Drivers without notifications return nil, nil.
	Listen(ctx context.Context) (<-chan struct{}, error)
	// Close releases the connection pool.
	Close() error
}

// ClaimParams are the arguments of Store.Claim.
type ClaimParams struct {
	RelayID string
	Limit   int
	Lease   time.Duration
	// PerKey is the most consecutive events of one key to claim at once (at least 1).
	PerKey int
}

// Claimed is a leased row.
type Claimed struct {
	conveyor.Event
	// LeaseToken is the fencing token this claim set; Settle must present it.
	LeaseToken int64
	// DecodeErr is set when the row holds data the relay cannot publish (invalid JSON,
	// empty event_type, ...); the relay dead-letters such rows.
	DecodeErr error
}

// OutcomeKind says how to settle one row.
type OutcomeKind int

const (
	// OutcomePublished marks the row published.
	OutcomePublished OutcomeKind = iota
	// OutcomeRetry keeps the row pending, available again after Delay; the attempt counts.
	OutcomeRetry
	// OutcomeRelease gives the row back without using an attempt (outage, shutdown,
	// or an earlier event of its key failed), available again after Delay.
	OutcomeRelease
	// OutcomeDead marks the row dead with Error.
	OutcomeDead
)

// Outcome is the result for one claimed row.
type Outcome struct {
	ID         uuid.UUID
	LeaseToken int64
	Kind       OutcomeKind
	Delay      time.Duration
	Error      string
	// BlockKey, for OutcomeDead, makes the dead event hold its key: later events of the
	// key wait until an operator retries or discards it (on_dead: block).
	BlockKey bool
}

// SettleParams are the arguments of Store.Settle.
type SettleParams struct {
	RelayID  string
	Outcomes []Outcome
}

// SettleResult reports which rows could not be settled because the lease was lost.
type SettleResult struct {
	Settled   int
	LeaseLost []uuid.UUID
}

// Stats is a cheap summary of the table.
type Stats struct {
	Pending, Published, Dead int64
	// InFlight counts pending rows under an unexpired lease.
	InFlight int64
	// OldestPending is the age of the oldest pending event; zero when none.
	OldestPending time.Duration
}

// BacklogScanLimit bounds the pending rows a Backlog call counts, so a huge backlog
// costs a bounded scan; Backlog.Truncated says when the count stopped there.
const BacklogScanLimit = 100000

// Backlog summarises pending events.
type Backlog struct {
	// ByType counts pending events per event_type.
	ByType map[string]int64
	// OldestByType is the age of the oldest pending event per event_type.
	OldestByType map[string]time.Duration
	// Truncated is true when more than BacklogScanLimit events are pending.
	Truncated bool
}

// BacklogRows is what both drivers' query results offer (pgx.Rows, *sql.Rows).
type BacklogRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanBacklog reads rows of (event_type, count, oldest age in seconds) into a Backlog.
func ScanBacklog(rows BacklogRows) (*Backlog, error) {
	b := &Backlog{ByType: map[string]int64{}, OldestByType: map[string]time.Duration{}}
	var total int64
	for rows.Next() {
		var typ string
		var n int64
		var age float64
		if err := rows.Scan(&typ, &n, &age); err != nil {
			return nil, fmt.Errorf("conveyor: backlog: %w", err)
		}
		b.ByType[typ], b.OldestByType[typ] = n, time.Duration(age*float64(time.Second))
		total += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: backlog: %w", err)
	}
	b.Truncated = total > BacklogScanLimit
	return b, nil
}
