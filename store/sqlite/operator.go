package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

var _ store.Operator = (*Store)(nil)

// query builds a WHERE clause with ? placeholders.
type query struct {
	conds []string
	args  []any
}

func (q *query) where(cond string, args ...any) {
	q.conds = append(q.conds, cond)
	q.args = append(q.args, args...)
}

func (q *query) sql() string {
	if len(q.conds) == 0 {
		return "1"
	}
	return strings.Join(q.conds, " AND ")
}

// sqlTime formats a time as Django stores it on SQLite.
func sqlTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

// globPattern turns a Filter.Type glob into a GLOB pattern: * and ? keep their meaning,
// a [ is matched literally.
func globPattern(g string) string { return strings.ReplaceAll(g, "[", "[[]") }

func (q *query) filter(f *store.Filter) {
	if len(f.IDs) > 0 {
		args := make([]any, len(f.IDs))
		for i, id := range f.IDs {
			args[i] = HexID(id)
		}
		q.where("id IN ("+placeholders(len(args))+")", args...)
	}
	if f.Type != "" {
		if strings.ContainsAny(f.Type, "*?") {
			q.where("event_type GLOB ?", globPattern(f.Type)) // GLOB is case-sensitive, LIKE is not
		} else {
			q.where("event_type = ?", f.Type)
		}
	}
	if f.Key != "" {
		q.where("key = ?", f.Key)
	}
	if !f.Since.IsZero() {
		q.where("julianday(created_at) >= julianday(?)", sqlTime(f.Since))
	}
	if !f.Until.IsZero() {
		q.where("julianday(created_at) < julianday(?)", sqlTime(f.Until))
	}
	if f.Error != "" {
		q.where("instr(lower(last_error), lower(?)) > 0", f.Error)
	}
}

func (q *query) list(p *store.ListEventsParams) {
	q.filter(&p.Filter)
	if len(p.Statuses) > 0 {
		args := make([]any, len(p.Statuses))
		for i, s := range p.Statuses {
			args[i] = int(s)
		}
		q.where("status IN ("+placeholders(len(args))+")", args...)
	}
	if !p.IncludeDiscarded {
		q.where("discarded_at IS NULL")
	}
}

const rowColumns = `id, event_type, source, key, subject, CAST(data AS TEXT), CAST(headers AS TEXT),
idempotency_key, CAST(created_at AS TEXT), CAST(available_at AS TEXT), status, attempts, last_error,
CAST(published_at AS TEXT), locked_by, CAST(locked_until AS TEXT), lease_token, blocks_key,
CAST(discarded_at AS TEXT)`

type scanner interface{ Scan(dest ...any) error }

func scanRow(row scanner) (*store.EventRow, error) {
	var (
		r                                                           store.EventRow
		id                                                          string
		typ, source, key, subject, data, hdrs, idem, lerr, lockedBy sql.NullString
		created, available, published, lockedUntil, discarded       sql.NullString
		status                                                      int
	)
	if err := row.Scan(&id, &typ, &source, &key, &subject, &data, &hdrs, &idem, &created, &available,
		&status, &r.Attempts, &lerr, &published, &lockedBy, &lockedUntil, &r.LeaseToken, &r.BlocksKey, &discarded); err != nil {
		return nil, err
	}
	var err error
	if r.ID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("row id %q is not a uuid: %w", id, err)
	}
	r.Status = conveyor.Status(status)
	r.Type, r.Source, r.Key, r.Subject, r.IdempotencyKey = typ.String, source.String, key.String, subject.String, idem.String
	r.RawData, r.RawHeaders, r.LastError, r.LockedBy = data.String, hdrs.String, lerr.String, lockedBy.String
	r.CreatedAt = parseNull(created)
	r.AvailableAt = parseNull(available)
	r.PublishedAt, r.LockedUntil, r.DiscardedAt = parseNull(published), parseNull(lockedUntil), parseNull(discarded)
	_ = store.DecodePayload(&r.Event, nullPtr(data), nullPtr(hdrs)) // a bad row is still shown, raw
	return &r, nil
}

func parseNull(s sql.NullString) time.Time {
	if !s.Valid {
		return time.Time{}
	}
	t, _ := ParseTime(s.String)
	return t
}

