package mysql

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

func (qb *query) where(cond string, args ...any) {
	qb.conds = append(qb.conds, cond)
	qb.args = append(qb.args, args...)
}

func (qb *query) sql() string {
	if len(qb.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(qb.conds, " AND ")
}

// binParam compares a parameter by its bytes (event types are case-sensitive), whatever
// the column's collation and the connection's character set.
const binParam = `CONVERT(? USING utf8mb4) COLLATE utf8mb4_bin`

// globToLike translates a Filter.Type glob into a LIKE pattern with ! as the escape
// character (a backslash would depend on the NO_BACKSLASH_ESCAPES SQL mode).
func globToLike(glob string) string { return store.GlobToLikeEscape(glob, '!') }

func (qb *query) filter(f *store.Filter) {
	if len(f.IDs) > 0 {
		qb.where("id IN ("+placeholders(len(f.IDs))+")", hexArgs(f.IDs)...)
	}
	if f.Type != "" {
		if strings.ContainsAny(f.Type, "*?") {
			qb.where("event_type LIKE "+binParam+" ESCAPE '!'", globToLike(f.Type))
		} else {
			qb.where("event_type = "+binParam, f.Type)
		}
	}
	if f.Key != "" {
		qb.where(q("{key} = ?"), f.Key)
	}
	if !f.Since.IsZero() {
		qb.where("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		qb.where("created_at < ?", f.Until.UTC())
	}
	if f.Error != "" {
		qb.where("LOCATE(LOWER(?), LOWER(last_error)) > 0", f.Error)
	}
}

func (qb *query) list(p *store.ListEventsParams) {
	qb.filter(&p.Filter)
	if len(p.Statuses) > 0 {
		args := make([]any, len(p.Statuses))
		for i, s := range p.Statuses {
			args[i] = int(s)
		}
		qb.where("status IN ("+placeholders(len(args))+")", args...)
	}
	if !p.IncludeDiscarded {
		qb.where("discarded_at IS NULL")
	}
}

var rowColumns = q(`id, event_type, source, {key}, subject, data, headers, idempotency_key,
created_at, available_at, status, attempts, last_error, published_at, locked_by, locked_until,
lease_token, blocks_key, discarded_at`)

type scanner interface{ Scan(dest ...any) error }

func scanRow(row scanner) (*store.EventRow, error) {
	var (
		r                                                           store.EventRow
		id                                                          string
		typ, source, key, subject, data, hdrs, idem, lerr, lockedBy sql.NullString
		created, available, published, lockedUntil, discarded       sql.NullTime
		status                                                      int
	)
	if err := row.Scan(&id, &typ, &source, &key, &subject, &data, &hdrs, &idem, &created, &available,
		&status, &r.Attempts, &lerr, &published, &lockedBy, &lockedUntil, &r.LeaseToken, &r.BlocksKey, &discarded); err != nil {
		return nil, err
	}
	var err error
	if r.ID, err = parseID(id); err != nil {
		return nil, err
	}
	r.Status = conveyor.Status(status)
	r.Type, r.Source, r.Key, r.Subject, r.IdempotencyKey = typ.String, source.String, key.String, subject.String, idem.String
	r.RawData, r.RawHeaders, r.LastError, r.LockedBy = data.String, hdrs.String, lerr.String, lockedBy.String
	r.CreatedAt, r.AvailableAt = nullTime(created), nullTime(available)
	r.PublishedAt, r.LockedUntil, r.DiscardedAt = nullTime(published), nullTime(lockedUntil), nullTime(discarded)
	_ = store.DecodePayload(&r.Event, nullPtr(data), nullPtr(hdrs)) // a bad row is still shown, raw
	return &r, nil
}

// ListEvents implements store.Operator.
func (s *Store) ListEvents(ctx context.Context, p *store.ListEventsParams) ([]*store.EventRow, error) {
	var qb query
	qb.list(p)
	qb.where("id > ?", HexID(p.AfterID))
	qb.args = append(qb.args, store.ClampLimit(p.Limit, store.DefaultListLimit))
	rows, err := s.db.QueryContext(ctx, `SELECT `+rowColumns+` FROM conveyor_event WHERE `+qb.sql()+` ORDER BY id LIMIT ?`, qb.args...)
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
	var qb query
	qb.list(p)
	qb.where("id > ?", HexID(p.AfterID))
	var res store.CountResult
	var first, last sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(id), MAX(id) FROM conveyor_event WHERE `+qb.sql(), qb.args...).
		Scan(&res.Count, &first, &last)
	if err != nil {
		return nil, fmt.Errorf("conveyor: count events: %w", err)
	}
	if first.Valid {
		if res.FirstID, err = parseID(first.String); err != nil {
			return nil, fmt.Errorf("conveyor: count events: %w", err)
		}
		if res.LastID, err = parseID(last.String); err != nil {
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
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, actor, action, event, detail FROM conveyor_audit WHERE event = ? ORDER BY id`, HexID(p.ID))
	if err != nil {
		return nil, fmt.Errorf("conveyor: get event audit: %w", err)
	}
	defer rows.Close()
	d := &store.EventDetail{Event: r}
	for rows.Next() {
		var a store.AuditEntry
		var at sql.NullTime
		var ev sql.NullString
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &ev, &a.Detail); err != nil {
			return nil, fmt.Errorf("conveyor: get event audit: %w", err)
		}
		a.At = nullTime(at)
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

// The state each change acts on, and what it sets. Keep in step with the PostgreSQL and
// SQLite drivers, the Django operations and docs/operations.md.
const (
	deadCond     = `status = 2 AND discarded_at IS NULL`
	publishedCnd = `status = 1`
	retrySet     = `status = 0, attempts = 0, available_at = UTC_TIMESTAMP(6), blocks_key = 0, locked_by = NULL, locked_until = NULL`
	discardSet   = `discarded_at = UTC_TIMESTAMP(6), blocks_key = 0`
	replaySet    = `status = 0, attempts = 0, available_at = UTC_TIMESTAMP(6), blocks_key = 0, locked_by = NULL, locked_until = NULL`
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
		id, err := parseID(s)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// change applies one batch in one transaction: lock the next matching rows in id order
// (the locking read sees their latest version), update them, and write one audit row
// per changed event.
func (s *Store) change(ctx context.Context, p *store.ChangeParams, action, cond, set string) (_ *store.ChangeResult, err error) {
	if err := store.CheckActor(p.Actor); err != nil {
		return nil, err
	}
	limit := store.ClampLimit(p.Limit, store.DefaultChangeBatch)
	var qb query
	qb.filter(&p.Filter)
	qb.where(cond)
	qb.where("id > ?", HexID(p.AfterID))
	if p.ThroughID != uuid.Nil {
		qb.where("id <= ?", HexID(p.ThroughID))
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: %w", action, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM conveyor_event WHERE `+qb.sql()+` ORDER BY id LIMIT ? FOR UPDATE`, append(qb.args, limit)...)
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
	r, err := tx.ExecContext(ctx, `UPDATE conveyor_event SET `+set+` WHERE id IN (`+placeholders(len(picked))+`) AND `+cond, hexArgs(picked)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: update: %w", action, err)
	}
	// The rows are locked and still match cond, so every one changed.
	if n, rerr := r.RowsAffected(); rerr == nil && n != int64(len(picked)) {
		err = fmt.Errorf("conveyor: %s: changed %d of %d locked events; nothing was applied, run it again", action, n, len(picked))
		return nil, err
	}
	res.IDs = picked
	store.SortIDs(res.IDs)
	if err = s.audit(ctx, tx, p.Actor, action, res.IDs, p.Detail); err != nil {
		return nil, err
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: %s: commit: %w", action, err)
	}
	return res, nil
}

// audit writes one conveyor_audit row per event, or one with a NULL event when ids is
// nil. at is the UTC clock: the column's default follows the session's time zone.
func (s *Store) audit(ctx context.Context, tx *sql.Tx, actor, action string, ids []uuid.UUID, detail string) error {
	actor = store.TruncateActor(actor)
	if ids == nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO conveyor_audit (at, actor, action, event, detail) VALUES (UTC_TIMESTAMP(6), ?, ?, NULL, ?)`,
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
			b.WriteString("(UTC_TIMESTAMP(6), ?, ?, ?, ?)")
			args = append(args, actor, action, HexID(id), detail)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO conveyor_audit (at, actor, action, event, detail) VALUES `+b.String(), args...); err != nil {
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
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// The cutoffs come from the database clock, like every time that matters. A NULL
	// cutoff matches nothing.
	var pubCut, deadCut sql.NullTime
	var youngCut time.Time // may lie in the future: then no row is young
	pubAge, deadAge := ceilMicros(p.PublishedOlderThan), ceilMicros(p.DeadOlderThan)
	err = tx.QueryRowContext(ctx, `SELECT CASE WHEN ? > 0 THEN UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND END,
       CASE WHEN ? > 0 THEN UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND END,
       UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND`,
		pubAge, pubAge, deadAge, deadAge, store.PurgeYoungAge(p).Microseconds()).Scan(&pubCut, &deadCut, &youngCut)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	pubArg, deadArg := cutArg(pubCut), cutArg(deadCut)
	// A pending row matches neither branch: purge never deletes one.
	const cond = `((status = 1 AND published_at < ?) OR (status = 2 AND created_at < ?))`
	if p.DryRun {
		err = tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(status = 1), 0), COALESCE(SUM(status = 2), 0)
  FROM conveyor_event WHERE id > ? AND `+cond, HexID(p.AfterID), pubArg, deadArg).Scan(&res.Published, &res.Dead)
		if err != nil {
			return nil, fmt.Errorf("conveyor: purge: count: %w", err)
		}
		return res, tx.Commit()
	}
	// The next window of rows in id order, read without locks (InnoDB would lock every
	// row it reads, pending ones too); store.PurgeWalkEnd picks the batch from it.
	rows, err := tx.QueryContext(ctx, `SELECT id, COALESCE(`+cond+`, 0), created_at >= ? FROM conveyor_event
 WHERE id > ? ORDER BY id LIMIT ?`, pubArg, deadArg, youngCut.UTC(), HexID(p.AfterID), limit)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	window, err := store.ScanPurgeWindow(rows)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	candidates, last, more := store.PurgeWalkEnd(window, limit)
	res.LastID, res.More = last, more
	if len(candidates) == 0 {
		return res, tx.Commit()
	}
	// The locking read sees each row's latest version, so a row an operator just made
	// pending again is not picked.
	rows, err = tx.QueryContext(ctx, `SELECT id, status FROM conveyor_event WHERE id IN (`+placeholders(len(candidates))+`) AND `+cond+` FOR UPDATE`,
		append(hexArgs(candidates), pubArg, deadArg)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	var picked []uuid.UUID
	for rows.Next() {
		var raw string
		var st int
		if err = rows.Scan(&raw, &st); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: purge: select: %w", err)
		}
		id, perr := parseID(raw)
		if perr != nil {
			rows.Close()
			err = perr
			return nil, fmt.Errorf("conveyor: purge: select: %w", err)
		}
		picked = append(picked, id)
		if st == int(conveyor.StatusPublished) {
			res.Published++
		} else {
			res.Dead++
		}
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	if len(picked) == 0 {
		return res, tx.Commit()
	}
	r, err := tx.ExecContext(ctx, `DELETE FROM conveyor_event WHERE id IN (`+placeholders(len(picked))+`) AND `+cond,
		append(hexArgs(picked), pubArg, deadArg)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: delete: %w", err)
	}
	if n, rerr := r.RowsAffected(); rerr == nil && n != int64(len(picked)) {
		err = fmt.Errorf("conveyor: purge: deleted %d of %d locked events; nothing was applied, run it again", n, len(picked))
		return nil, err
	}
	detail := store.PurgeDetail(p.Detail, res, nullTime(pubCut), nullTime(deadCut))
	if err = s.audit(ctx, tx, p.Actor, store.ActionPurge, nil, detail); err != nil {
		return nil, err
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: purge: commit: %w", err)
	}
	return res, nil
}

// ceilMicros is d in whole microseconds, rounded up (the datetime(6) resolution), so a
// positive age stays positive; zero or negative is 0 (no cutoff).
func ceilMicros(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// cutArg passes a cutoff as a parameter: NULL, or the naive UTC time.
func cutArg(t sql.NullTime) any {
	if !t.Valid {
		return nil
	}
	return t.Time.UTC()
}

// Overview implements store.Operator.
func (s *Store) Overview(ctx context.Context) (*store.Overview, error) {
	ov := &store.Overview{}
	rows, err := s.db.QueryContext(ctx, `
SELECT `+eventTypeSQL+` AS t,
       COALESCE(SUM(status = 0), 0),
       COALESCE(SUM(status = 0 AND locked_until IS NOT NULL AND locked_until > UTC_TIMESTAMP(6)), 0),
       COALESCE(SUM(status = 1), 0),
       COALESCE(SUM(status = 2 AND discarded_at IS NULL), 0),
       COALESCE(SUM(status = 2 AND discarded_at IS NOT NULL), 0),
       `+ageSQL(`MIN(CASE WHEN status = 0 THEN created_at END)`)+`
  FROM conveyor_event GROUP BY t ORDER BY t`)
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
	rows, err = s.db.QueryContext(ctx, `SELECT locked_by, COUNT(*), MAX(locked_until) FROM conveyor_event
 WHERE status = 0 AND locked_until > UTC_TIMESTAMP(6) AND locked_by IS NOT NULL GROUP BY locked_by ORDER BY locked_by`)
	if err != nil {
		return nil, fmt.Errorf("conveyor: overview leases: %w", err)
	}
	for rows.Next() {
		var l store.LeaseHolder
		var until sql.NullTime
		if err := rows.Scan(&l.RelayID, &l.Events, &until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: overview leases: %w", err)
		}
		l.Until = nullTime(until)
		ov.Leases = append(ov.Leases, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: overview leases: %w", err)
	}
	// Served by conveyor_event_claim_idx (status = 2, key).
	if err := s.db.QueryRowContext(ctx, q(`SELECT COUNT(DISTINCT {key}) FROM conveyor_event
 WHERE status = 2 AND blocks_key AND {key} IS NOT NULL`)).Scan(&ov.BlockedKeys); err != nil {
		return nil, fmt.Errorf("conveyor: overview blocked keys: %w", err)
	}
	return ov, nil
}
