// Package outbox records events from Go code into the conveyor_event table, inside the
// caller's own transaction, exactly as django-conveyor's publish() does. Use it from Go
// services that share the database, and in tests.
package outbox

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Dialect selects the SQL flavour of the table.
type Dialect int

const (
	// Postgres stores ids as uuid and uses $n placeholders.
	Postgres Dialect = iota
	// SQLite stores ids as 32 hex digits, as Django's UUIDField does there.
	SQLite
	// MySQL is MySQL 8 and MariaDB: ids go in as 32 hex digits, which Django's char(32)
	// UUIDField (MySQL) and MariaDB's native uuid type (Django on MariaDB 10.7+) both
	// accept; `key` is quoted, as it is a reserved word there.
	MySQL
)

// Event is one event to record. Type and Source are required; Data must be JSON.
type Event struct {
	// ID defaults to a new UUIDv7.
	ID      uuid.UUID
	Type    string
	Source  string
	Key     string
	Subject string
	// Data is the payload. A json.RawMessage or []byte is stored as is (it must be valid
	// JSON); anything else is encoded with encoding/json.
	Data           any
	Headers        map[string]string
	IdempotencyKey string
	// DeliverAt, if set, is the earliest delivery time.
	DeliverAt time.Time
}

// Execer is satisfied by *sql.DB, *sql.Tx and *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Insert writes events with one multi-row INSERT and returns their ids. Call it inside
// the transaction that makes the business change.
func Insert(ctx context.Context, db Execer, d Dialect, events ...*Event) ([]uuid.UUID, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var b strings.Builder
	keyCol := "key"
	if d == MySQL {
		keyCol = "`key`"
	}
	b.WriteString(`INSERT INTO conveyor_event (id, event_type, source, ` + keyCol + `, subject, data, headers, idempotency_key, available_at) VALUES `)
	args := make([]any, 0, len(events)*9)
	ids := make([]uuid.UUID, len(events))
	for i, ev := range events {
		row, id, err := values(ev, d)
		if err != nil {
			return nil, fmt.Errorf("outbox: event %d (%s): %w", i, ev.Type, err)
		}
		ids[i] = id
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for j := range row {
			if j > 0 {
				b.WriteString(", ")
			}
			n := len(args) + 1
			ph := "?"
			if d == Postgres {
				ph = fmt.Sprintf("$%d", n)
			}
			if j == len(row)-1 { // available_at falls back to the database clock
				switch d {
				case Postgres:
					ph = fmt.Sprintf("coalesce($%d::timestamptz, statement_timestamp())", n)
				case MySQL:
					ph = "coalesce(?, UTC_TIMESTAMP(6))"
				default:
					ph = "coalesce(?, strftime('%Y-%m-%d %H:%M:%f', 'now'))"
				}
			}
			b.WriteString(ph)
			args = append(args, row[j])
		}
		b.WriteString(")")
	}
	if _, err := db.ExecContext(ctx, b.String(), args...); err != nil {
		return nil, fmt.Errorf("outbox: insert: %w", err)
	}
	return ids, nil
}

func values(ev *Event, d Dialect) ([]any, uuid.UUID, error) {
	if ev.Type == "" {
		return nil, uuid.Nil, errors.New("event type is empty")
	}
	if ev.Source == "" {
		return nil, uuid.Nil, errors.New("source is empty")
	}
	id := ev.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return nil, uuid.Nil, err
		}
	}
	var data []byte
	switch v := ev.Data.(type) {
	case json.RawMessage:
		data = v
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			return nil, uuid.Nil, fmt.Errorf("data is not JSON-serializable: %w", err)
		}
	}
	if !json.Valid(data) {
		return nil, uuid.Nil, errors.New("data is not valid JSON")
	}
	headers := ev.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	hb, err := json.Marshal(headers)
	if err != nil {
		return nil, uuid.Nil, err
	}
	var idv any = id
	if d == SQLite || d == MySQL {
		idv = hex.EncodeToString(id[:])
	}
	var avail any
	if !ev.DeliverAt.IsZero() {
		switch d {
		case SQLite, MySQL: // naive UTC, as Django stores it with USE_TZ
			avail = ev.DeliverAt.UTC().Format("2006-01-02 15:04:05.000000")
		default:
			avail = ev.DeliverAt
		}
	}
	return []any{idv, ev.Type, ev.Source, nullable(ev.Key), nullable(ev.Subject), string(data),
		string(hb), nullable(ev.IdempotencyKey), avail}, id, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