// ListEvents implements store.Operator.
func (s *Store) ListEvents(ctx context.Context, p *store.ListEventsParams) ([]*store.EventRow, error) {
	var q query
	q.list(p)
	q.where("id > ?", HexID(p.AfterID))
	q.args = append(q.args, store.ClampLimit(p.Limit, store.DefaultListLimit))
	rows, err := s.db.QueryContext(ctx, `SELECT `+rowColumns+` FROM conveyor_event WHERE `+q.sql()+` ORDER BY id LIMIT ?`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: list events: %w", err)
	}
	defer rows.Close()
	var out []*store.EventRow
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("conveyor: list events: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: list events: %w", err)
	}
	return out, nil
}

// CountEvents implements store.Operator.
func (s *Store) CountEvents(ctx context.Context, p *store.ListEventsParams) (*store.CountResult, error) {
	var q query
	q.list(p)
	q.where("id > ?", HexID(p.AfterID))
	var res store.CountResult
	var first, last sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT count(*), min(id), max(id) FROM conveyor_event WHERE `+q.sql(), q.args...).
		Scan(&res.Count, &first, &last)
	if err != nil {
		return nil, fmt.Errorf("conveyor: count events: %w", err)
	}
	if first.Valid {
		if res.FirstID, err = uuid.Parse(first.String); err != nil {
			return nil, fmt.Errorf("conveyor: count events: %w", err)
		}
		if res.LastID, err = uuid.Parse(last.String); err != nil {
			return nil, fmt.Errorf("conveyor: count events: %w", err)
		}
	}
	return &res, nil
}

// GetEvent implements store.Operator.
func (s *Store) GetEvent(ctx context.Context, p *store.GetEventParams) (*store.EventDetail, error) {
	r, err := scanRow(s.db.QueryRowContext(ctx, `SELECT `+rowColumns+` FROM conveyor_event WHERE id = ?`, HexID(p.ID)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", store.ErrNotFound, p.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("conveyor: get event: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, CAST(at AS TEXT), actor, action, event, detail FROM conveyor_audit WHERE event = ? ORDER BY id`, HexID(p.ID))
	if err != nil {
		return nil, fmt.Errorf("conveyor: get event audit: %w", err)
	}
	defer rows.Close()
	d := &store.EventDetail{Event: r}
	for rows.Next() {
		var a store.AuditEntry
		var at, ev sql.NullString
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &ev, &a.Detail); err != nil {
			return nil, fmt.Errorf("conveyor: get event audit: %w", err)
		}
		a.At = parseNull(at)
		if ev.Valid {
			a.EventID, _ = uuid.Parse(ev.String)
		}
		d.Audit = append(d.Audit, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: get event audit: %w", err)
	}
	return d, nil
}

// The state each change acts on, and what it sets. Keep in step with the PostgreSQL
// driver, the Django operations and docs/operations.md.
const (
	deadCond     = `status = 2 AND discarded_at IS NULL`
	publishedCnd = `status = 1`
	retrySet     = `status = 0, attempts = 0, available_at = ` + nowSQL + `, blocks_key = 0, locked_by = NULL, locked_until = NULL`
	discardSet   = `discarded_at = ` + nowSQL + `, blocks_key = 0`
	replaySet    = `status = 0, attempts = 0, available_at = ` + nowSQL + `, blocks_key = 0, locked_by = NULL, locked_until = NULL`
)

// RetryDead implements store.Operator.
func (s *Store) RetryDead(ctx context.Context, p *store.ChangeParams) (*store.ChangeResult, error) {
	return s.change(ctx, p, store.ActionRetry, deadCond, retrySet)
}

// DiscardDead implements store.Operator.
func (s *Store) DiscardDead(ctx context.Context, p *store.ChangeParams) (*store.ChangeResult, error) {
	return s.change(ctx, p, store.ActionDiscard, deadCond, discardSet)
}

// Replay implements store.Operator.
func (s *Store) Replay(ctx context.Context, p *store.ChangeParams) (*store.ChangeResult, error) {
	return s.change(ctx, p, store.ActionReplay, publishedCnd, replaySet)
}

