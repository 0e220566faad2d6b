package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/store"
)

var _ store.Operator = (*Store)(nil)

// query builds a WHERE clause with numbered placeholders.
type query struct {
	conds []string
	args  []any
}

// arg adds a value and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

func (q *query) where(cond string) { q.conds = append(q.conds, cond) }

func (q *query) sql() string {
	if len(q.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(q.conds, " AND ")
}

func (q *query) filter(f *store.Filter) {
	if len(f.IDs) > 0 {
		q.where("id = ANY(" + q.arg(f.IDs) + "::uuid[])")
	}
	if f.Type != "" {
		if strings.ContainsAny(f.Type, "*?") {
			q.where("event_type LIKE " + q.arg(store.GlobToLike(f.Type)) + ` ESCAPE '\'`)
		} else {
			q.where("event_type = " + q.arg(f.Type))
		}
	}
	if f.Key != "" {
		q.where("key = " + q.arg(f.Key))
	}
	if !f.Since.IsZero() {
		q.where("created_at >= " + q.arg(f.Since))
	}
	if !f.Until.IsZero() {
		q.where("created_at < " + q.arg(f.Until))
	}
	if f.Error != "" {
		q.where("strpos(lower(last_error), lower(" + q.arg(f.Error) + ")) > 0")
	}
}

func (q *query) list(p *store.ListEventsParams) {
	q.filter(&p.Filter)
	if len(p.Statuses) > 0 {
		st := make([]int16, len(p.Statuses))
		for i, s := range p.Statuses {
			st[i] = int16(s)
		}
		q.where("status = ANY(" + q.arg(st) + "::smallint[])")
	}
	if !p.IncludeDiscarded {
		q.where("discarded_at IS NULL")
	}
}

const rowColumns = `id, event_type, source, key, subject, data::text, headers::text, idempotency_key,
created_at, available_at, status, attempts, last_error, published_at, locked_by, locked_until,
lease_token, blocks_key, discarded_at`

func scanRow(row pgx.Row) (*store.EventRow, error) {
	var (
		r                                    store.EventRow
		key, subject, idem, data, hdrs, lerr *string
		lockedBy                             *string
		published, lockedUntil, discarded    *time.Time
		attempts                             int32
	)
	if err := row.Scan(&r.ID, &r.Type, &r.Source, &key, &subject, &data, &hdrs, &idem,
		&r.CreatedAt, &r.AvailableAt, &r.Status, &attempts, &lerr, &published, &lockedBy, &lockedUntil,
		&r.LeaseToken, &r.BlocksKey, &discarded); err != nil {
		return nil, err
	}
	r.Key, r.Subject, r.IdempotencyKey = deref(key), deref(subject), deref(idem)
	r.RawData, r.RawHeaders, r.LastError, r.LockedBy = deref(data), deref(hdrs), deref(lerr), deref(lockedBy)
	r.Attempts = int(attempts)
	r.PublishedAt, r.LockedUntil, r.DiscardedAt = derefTime(published), derefTime(lockedUntil), derefTime(discarded)
	_ = store.DecodePayload(&r.Event, data, hdrs) // a bad row is still shown, raw
	return &r, nil
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// ListEvents implements store.Operator.
func (s *Store) ListEvents(ctx context.Context, p *store.ListEventsParams) ([]*store.EventRow, error) {
	var q query
	q.list(p)
	q.where("id > " + q.arg(p.AfterID))
	limit := q.arg(store.ClampLimit(p.Limit, store.DefaultListLimit))
	rows, err := s.pool.Query(ctx, `SELECT `+rowColumns+` FROM conveyor_event WHERE `+q.sql()+` ORDER BY id LIMIT `+limit, q.args...)
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
	q.where("id > " + q.arg(p.AfterID))
	w := q.sql()
	var res store.CountResult
	var first, last *uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM conveyor_event WHERE `+w+`),
       (SELECT id FROM conveyor_event WHERE `+w+` ORDER BY id LIMIT 1),
       (SELECT id FROM conveyor_event WHERE `+w+` ORDER BY id DESC LIMIT 1)`, q.args...).Scan(&res.Count, &first, &last)
	if err != nil {
		return nil, fmt.Errorf("conveyor: count events: %w", err)
	}
	if first != nil {
		res.FirstID, res.LastID = *first, *last
	}
	return &res, nil
}

// GetEvent implements store.Operator.
func (s *Store) GetEvent(ctx context.Context, p *store.GetEventParams) (*store.EventDetail, error) {
	r, err := scanRow(s.pool.QueryRow(ctx, `SELECT `+rowColumns+` FROM conveyor_event WHERE id = $1`, p.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", store.ErrNotFound, p.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("conveyor: get event: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, action, event, detail FROM conveyor_audit WHERE event = $1 ORDER BY id`, p.ID)
	if err != nil {
		return nil, fmt.Errorf("conveyor: get event audit: %w", err)
	}
	defer rows.Close()
	d := &store.EventDetail{Event: r}
	for rows.Next() {
		var a store.AuditEntry
		var ev *uuid.UUID
		if err := rows.Scan(&a.ID, &a.At, &a.Actor, &a.Action, &ev, &a.Detail); err != nil {
			return nil, fmt.Errorf("conveyor: get event audit: %w", err)
		}
		if ev != nil {
			a.EventID = *ev
		}
		a.At = a.At.UTC()
		d.Audit = append(d.Audit, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: get event audit: %w", err)
	}
	return d, nil
}

// The state each change acts on, and what it sets. Keep in step with the Django
// operations (python/src/conveyor) and docs/operations.md.
const (
	deadCond     = `status = 2 AND discarded_at IS NULL`
	publishedCnd = `status = 1`
	retrySet     = `status = 0, attempts = 0, available_at = now(), blocks_key = false, locked_by = NULL, locked_until = NULL`
	discardSet   = `discarded_at = now(), blocks_key = false`
	replaySet    = `status = 0, attempts = 0, available_at = now(), blocks_key = false, locked_by = NULL, locked_until = NULL`
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

// change applies one batch: lock the next matching rows in id order, update those still
// in the expected state, and write one audit row per changed event, in one transaction.
func (s *Store) change(ctx context.Context, p *store.ChangeParams, action, cond, set string) (*store.ChangeResult, error) {
	if err := store.CheckActor(p.Actor); err != nil {
		return nil, err
	}
	limit := store.ClampLimit(p.Limit, store.DefaultChangeBatch)
	var q query
	q.filter(&p.Filter)
	q.where(cond)
	q.where("id > " + q.arg(p.AfterID))
	if p.ThroughID != uuid.Nil {
		q.where("id <= " + q.arg(p.ThroughID))
	}
	lim := q.arg(limit)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: %w", action, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT id FROM conveyor_event WHERE `+q.sql()+` ORDER BY id LIMIT `+lim+` FOR UPDATE`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: select: %w", action, err)
	}
	picked, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: select: %w", action, err)
	}
	res := &store.ChangeResult{More: len(picked) == limit}
	if len(picked) == 0 {
		return res, tx.Commit(ctx)
	}
	res.LastID = picked[len(picked)-1]
	rows, err = tx.Query(ctx, `UPDATE conveyor_event SET `+set+` WHERE id = ANY($1::uuid[]) AND `+cond+` RETURNING id`, picked)
	if err != nil {
		return nil, fmt.Errorf("conveyor: %s: update: %w", action, err)
	}
	if res.IDs, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
		return nil, fmt.Errorf("conveyor: %s: update: %w", action, err)
	}
	store.SortIDs(res.IDs)
	if len(res.IDs) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO conveyor_audit (actor, action, event, detail)
