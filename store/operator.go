package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
)

// Operator is the operator's seam to the outbox: inspect events, retry or discard dead
// ones, replay published ones and purge old ones. Every change is written together with
// its conveyor_audit rows in one transaction. Both drivers implement it; it is separate
// from Store so the relay's seam stays small.
//
// Changes work on one batch per call, in id order, each call its own transaction: a
// caller loops with AfterID = the previous result's LastID until More is false, and an
// interruption between calls leaves every batch either fully applied (rows and audit)
// or untouched.
type Operator interface {
	// ListEvents returns events matching the filter in id order, after AfterID.
	ListEvents(ctx context.Context, p *ListEventsParams) ([]*EventRow, error)
	// CountEvents counts events matching the filter and reports the id range.
	CountEvents(ctx context.Context, p *ListEventsParams) (*CountResult, error)
	// GetEvent returns one event with every column and its audit trail, or ErrNotFound.
	GetEvent(ctx context.Context, p *GetEventParams) (*EventDetail, error)
	// RetryDead makes dead, not discarded events pending again: attempts 0, available
	// now, no lease, no longer blocking their key; last_error is kept. Ids are time
	// ordered, so a retried event is again the oldest pending event of its key.
	RetryDead(ctx context.Context, p *ChangeParams) (*ChangeResult, error)
	// DiscardDead marks dead, not discarded events discarded and stops them blocking
	// their key. The rows stay in the table.
	DiscardDead(ctx context.Context, p *ChangeParams) (*ChangeResult, error)
	// Replay makes published events pending again with their original ids, so the relay
	// publishes them once more and consumers can drop the duplicates by id.
	Replay(ctx context.Context, p *ChangeParams) (*ChangeResult, error)
	// Purge deletes published events published before now - PublishedOlderThan and, when
	// DeadOlderThan is set, dead events created before now - DeadOlderThan. It never
	// deletes a pending event. It writes one audit row per batch.
	Purge(ctx context.Context, p *PurgeParams) (*PurgeResult, error)
	// Overview counts events by event_type and status and lists the relays holding
	// leases, for `conveyor status`.
	Overview(ctx context.Context) (*Overview, error)
}

// ErrNotFound means no event has the requested id.
var ErrNotFound = errors.New("conveyor: event not found")

// Audit actions written to conveyor_audit.action.
const (
	ActionRetry   = "retry"
	ActionDiscard = "discard"
	ActionReplay  = "replay"
	ActionPurge   = "purge"
)

// Batch sizes.
const (
	// DefaultChangeBatch is the batch of RetryDead, DiscardDead and Replay.
	DefaultChangeBatch = 500
	// DefaultPurgeBatch is the batch of Purge: short transactions, short locks.
	DefaultPurgeBatch = 1000
	// MaxBatch bounds every batch and list.
	MaxBatch = 10000
	// DefaultListLimit is the page size of ListEvents.
	DefaultListLimit = 100
)

// Filter selects events. Zero fields match everything; set fields are ANDed.
type Filter struct {
	// IDs selects these events only.
	IDs []uuid.UUID
	// Type is a glob on event_type: * matches any run of characters, ? one character,
	// everything else itself (case-sensitive).
	Type string
	// Key is the exact ordering key.
	Key string
	// Since and Until bound created_at: Since <= created_at < Until.
	Since, Until time.Time
	// Error is a case-insensitive substring of last_error.
	Error string
}

