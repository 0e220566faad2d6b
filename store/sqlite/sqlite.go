// Package sqlite is the SQLite Store (modernc.org/sqlite, pure Go). It serves the
// embedded default and small deployments. Writes are serialised by BEGIN IMMEDIATE, so
// several relays on one file are safe, if pointless.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

// Config configures the SQLite store.
type Config struct {
	// Path is the database file. Required; it must already exist (Django creates it).
	Path string
	// BusyTimeout is how long a writer waits for the lock. Default 5s.
	BusyTimeout time.Duration
}

// Store is a store.Store on SQLite.
type Store struct {
	db   *sql.DB
	path string
}

var _ store.Store = (*Store)(nil)

// ParseURL turns sqlite:///relative.db, sqlite:////abs/path.db or sqlite:path into a path,
// following the dj-database-url and SQLAlchemy convention.
func ParseURL(raw string) (string, error) {
	rest, ok := strings.CutPrefix(raw, "sqlite:")
	if !ok {
		return "", fmt.Errorf("conveyor: %q is not a sqlite URL; use sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3", raw)
	}
	if p, ok := strings.CutPrefix(rest, "//"); ok {
		u, err := url.Parse("sqlite://" + p)
		if err != nil {
			return "", fmt.Errorf("conveyor: malformed sqlite URL %q: %w", raw, err)
		}
		if u.Host != "" {
			return "", fmt.Errorf("conveyor: sqlite URL %q has a host; use three slashes for a relative path (sqlite:///db.sqlite3) or four for an absolute one", raw)
		}
		rest = strings.TrimPrefix(u.Path, "/")
	}
	if rest == "" {
		return "", fmt.Errorf("conveyor: sqlite URL %q names no file", raw)
	}
	return rest, nil
}