func collectIDs(rows *sql.Rows) ([]uuid.UUID, error) {
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("row id %q is not a uuid: %w", s, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func hexArgs(ids []uuid.UUID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = HexID(id)
	}
	return out
}

// change applies one batch inside one BEGIN IMMEDIATE transaction: pick the next
// matching rows in id order, update them, write one audit row per changed event.
func (s *Store) change(ctx context.Context, p *store.ChangeParams, action, cond, set string) (_ *store.ChangeResult, err error) {
	if err := store.CheckActor(p.Actor); err != nil {
		return nil, err
	}
	limit := store.ClampLimit(p.Limit, store.DefaultChangeBatch)
	var q query
	q.filter(&p.Filter)
	q.where(cond)
	q.where("id > ?", HexID(p.AfterID))
	if p.ThroughID != uuid.Nil {
		q.where("id <= ?", HexID(p.ThroughID))
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: %w", action, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM conveyor_event WHERE `+q.sql()+` ORDER BY id LIMIT ?`, append(q.args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: select: %w", action, err)
	}
	picked, err := collectIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: select: %w", action, err)
	}
	res := &store.ChangeResult{More: len(picked) == limit}
	if len(picked) == 0 {
		return res, tx.Commit()
	}
	res.LastID = picked[len(picked)-1]
	rows, err = tx.QueryContext(ctx, `UPDATE conveyor_event SET `+set+` WHERE id IN (`+placeholders(len(picked))+`) AND `+cond+` RETURNING id`,
		hexArgs(picked)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: update: %w", action, err)
	}
	if res.IDs, err = collectIDs(rows); err != nil {
		return nil, fmt.Errorf("conveyor: %s: update: %w", action, err)
	}
	store.SortIDs(res.IDs)
	if err = s.audit(ctx, tx, p.Actor, action, res.IDs, p.Detail); err != nil {
		return nil, err
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: %s: commit: %w", action, err)
	}
	return res, nil
}

// audit writes one conveyor_audit row per event, or one with a NULL event when ids is nil.
func (s *Store) audit(ctx context.Context, tx *sql.Tx, actor, action string, ids []uuid.UUID, detail string) error {
	actor = store.TruncateActor(actor)
	if ids == nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO conveyor_audit (actor, action, event, detail) VALUES (?, ?, NULL, ?)`,
			actor, action, detail); err != nil {
			return fmt.Errorf("conveyor: %s: audit: %w", action, err)
		}
		return nil
	}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		var b strings.Builder
		args := make([]any, 0, 4*n)
		for i, id := range ids[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?)")
			args = append(args, actor, action, HexID(id), detail)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO conveyor_audit (actor, action, event, detail) VALUES `+b.String(), args...); err != nil {
			return fmt.Errorf("conveyor: %s: audit: %w", action, err)
		}
		ids = ids[n:]
	}
	return nil
}