SELECT $1, $2, unnest($3::uuid[]), $4`, store.TruncateActor(p.Actor), action, res.IDs, p.Detail); err != nil {
			return nil, fmt.Errorf("conveyor: %s: audit: %w", action, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("conveyor: %s: commit: %w", action, err)
	}
	return res, nil
}

// Purge implements store.Operator.
func (s *Store) Purge(ctx context.Context, p *store.PurgeParams) (*store.PurgeResult, error) {
	if err := store.CheckActor(p.Actor); err != nil {
		return nil, err
	}
	res := &store.PurgeResult{}
	if p.PublishedOlderThan <= 0 && p.DeadOlderThan <= 0 {
		return res, nil
	}
	limit := store.ClampLimit(p.Limit, store.DefaultPurgeBatch)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The cutoffs come from the database clock, like every time that matters.
	var pubCut, deadCut *time.Time
	var youngCut time.Time
	err = tx.QueryRow(ctx, `SELECT CASE WHEN $1::float8 > 0 THEN now() - make_interval(secs => $1::float8) END,
       CASE WHEN $2::float8 > 0 THEN now() - make_interval(secs => $2::float8) END,
       now() - make_interval(secs => $3::float8)`,
		p.PublishedOlderThan.Seconds(), p.DeadOlderThan.Seconds(), store.PurgeYoungAge(p).Seconds()).Scan(&pubCut, &deadCut, &youngCut)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: %w", err)
	}
	// A pending row matches neither branch: purge never deletes one.
	const cond = `((status = 1 AND published_at < $1) OR (status = 2 AND created_at < $2))`
	if p.DryRun {
		err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 1), count(*) FILTER (WHERE status = 2)
  FROM conveyor_event WHERE id > $3 AND `+cond, pubCut, deadCut, p.AfterID).Scan(&res.Published, &res.Dead)
		if err != nil {
			return nil, fmt.Errorf("conveyor: purge: count: %w", err)
		}
		return res, tx.Commit(ctx)
	}
	// The next window of rows in id order; store.PurgeWalkEnd picks the batch from it.
	rows, err := tx.Query(ctx, `SELECT id, (`+cond+`) IS TRUE, created_at >= $3 FROM conveyor_event
 WHERE id > $4 ORDER BY id LIMIT $5`, pubCut, deadCut, youngCut, p.AfterID, limit)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	window, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.PurgeRow, error) {
		var pr store.PurgeRow
		err := r.Scan(&pr.ID, &pr.Eligible, &pr.Young)
		return pr, err
	})
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: select: %w", err)
	}
	var picked []uuid.UUID
	picked, res.LastID, res.More = store.PurgeWalkEnd(window, limit)
	if len(picked) == 0 {
		return res, tx.Commit(ctx)
	}
	// The DELETE re-checks the condition on the newest row version, so a row an operator
	// just retried (now pending) is left alone.
	err = tx.QueryRow(ctx, `WITH d AS (DELETE FROM conveyor_event WHERE id = ANY($3::uuid[]) AND `+cond+` RETURNING status)
SELECT count(*) FILTER (WHERE status = 1), count(*) FILTER (WHERE status = 2) FROM d`,
		pubCut, deadCut, picked).Scan(&res.Published, &res.Dead)
	if err != nil {
		return nil, fmt.Errorf("conveyor: purge: delete: %w", err)
	}
	if res.Deleted() > 0 {
		detail := store.PurgeDetail(p.Detail, res, derefTime(pubCut), derefTime(deadCut))
		if _, err := tx.Exec(ctx, `INSERT INTO conveyor_audit (actor, action, event, detail) VALUES ($1, $2, NULL, $3)`,
			store.TruncateActor(p.Actor), store.ActionPurge, detail); err != nil {
			return nil, fmt.Errorf("conveyor: purge: audit: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("conveyor: purge: commit: %w", err)
	}
	return res, nil
}

// Overview implements store.Operator.
func (s *Store) Overview(ctx context.Context) (*store.Overview, error) {
	ov := &store.Overview{}
	rows, err := s.pool.Query(ctx, `
SELECT event_type,
       count(*) FILTER (WHERE status = 0),
       count(*) FILTER (WHERE status = 0 AND locked_until > now()),
       count(*) FILTER (WHERE status = 1),
       count(*) FILTER (WHERE status = 2 AND discarded_at IS NULL),
       count(*) FILTER (WHERE status = 2 AND discarded_at IS NOT NULL),
       extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 0))::float8
  FROM conveyor_event GROUP BY event_type ORDER BY event_type`)
	if err != nil {
		return nil, fmt.Errorf("conveyor: overview: %w", err)
	}
	for rows.Next() {
		var tc store.TypeCounts
		var oldest *float64
		if err := rows.Scan(&tc.EventType, &tc.Pending, &tc.InFlight, &tc.Published, &tc.Dead, &tc.Discarded, &oldest); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: overview: %w", err)
		}
		if oldest != nil {
			tc.OldestPending = time.Duration(max(*oldest, 0) * float64(time.Second))
		}
		ov.ByType = append(ov.ByType, tc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: overview: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT locked_by, count(*), max(locked_until) FROM conveyor_event
 WHERE status = 0 AND locked_until > now() AND locked_by IS NOT NULL GROUP BY locked_by ORDER BY locked_by`)
	if err != nil {
		return nil, fmt.Errorf("conveyor: overview leases: %w", err)
	}
	for rows.Next() {
		var l store.LeaseHolder
		if err := rows.Scan(&l.RelayID, &l.Events, &l.Until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: overview leases: %w", err)
		}
		l.Until = l.Until.UTC()
		ov.Leases = append(ov.Leases, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: overview leases: %w", err)
	}
	// Served by conveyor_event_claim_key_idx, which holds the blocking dead rows.
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT key) FROM conveyor_event
 WHERE key IS NOT NULL AND (status = 0 OR blocks_key) AND status = 2`).Scan(&ov.BlockedKeys); err != nil {
		return nil, fmt.Errorf("conveyor: overview blocked keys: %w", err)
	}
	return ov, nil
}