// Open opens an existing database file.
func Open(ctx context.Context, c Config) (*Store, error) {
	if c.Path == "" {
		return nil, errors.New("conveyor: sqlite path is empty")
	}
	if _, err := os.Stat(c.Path); err != nil {
		return nil, fmt.Errorf("conveyor: sqlite database %s not found; create it with `python manage.py migrate`: %w", c.Path, err)
	}
	busy := c.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	dsn := fmt.Sprintf("file:%s?_txlock=immediate&_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)",
		c.Path, busy.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("conveyor: open sqlite %s: %w", c.Path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("conveyor: open sqlite %s: %w", c.Path, err)
	}
	return &Store{db: db, path: c.Path}, nil
}

// DB exposes the handle for tests and tools in this module.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// SupportsListenNotify is false: SQLite has no notifications; the relay polls.
func (s *Store) SupportsListenNotify() bool { return false }

// Listen returns nil: see SupportsListenNotify.
func (s *Store) Listen(context.Context) (<-chan struct{}, error) { return nil, nil }

// Timestamps are stored as Django writes them: UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
const nowSQL = `strftime('%Y-%m-%d %H:%M:%f', 'now')`

const headsSQL = `
SELECT id, key FROM (
    SELECT e.id, e.key FROM conveyor_event e
      JOIN (SELECT min(id) AS id FROM conveyor_event
             WHERE key IS NOT NULL AND (status = 0 OR blocks_key) GROUP BY key) h ON h.id = e.id
     WHERE e.status = 0 AND e.available_at <= ?1 AND (e.locked_until IS NULL OR e.locked_until < ?1)
    UNION ALL
    SELECT id, key FROM (
        SELECT id, key FROM conveyor_event
         WHERE status = 0 AND key IS NULL AND available_at <= ?1
           AND (locked_until IS NULL OR locked_until < ?1)
         ORDER BY id LIMIT ?2)
) ORDER BY id LIMIT ?2`

const followersSQL = `
SELECT id, available_at <= ?1 AND (locked_until IS NULL OR locked_until < ?1)
  FROM conveyor_event
 WHERE key = ?2 AND status = 0 AND id > ?3
 ORDER BY id LIMIT ?4`

// Claim implements store.Store (see store.Store.Claim for the rules).
func (s *Store) Claim(ctx context.Context, p *store.ClaimParams) (_ []*store.Claimed, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var now string
	if err = tx.QueryRowContext(ctx, `SELECT `+nowSQL).Scan(&now); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	type head struct {
		id  string
		key sql.NullString
	}
	var heads []head
	rows, err := tx.QueryContext(ctx, headsSQL, now, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	for rows.Next() {
		var h head
		if err = rows.Scan(&h.id, &h.key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: claim: %w", err)
		}
		heads = append(heads, h)
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	ids := make([]any, 0, len(heads))
	for _, h := range heads {
		ids = append(ids, h.id)
		if !h.key.Valid || p.PerKey <= 1 {
			continue
		}
		frows, ferr := tx.QueryContext(ctx, followersSQL, now, h.key.String, h.id, p.PerKey-1)
		if ferr != nil {
			err = ferr
			return nil, fmt.Errorf("conveyor: claim followers: %w", err)
		}
		for frows.Next() {
			var id string
			var ok bool
			if err = frows.Scan(&id, &ok); err != nil {
				frows.Close()
				return nil, fmt.Errorf("conveyor: claim followers: %w", err)
			}
			if !ok {
				break
			}
			ids = append(ids, id)
		}
		frows.Close()
	}
	if len(ids) == 0 {
		return nil, tx.Commit()
	}
	q := `UPDATE conveyor_event
   SET locked_by = ?, locked_until = strftime('%Y-%m-%d %H:%M:%f', 'now', ?),
       lease_token = lease_token + 1, attempts = attempts + 1
 WHERE id IN (` + placeholders(len(ids)) + `)
RETURNING id, event_type, source, key, subject, CAST(data AS TEXT), CAST(headers AS TEXT),
          idempotency_key, CAST(created_at AS TEXT), CAST(available_at AS TEXT), attempts, lease_token`
	args := append([]any{p.RelayID, fmt.Sprintf("+%.3f seconds", p.Lease.Seconds())}, ids...)
	urows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	var out []*store.Claimed
	for urows.Next() {
		c, serr := scanClaimed(urows)
		if serr != nil {
			urows.Close()
			err = serr
			return nil, err
		}
		out = append(out, c)
	}
	urows.Close()
	if err = urows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: claim commit: %w", err)
	}
	store.SortClaimed(out)
	return out, nil
}

func scanClaimed(rows *sql.Rows) (*store.Claimed, error) {
	var (
		c                              store.Claimed
		id                             string
		typ, source                    sql.NullString
		key, subject, idem, data, hdrs sql.NullString
		created, available             sql.NullString
	)
	if err := rows.Scan(&id, &typ, &source, &key, &subject, &data, &hdrs, &idem,
		&created, &available, &c.Attempts, &c.LeaseToken); err != nil {
		return nil, fmt.Errorf("conveyor: claim: scan: %w", err)
	}
	var err error
	if c.ID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("conveyor: claim: row id %q is not a uuid: %w", id, err)
	}
	c.Type, c.Source, c.Key, c.Subject, c.IdempotencyKey = typ.String, source.String, key.String, subject.String, idem.String
	c.CreatedAt, _ = ParseTime(created.String)
	c.AvailableAt, _ = ParseTime(available.String)
	c.DecodeErr = store.DecodePayload(&c.Event, nullPtr(data), nullPtr(hdrs))
	return &c, nil
}

func nullPtr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// ParseTime reads a timestamp as Django or SQLite writes it (UTC, no zone).
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("conveyor: cannot parse timestamp %q", s)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// HexID is the form Django's UUIDField stores on SQLite: 32 hex digits, no dashes.
func HexID(id uuid.UUID) string { return hex.EncodeToString(id[:]) }

// Settle implements store.Store.
func (s *Store) Settle(ctx context.Context, p *store.SettleParams) (_ *store.SettleResult, err error) {
	if len(p.Outcomes) == 0 {
		return &store.SettleResult{}, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	stmt, err := tx.PrepareContext(ctx, `
UPDATE conveyor_event
   SET status = CASE ?1 WHEN 0 THEN 1 WHEN 3 THEN 2 ELSE 0 END,
       published_at = CASE WHEN ?1 = 0 THEN `+nowSQL+` ELSE published_at END,
       attempts = CASE WHEN ?1 = 2 THEN max(attempts - 1, 0) ELSE attempts END,
       available_at = CASE WHEN ?1 IN (1, 2) THEN strftime('%Y-%m-%d %H:%M:%f', 'now', ?2) ELSE available_at END,
       last_error = CASE WHEN ?3 <> '' THEN ?3 ELSE last_error END,
       blocks_key = (?1 = 3 AND ?7),
       locked_by = NULL, locked_until = NULL
 WHERE id = ?4 AND status = 0 AND locked_by = ?5 AND lease_token = ?6 AND locked_until > `+nowSQL+`
RETURNING id`)
	if err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	defer stmt.Close()
	var settled []uuid.UUID
	for _, o := range p.Outcomes {
		var got string
		e := stmt.QueryRowContext(ctx, int(o.Kind), fmt.Sprintf("+%.3f seconds", o.Delay.Seconds()),
			store.TruncateError(o.Error), HexID(o.ID), p.RelayID, o.LeaseToken, o.BlockKey).Scan(&got)
		if errors.Is(e, sql.ErrNoRows) {
			continue
		}
		if e != nil {
			err = e
			return nil, fmt.Errorf("conveyor: settle: %w", err)
		}
		settled = append(settled, o.ID)
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: settle commit: %w", err)
	}
	return store.SettleOutcome(p.Outcomes, settled), nil
}

// Check verifies the schema version.
func (s *Store) Check(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'conveyor_event'`).Scan(&n); err != nil {
		return fmt.Errorf("conveyor: sqlite %s: %w", s.path, err)
	}
	if n == 0 {
		return fmt.Errorf("%w (database %s)", conveyor.ErrSchemaMissing, s.path)
	}
	var hasMigrations int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'django_migrations'`).Scan(&hasMigrations); err != nil {
		return fmt.Errorf("conveyor: check schema: %w", err)
	}
	var applied []string
	if hasMigrations > 0 {
		rows, err := s.db.QueryContext(ctx, `SELECT name FROM django_migrations WHERE app = 'conveyor' ORDER BY name`)
		if err != nil {
			return fmt.Errorf("conveyor: check schema: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return fmt.Errorf("conveyor: check schema: %w", err)
			}
			applied = append(applied, name)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("conveyor: check schema: %w", err)
		}
	}
	if err := store.CheckMigrations(applied, hasMigrations > 0); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, store.ColumnProbeSQL); err != nil {
		return fmt.Errorf("conveyor: table conveyor_event does not have the expected columns (%v); run `python manage.py migrate conveyor`", err)
	}
	return nil
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context) (*store.Stats, error) {
	var st store.Stats
	var oldest sql.NullFloat64
	err := s.db.QueryRowContext(ctx, `
SELECT coalesce(sum(status = 0), 0), coalesce(sum(status = 1), 0), coalesce(sum(status = 2), 0),
       coalesce(sum(status = 0 AND locked_until > `+nowSQL+`), 0),
       (julianday('now') - julianday(min(CASE WHEN status = 0 THEN created_at END))) * 86400.0
  FROM conveyor_event`).Scan(&st.Pending, &st.Published, &st.Dead, &st.InFlight, &oldest)
	if err != nil {
		return nil, fmt.Errorf("conveyor: stats: %w", err)
	}
	if oldest.Valid {
		st.OldestPending = time.Duration(oldest.Float64 * float64(time.Second))
	}
	return &st, nil
}

// Backlog implements store.Store.
func (s *Store) Backlog(ctx context.Context) (*store.Backlog, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT event_type, count(*), (julianday('now') - julianday(min(created_at))) * 86400.0
  FROM (SELECT event_type, created_at FROM conveyor_event WHERE status = 0 LIMIT ?)
 GROUP BY event_type`, store.BacklogScanLimit+1)
	if err != nil {
		return nil, fmt.Errorf("conveyor: backlog: %w", err)
	}
	defer rows.Close()
	return store.ScanBacklog(rows)
}