// Purge implements store.Operator.
func (s *Store) Purge(ctx context.Context, p *store.PurgeParams) (_ *store.PurgeResult, err error) {
	if err := store.CheckActor(p.Actor); err != nil {
		return nil, err
	}
	res := &store.PurgeResult{}
	if p.PublishedOlderThan <= 0 && p.DeadOlderThan <= 0 {
		return res, nil
	}
	limit := store.ClampLimit(p.Limit, store.DefaultPurgeBatch)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	cutoff := func(d time.Duration) (sql.NullString, error) {
		if d <= 0 {
			return sql.NullString{}, nil
		}
		var c sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', ?)`, fmt.Sprintf("-%.3f seconds", d.Seconds())).Scan(&c)
		return c, err
	}
	pubCut, err := cutoff(p.PublishedOlderThan)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	deadCut, err := cutoff(p.DeadOlderThan)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	var youngCut string // may lie in the future: then no row is young
	if err = tx.QueryRowContext(ctx, `SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', ?)`,
		fmt.Sprintf("%+.3f seconds", -store.PurgeYoungAge(p).Seconds())).Scan(&youngCut); err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	// A pending row matches neither branch: purge never deletes one. A NULL cutoff
	// matches nothing.
	const cond = `((status = 1 AND julianday(published_at) < julianday(?)) OR (status = 2 AND julianday(created_at) < julianday(?)))`
	if p.DryRun {
		err = tx.QueryRowContext(ctx, `SELECT coalesce(sum(status = 1), 0), coalesce(sum(status = 2), 0)
  FROM conveyor_event WHERE id > ? AND `+cond, HexID(p.AfterID), pubCut, deadCut).Scan(&res.Published, &res.Dead)
		if err != nil {
			return nil, fmt.Errorf("conveyor: purge: count: %w", err)
		}
		return res, tx.Commit()
	}
	// The next window of rows in id order; store.PurgeWalkEnd picks the batch from it.
	rows, err := tx.QueryContext(ctx, `SELECT id, coalesce(`+cond+`, 0), julianday(created_at) >= julianday(?)
  FROM conveyor_event WHERE id > ? ORDER BY id LIMIT ?`, pubCut, deadCut, youngCut, HexID(p.AfterID), limit)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	window, err := store.ScanPurgeWindow(rows)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	var picked []uuid.UUID
	picked, res.LastID, res.More = store.PurgeWalkEnd(window, limit)
	if len(picked) == 0 {
		return res, tx.Commit()
	}
	args := append([]any{pubCut, deadCut}, hexArgs(picked)...)
	rows, err = tx.QueryContext(ctx, `DELETE FROM conveyor_event WHERE `+cond+` AND id IN (`+placeholders(len(picked))+`) RETURNING status`, args...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: delete: %w", err)
	}
	for rows.Next() {
		var st int
		if err = rows.Scan(&st); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: purge: delete: %w", err)
		}
		if st == int(conveyor.StatusPublished) {
			res.Published++
		} else {
			res.Dead++
		}
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: purge: delete: %w", err)
	}
	if res.Deleted() > 0 {
		detail := store.PurgeDetail(p.Detail, res, parseNull(pubCut), parseNull(deadCut))
		if err = s.audit(ctx, tx, p.Actor, store.ActionPurge, nil, detail); err != nil {
			return nil, err
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: purge: commit: %w", err)
	}
	return res, nil
}

// Overview implements store.Operator.
func (s *Store) Overview(ctx context.Context) (*store.Overview, error) {
	ov := &store.Overview{}
	rows, err := s.db.QueryContext(ctx, `
SELECT event_type,
       total(status = 0), total(status = 0 AND locked_until IS NOT NULL AND locked_until > `+nowSQL+`),
       total(status = 1), total(status = 2 AND discarded_at IS NULL), total(status = 2 AND discarded_at IS NOT NULL),
       (julianday('now') - julianday(min(CASE WHEN status = 0 THEN created_at END))) * 86400.0
  FROM conveyor_event GROUP BY event_type ORDER BY event_type`)
	if err != nil {
		return nil, fmt.Errorf("conveyor: overview: %w", err)
	}
	for rows.Next() {
		var tc store.TypeCounts
		var oldest sql.NullFloat64
		if err := rows.Scan(&tc.EventType, &tc.Pending, &tc.InFlight, &tc.Published, &tc.Dead, &tc.Discarded, &oldest); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: overview: %w", err)
		}
		if oldest.Valid {
			tc.OldestPending = time.Duration(max(oldest.Float64, 0) * float64(time.Second))
		}
		ov.ByType = append(ov.ByType, tc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: overview: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT locked_by, count(*), CAST(max(locked_until) AS TEXT) FROM conveyor_event
 WHERE status = 0 AND locked_until > `+nowSQL+` AND locked_by IS NOT NULL GROUP BY locked_by ORDER BY locked_by`)
	if err != nil {
		return nil, fmt.Errorf("conveyor: overview leases: %w", err)
	}
	for rows.Next() {
		var l store.LeaseHolder
		var until sql.NullString
		if err := rows.Scan(&l.RelayID, &l.Events, &until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: overview leases: %w", err)
		}
		l.Until = parseNull(until)
		ov.Leases = append(ov.Leases, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: overview leases: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT count(DISTINCT key) FROM conveyor_event
 WHERE key IS NOT NULL AND (status = 0 OR blocks_key) AND status = 2`).Scan(&ov.BlockedKeys); err != nil {
		return nil, fmt.Errorf("conveyor: overview blocked keys: %w", err)
	}
	return ov, nil
}