// String describes the filter for audit rows and messages, in the CLI's flag syntax.
func (f Filter) String() string {
	var parts []string
	if n := len(f.IDs); n == 1 {
		parts = append(parts, "--id "+f.IDs[0].String())
	} else if n > 1 {
		parts = append(parts, fmt.Sprintf("--id (%d ids)", n))
	}
	if f.Type != "" {
		parts = append(parts, "--type "+quote(f.Type))
	}
	if f.Key != "" {
		parts = append(parts, "--key "+quote(f.Key))
	}
	if !f.Since.IsZero() {
		parts = append(parts, "--since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "--until "+f.Until.UTC().Format(time.RFC3339))
	}
	if f.Error != "" {
		parts = append(parts, "--error "+quote(f.Error))
	}
	if len(parts) == 0 {
		return "(all)"
	}
	return strings.Join(parts, " ")
}

func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'*?\\") {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// GlobToLike translates a Filter.Type glob into a LIKE pattern with \ as the escape.
func GlobToLike(glob string) string { return GlobToLikeEscape(glob, '\\') }

// GlobToLikeEscape translates a Filter.Type glob into a LIKE pattern that escapes LIKE's
// wildcards and the escape character itself with escape.
func GlobToLikeEscape(glob string, escape rune) string {
	var b strings.Builder
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', escape:
			b.WriteRune(escape)
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ListEventsParams are the arguments of ListEvents and CountEvents.
type ListEventsParams struct {
	Filter Filter
	// Statuses selects these statuses; empty means any.
	Statuses []conveyor.Status
	// IncludeDiscarded also returns discarded dead events; by default they are hidden.
	IncludeDiscarded bool
	// AfterID returns only events with a larger id (paging); zero means from the start.
	AfterID uuid.UUID
	// Limit is the page size. Default DefaultListLimit, at most MaxBatch. Ignored by
	// CountEvents.
	Limit int
}

// CountResult is the result of CountEvents.
type CountResult struct {
	Count int64
	// FirstID and LastID are the smallest and largest matching ids; zero when none.
	FirstID, LastID uuid.UUID
}

// EventRow is one outbox row with every column.
type EventRow struct {
	conveyor.Event
	Status conveyor.Status
	// RawData and RawHeaders are the stored JSON text (Data and Headers are filled when
	// they decode).
	RawData, RawHeaders string
	LastError           string
	PublishedAt         time.Time // zero when NULL
	LockedBy            string
	LockedUntil         time.Time // zero when NULL
	LeaseToken          int64
	BlocksKey           bool
	DiscardedAt         time.Time // zero when NULL
}

// GetEventParams are the arguments of GetEvent.
type GetEventParams struct {
	ID uuid.UUID
}

// EventDetail is one event with its audit trail, oldest entry first.
type EventDetail struct {
	Event *EventRow
	Audit []AuditEntry
}

// AuditEntry is one conveyor_audit row.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string
	Action string
	// EventID is zero for actions on many rows (purge).
	EventID uuid.UUID
	Detail  string
}

// ChangeParams are the arguments of RetryDead, DiscardDead and Replay.
type ChangeParams struct {
	Filter Filter
	// AfterID changes only events with a larger id; zero means from the start.
	AfterID uuid.UUID
	// ThroughID, when set, changes only events with an id up to and including it, so a
	// long run does not chase events that arrive while it works.
	ThroughID uuid.UUID
	// Limit is the batch size. Default DefaultChangeBatch, at most MaxBatch.
	Limit int
	// Actor is who acts (conveyor_audit.actor). Required.
	Actor string
	// Detail is written to every audit row: the filter used and the reason.
	Detail string
}

// ChangeResult reports one batch.
type ChangeResult struct {
	// IDs are the changed events, in id order.
	IDs []uuid.UUID
	// LastID is the largest id this batch looked at: pass it as the next AfterID.
	LastID uuid.UUID
	// More is true when the batch was full, so there may be more to do.
	More bool
}

// PurgeParams are the arguments of Purge.
type PurgeParams struct {
	// PublishedOlderThan deletes published events with published_at < now - it
	// (database clock). Zero leaves published events alone.
	PublishedOlderThan time.Duration
	// DeadOlderThan deletes dead events, discarded or not, with created_at < now - it.
	// Zero leaves dead events alone.
	DeadOlderThan time.Duration
	// AfterID deletes only events with a larger id; zero means from the start.
	AfterID uuid.UUID
	// Limit is the batch size: how many rows, in id order, one batch looks at. Default
	// DefaultPurgeBatch, at most MaxBatch.
	Limit int
	// Actor is who acts (conveyor_audit.actor). Required.
	Actor string
	// Detail starts the batch's audit row, before the counts and cutoffs.
	Detail string
	// DryRun counts every row the purge would delete (from AfterID on, ignoring Limit)
	// and deletes nothing.
	DryRun bool
}

// PurgeResult reports one batch.
type PurgeResult struct {
	// Published and Dead count the deleted rows.
	Published, Dead int64
	// LastID is the largest id this batch looked at: pass it as the next AfterID.
	LastID uuid.UUID
	// More is true when rows past LastID may still be old enough: the batch looked at
	// Limit rows without reaching a young one (see PurgeWalkEnd).
	More bool
}

// PurgeClockMargin is how far the clocks that made the ids (the writers') may run ahead
// of the database clock before a purge walk stops too early (see PurgeWalkEnd).
const PurgeClockMargin = time.Hour

// PurgeYoungAge is the age under which a row created that recently ends a purge walk:
// the smaller retention less PurgeClockMargin. Zero or negative: no row ends it.
func PurgeYoungAge(p *PurgeParams) time.Duration {
	age := p.PublishedOlderThan
	if p.DeadOlderThan > 0 && (age <= 0 || p.DeadOlderThan < age) {
		age = p.DeadOlderThan
	}
	return age - PurgeClockMargin
}

// PurgeRow is one row of a purge batch's window, in id order.
type PurgeRow struct {
	ID uuid.UUID
	// Eligible: old enough to delete now (published or dead past its cutoff).
	Eligible bool
	// Young: created within PurgeYoungAge.
	Young bool
}

// ScanPurgeWindow reads a purge window from database/sql rows of (id as text, eligible,
// young) and closes them.
func ScanPurgeWindow(rows *sql.Rows) ([]PurgeRow, error) {
	defer rows.Close()
	var window []PurgeRow
	for rows.Next() {
		var raw string
		var pr PurgeRow
		if err := rows.Scan(&raw, &pr.Eligible, &pr.Young); err != nil {
			return nil, err
		}
		id, err := uuid.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("row id %q is not a uuid: %w", raw, err)
		}
		pr.ID = id
		window = append(window, pr)
	}
	return window, rows.Err()
}

// PurgeWalkEnd picks a purge batch from a window of at most limit rows read in id order
// after the previous batch: the eligible rows before the first young row. Ids are UUIDv7
// (docs/contract.md), so the rows after a young row are younger still (give or take
// PurgeClockMargin): nothing past it can be old enough, and the walk ends there instead of
// reading the rest of the table on every janitor run. A row whose id is out of time order
// is not lost: it is purged by a later run, once the young row has aged too.
func PurgeWalkEnd(window []PurgeRow, limit int) (picked []uuid.UUID, last uuid.UUID, more bool) {
	for _, r := range window {
		if r.Young {
			return picked, last, false
		}
		last = r.ID
		if r.Eligible {
			picked = append(picked, r.ID)
		}
	}
	return picked, last, len(window) >= limit
}

// Deleted is Published + Dead.
func (r *PurgeResult) Deleted() int64 { return r.Published + r.Dead }

// PurgeDetail is the audit detail of one purge batch; both drivers write it.
func PurgeDetail(prefix string, r *PurgeResult, publishedCutoff, deadCutoff time.Time) string {
	var b strings.Builder
	if prefix != "" {
		b.WriteString(prefix)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "deleted %d rows", r.Deleted())
	if !publishedCutoff.IsZero() {
		fmt.Fprintf(&b, "; %d published before %s", r.Published, publishedCutoff.UTC().Format(time.RFC3339))
	}
	if !deadCutoff.IsZero() {
		fmt.Fprintf(&b, "; %d dead created before %s", r.Dead, deadCutoff.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Overview summarises the table for `conveyor status`.
type Overview struct {
	// ByType has one entry per event_type, sorted by type.
	ByType []TypeCounts
	// Leases lists the relays holding unexpired leases, sorted by relay id.
	Leases []LeaseHolder
	// BlockedKeys counts keys held by a dead event (on_dead: block).
	BlockedKeys int64
}

// TypeCounts are the counts of one event_type.
type TypeCounts struct {
	EventType string
	Pending   int64
	InFlight  int64 // pending under an unexpired lease
	Published int64
	Dead      int64 // dead and not discarded
	Discarded int64
	// OldestPending is the age of the oldest pending event of the type; zero when none.
	OldestPending time.Duration
}

// LeaseHolder is a relay holding leases.
type LeaseHolder struct {
	RelayID string
	Events  int64
	// Until is the latest lease expiry of the relay.
	Until time.Time
}

// ClampLimit applies a default and MaxBatch to a batch size or page size.
func ClampLimit(n, def int) int {
	if n <= 0 {
		return def
	}
	return min(n, MaxBatch)
}

// CheckActor rejects an empty actor: every change must say who made it.
func CheckActor(actor string) error {
	if strings.TrimSpace(actor) == "" {
		return errors.New("conveyor: actor is required for operator actions (conveyor_audit.actor)")
	}
	return nil
}

// MaxActorLen is the width of conveyor_audit.actor.
const MaxActorLen = 255

// TruncateActor bounds an actor to the column width.
func TruncateActor(s string) string {
	if len(s) <= MaxActorLen {
		return s
	}
	return s[:MaxActorLen]
}

// SortIDs orders ids as the table does (byte order, which is time order for UUIDv7).
func SortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}
