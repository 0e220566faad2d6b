// Package mysql is the MySQL 8 and MariaDB 10.11+ Store, on database/sql with
// github.com/go-sql-driver/mysql. It runs against the schema the Django migrations make
// there (docs/contract.md): ids are char(32) hex on MySQL and the native uuid type on
// MariaDB 10.7+, data and headers are JSON text, timestamps are datetime(6) holding naive
// UTC. There are no notifications: the relay polls.
package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

// Config configures the MySQL store.
type Config struct {
	// URL is mysql://user:password@host:3306/dbname?params (see ParseURL). Required.
	URL string
	// MaxConns caps the pool. Default 8.
	MaxConns int
	// Logger receives the driver's messages and startup warnings. Default slog.Default().
	Logger *slog.Logger
}

// Store is a store.Store and store.Operator on MySQL or MariaDB.
type Store struct {
	db     *sql.DB
	target string
	logger *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Open connects to the database and verifies the connection. The error never contains
// the password.
func Open(ctx context.Context, c Config) (*Store, error) {
	cfg, err := ParseURL(c.URL)
	if err != nil {
		return nil, err
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	cfg.Logger = driverLogger{logger}
	target := describe(cfg)
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("conveyor: database url for mysql %s: %w", target, err)
	}
	db := sql.OpenDB(conn)
	n := c.MaxConns
	if n <= 0 {
		n = 8
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	// Below the servers' and proxies' idle timeouts (wait_timeout, load balancers).
	db.SetConnMaxLifetime(3 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("conveyor: connect to mysql %s: %w%s", target, err, hint(err))
	}
	s := &Store{db: db, target: target, logger: logger}
	s.warnTimeZone(ctx)
	return s, nil
}

// hint says what to do about the common connection errors.
func hint(err error) string {
	var me *driver.MySQLError
	if errors.As(err, &me) && me.Number == 1049 { // ER_BAD_DB_ERROR
		return "; create the database and run `python manage.py migrate`"
	}
	return ""
}

// warnTimeZone logs when the server's clock is not UTC in a default session. Django's
// db_default for created_at and available_at is CURRENT_TIMESTAMP(6), the time in the
// writing session's time zone, while the relay compares them with UTC_TIMESTAMP(6).
func (s *Store) warnTimeZone(ctx context.Context) {
	var offset int64
	var zone string
	if err := s.db.QueryRowContext(ctx, `SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()), @@global.time_zone`).Scan(&offset, &zone); err != nil {
		return
	}
	if offset > 1 || offset < -1 {
		s.logger.WarnContext(ctx, "mysql server time zone is not UTC: Django's sessions write created_at and available_at in it, so events become available early or late by the offset; set default-time-zone = '+00:00' on the server or time_zone in Django's OPTIONS init_command",
			"time_zone", zone, "offset_seconds", offset)
	}
}

// driverLogger sends the driver's messages (broken connections and the like) to slog.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.l.Warn("mysql driver", "msg", strings.TrimSpace(fmt.Sprint(v...)))
}

// DB exposes the handle for tests and tools in this module.
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the pool.
func (s *Store) Close() error { return s.db.Close() }

// SupportsListenNotify is false: MySQL has no notifications; the relay polls.
func (s *Store) SupportsListenNotify() bool { return false }

// Listen returns nil: see SupportsListenNotify.
func (s *Store) Listen(context.Context) (<-chan struct{}, error) { return nil, nil }

// q spells the reserved column name `key` with backquotes in a statement written as {key}.
func q(s string) string { return strings.ReplaceAll(s, "{key}", "`key`") }

// HexID is the form the relay sends ids in: 32 hex digits, which Django's char(32)
// UUIDField on MySQL stores and MariaDB's uuid type accepts.
func HexID(id uuid.UUID) string { return hex.EncodeToString(id[:]) }

func hexArgs(ids []uuid.UUID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = HexID(id)
	}
	return out
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// parseID reads an id column: 32 hex digits (char(32)) or the dashed form (uuid).
func parseID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("row id %q is not a uuid: %w", s, err)
	}
	return id, nil
}

// begin starts a READ COMMITTED transaction: locking reads then take no gap locks, which
// under REPEATABLE READ would block Django's inserts of new events until the relay's
// transaction ends, and every statement sees the latest committed rows.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	return s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
}

// The claimable test on the database clock (DATETIME(6), naive UTC).
const claimable = `status = 0 AND available_at <= UTC_TIMESTAMP(6)
       AND (locked_until IS NULL OR locked_until < UTC_TIMESTAMP(6))`

// candidatesSQL picks, without locking, the oldest claimable heads and unordered events.
//
//   - h: the first pending event of every key, by a loose index scan over
//     conveyor_event_claim_idx (status, key, id): one index descent per key.
//   - A head whose key is held by an older dead event that blocks it (on_dead: block) is
//     not claimable; the NOT EXISTS probes the same index (status = 2, key, id < head).
//   - Unordered events come from the same index (status = 0, key IS NULL), oldest first.
//
// InnoDB locks the rows a locking read visits before any sort or LIMIT, so this
// statement only chooses; lockSQL then locks the chosen rows by primary key.
var candidatesSQL = q(`
(SELECT e.id, e.{key} FROM (
        SELECT MIN(id) AS id FROM conveyor_event
         WHERE status = 0 AND {key} IS NOT NULL GROUP BY status, {key}) h
   JOIN conveyor_event e ON e.id = h.id
  WHERE e.status = 0 AND e.available_at <= UTC_TIMESTAMP(6)
    AND (e.locked_until IS NULL OR e.locked_until < UTC_TIMESTAMP(6))
    AND NOT EXISTS (SELECT 1 FROM conveyor_event d
                     WHERE d.status = 2 AND d.{key} = e.{key} AND d.id < e.id AND d.blocks_key)
  ORDER BY e.id LIMIT ?)
UNION ALL
(SELECT id, {key} FROM conveyor_event
  WHERE {key} IS NULL AND ` + claimable + `
  ORDER BY id LIMIT ?)
ORDER BY id LIMIT ?`)

// lockSQL locks the chosen rows that are still claimable; SKIP LOCKED leaves the ones
// another relay is claiming right now. The list of ids is appended.
var lockSQL = q(`SELECT id, {key} FROM conveyor_event WHERE ` + claimable + ` AND id IN (`)

// followerSQL is one branch per locked head: the next pending events of its key and
// whether each is claimable now. The relay takes them up to the first that is not.
var followerSQL = q(`(SELECT ? AS h, id, (available_at <= UTC_TIMESTAMP(6)
        AND (locked_until IS NULL OR locked_until < UTC_TIMESTAMP(6))) AS ok
   FROM conveyor_event WHERE status = 0 AND {key} = ? AND id > ? ORDER BY id LIMIT ?)`)

// followerChunk bounds the branches of one follower statement.
const followerChunk = 100

var claimedColumns = q(`id, event_type, source, {key}, subject, data, headers, idempotency_key,
       created_at, available_at, attempts, lease_token`)

// Claim implements store.Store (see store.Store.Claim for the rules). MySQL has no
// UPDATE ... RETURNING: an autocommit statement chooses the candidates (an idle poll
// costs just that), then one short transaction locks them (FOR UPDATE SKIP LOCKED),
// adds each head's followers, sets the lease, bumps attempts and the fencing token, and
// reads the rows back.
func (s *Store) Claim(ctx context.Context, p *store.ClaimParams) (_ []*store.Claimed, err error) {
	perKey := max(p.PerKey, 1)
	limit := max(p.Limit, 1)
	cands, err := s.queryIDKeys(ctx, s.db, candidatesSQL, limit, limit, limit)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ids := make([]uuid.UUID, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	heads, err := s.queryIDKeys(ctx, tx, lockSQL+placeholders(len(ids))+`) FOR UPDATE SKIP LOCKED`, hexArgs(ids)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: lock: %w", err)
	}
	if len(heads) == 0 {
		return nil, tx.Commit()
	}
	take := make([]uuid.UUID, 0, len(heads))
	var keyed []idKey
	for _, h := range heads {
		take = append(take, h.id)
		if h.key.Valid && perKey > 1 {
			keyed = append(keyed, h)
		}
	}
	for len(keyed) > 0 {
		n := min(len(keyed), followerChunk)
		f, ferr := followers(ctx, tx, keyed[:n], perKey-1)
		if ferr != nil {
			err = ferr
			return nil, fmt.Errorf("conveyor: claim followers: %w", err)
		}
		take = append(take, f...)
		keyed = keyed[n:]
	}
	args := append([]any{p.RelayID, p.Lease.Microseconds()}, hexArgs(take)...)
	if _, err = tx.ExecContext(ctx, `UPDATE conveyor_event
   SET locked_by = ?, locked_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
       lease_token = lease_token + 1, attempts = attempts + 1
 WHERE status = 0 AND id IN (`+placeholders(len(take))+`)`, args...); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	// Every row in take is locked by this transaction now (heads by FOR UPDATE, followers
	// by the UPDATE), so reading them back returns exactly what it leased.
	rows, err := tx.QueryContext(ctx, `SELECT `+claimedColumns+` FROM conveyor_event
 WHERE status = 0 AND locked_by = ? AND id IN (`+placeholders(len(take))+`)`, append([]any{p.RelayID}, hexArgs(take)...)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	var out []*store.Claimed
	for rows.Next() {
		c, serr := scanClaimed(rows)
		if serr != nil {
			rows.Close()
			err = serr
			return nil, err
		}
		out = append(out, c)
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: claim commit: %w", err)
	}
	store.SortClaimed(out)
	return out, nil
}

type idKey struct {
	id  uuid.UUID
	key sql.NullString
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) queryIDKeys(ctx context.Context, db querier, query string, args ...any) ([]idKey, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []idKey
	for rows.Next() {
		var raw string
		var r idKey
		if err := rows.Scan(&raw, &r.key); err != nil {
			return nil, err
		}
		if r.id, err = parseID(raw); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// followers returns, for each locked head, its next events up to most, stopping at the
// first that is not claimable.
func followers(ctx context.Context, tx *sql.Tx, heads []idKey, most int) ([]uuid.UUID, error) {
	branches := make([]string, len(heads))
	args := make([]any, 0, 4*len(heads))
	for i, h := range heads {
		branches[i] = followerSQL
		args = append(args, i, h.key.String, HexID(h.id), most)
	}
	rows, err := tx.QueryContext(ctx, strings.Join(branches, "\nUNION ALL\n"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type follower struct {
		id uuid.UUID
		ok bool
	}
	runs := make([][]follower, len(heads))
	for rows.Next() {
		var h int
		var raw string
		var ok bool
		if err := rows.Scan(&h, &raw, &ok); err != nil {
			return nil, err
		}
		id, err := parseID(raw)
		if err != nil {
			return nil, err
		}
		if h < 0 || h >= len(heads) {
			return nil, fmt.Errorf("follower of unknown head %d", h)
		}
		runs[h] = append(runs[h], follower{id, ok})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []uuid.UUID
	for _, run := range runs {
		// Branch order within UNION ALL is not promised: order each run by id.
		slices.SortFunc(run, func(a, b follower) int { return bytes.Compare(a.id[:], b.id[:]) })
		for _, f := range run {
			if !f.ok {
				break
			}
			out = append(out, f.id)
		}
	}
	return out, nil
}

func scanClaimed(rows *sql.Rows) (*store.Claimed, error) {
	var (
		c                              store.Claimed
		id                             string
		typ, source                    sql.NullString
		key, subject, idem, data, hdrs sql.NullString
		created, available             sql.NullTime
	)
	if err := rows.Scan(&id, &typ, &source, &key, &subject, &data, &hdrs, &idem,
		&created, &available, &c.Attempts, &c.LeaseToken); err != nil {
		return nil, fmt.Errorf("conveyor: claim: scan: %w", err)
	}
	var err error
	if c.ID, err = parseID(id); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	c.Type, c.Source, c.Key, c.Subject, c.IdempotencyKey = typ.String, source.String, key.String, subject.String, idem.String
	c.CreatedAt, c.AvailableAt = created.Time.UTC(), available.Time.UTC()
	// MariaDB's JSON is LONGTEXT with a json_valid check that other writers can drop:
	// validate like on SQLite.
	c.DecodeErr = store.DecodePayload(&c.Event, nullPtr(data), nullPtr(hdrs))
	return &c, nil
}

func nullPtr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

func nullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// settleKey groups outcomes that set the same values, so each group is one UPDATE.
type settleKey struct {
	kind  store.OutcomeKind
	delay int64
	err   string
	block bool
}

// Settle implements store.Store. In one transaction it locks the rows the relay still
// holds (same relay, lease not expired on the database clock), keeps those whose token
// matches, and updates them; every other outcome is reported as lease lost.
func (s *Store) Settle(ctx context.Context, p *store.SettleParams) (_ *store.SettleResult, err error) {
	if len(p.Outcomes) == 0 {
		return &store.SettleResult{}, nil
	}
	ids := make([]uuid.UUID, len(p.Outcomes))
	for i, o := range p.Outcomes {
		ids[i] = o.ID
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, `SELECT id, lease_token FROM conveyor_event
 WHERE status = 0 AND locked_by = ? AND locked_until > UTC_TIMESTAMP(6) AND id IN (`+placeholders(len(ids))+`)
   FOR UPDATE`, append([]any{p.RelayID}, hexArgs(ids)...)...)
	if err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	held := map[uuid.UUID]int64{}
	for rows.Next() {
		var raw string
		var token int64
		if err = rows.Scan(&raw, &token); err != nil {
			rows.Close()
			return nil, fmt.Errorf("conveyor: settle: %w", err)
		}
		id, perr := parseID(raw)
		if perr != nil {
			rows.Close()
			err = perr
			return nil, fmt.Errorf("conveyor: settle: %w", err)
		}
		held[id] = token
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	groups := map[settleKey][]uuid.UUID{}
	var order []settleKey
	var settled []uuid.UUID
	for _, o := range p.Outcomes {
		if tok, ok := held[o.ID]; !ok || tok != o.LeaseToken {
			continue
		}
		delete(held, o.ID) // an id listed twice is settled once
		k := settleKey{kind: o.Kind, err: store.TruncateError(o.Error), block: o.Kind == store.OutcomeDead && o.BlockKey}
		if o.Kind == store.OutcomeRetry || o.Kind == store.OutcomeRelease {
			k.delay = o.Delay.Microseconds()
		}
		if _, seen := groups[k]; !seen {
			order = append(order, k)
		}
		groups[k] = append(groups[k], o.ID)
		settled = append(settled, o.ID)
	}
	for _, k := range order {
		g := groups[k]
		if err = settleGroup(ctx, tx, p.RelayID, k, g); err != nil {
			return nil, fmt.Errorf("conveyor: settle: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("conveyor: settle commit: %w", err)
	}
	return store.SettleOutcome(p.Outcomes, settled), nil
}

func settleGroup(ctx context.Context, tx *sql.Tx, relayID string, k settleKey, ids []uuid.UUID) error {
	var set string
	var args []any
	switch k.kind {
	case store.OutcomePublished:
		set = `status = 1, published_at = UTC_TIMESTAMP(6)`
	case store.OutcomeRetry:
		set = `available_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND`
		args = append(args, k.delay)
	case store.OutcomeRelease:
		// attempts is unsigned: never below zero.
		set = `attempts = GREATEST(attempts, 1) - 1, available_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND`
		args = append(args, k.delay)
	case store.OutcomeDead:
		set = `status = 2, blocks_key = ?`
		args = append(args, k.block)
	default:
		return fmt.Errorf("unknown outcome kind %d", k.kind)
	}
	if k.kind != store.OutcomeDead {
		set += `, blocks_key = 0`
	}
	if k.err != "" {
		set += `, last_error = ?`
		args = append(args, k.err)
	}
	args = append(args, relayID)
	args = append(args, hexArgs(ids)...)
	res, err := tx.ExecContext(ctx, `UPDATE conveyor_event SET `+set+`, locked_by = NULL, locked_until = NULL
 WHERE status = 0 AND locked_by = ? AND id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(ids)) {
		return fmt.Errorf("updated %d of %d locked rows", n, len(ids))
	}
	return nil
}

// columnProbeSQL selects every column the relay uses; it fails when one is missing.
var columnProbeSQL = strings.Replace(store.ColumnProbeSQL, " key,", " `key`,", 1)

// uuidOrderProbe is true when the server orders UUIDv7 values by their bytes. MariaDB
// before 10.11.2 (10.7.8, 10.8.7, 10.9.5, 10.10.3; MDEV-29959) swapped the segments of
// every uuid for index order, which would break per-key order.
const uuidOrderProbe = `SELECT CAST('00000000-0000-7000-8000-000000000001' AS UUID) < CAST('00000001-0000-7000-8000-000000000000' AS UUID)`

// Check verifies the connection and the schema version.
func (s *Store) Check(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("conveyor: mysql %s unreachable: %w", s.target, err)
	}
	tables, err := s.tables(ctx)
	if err != nil {
		return fmt.Errorf("conveyor: check schema: %w", err)
	}
	if !tables["conveyor_event"] {
		return fmt.Errorf("%w (mysql %s)", conveyor.ErrSchemaMissing, s.target)
	}
	hasMigrations := tables["django_migrations"]
	var applied []string
	if hasMigrations {
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
	if err := store.CheckMigrations(applied, hasMigrations); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, columnProbeSQL); err != nil {
		return fmt.Errorf("conveyor: table conveyor_event does not have the expected columns (%v); run `python manage.py migrate conveyor`", err)
	}
	var idType string
	if err := s.db.QueryRowContext(ctx, `SELECT DATA_TYPE FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'conveyor_event' AND COLUMN_NAME = 'id'`).Scan(&idType); err != nil {
		return fmt.Errorf("conveyor: check schema: %w", err)
	}
	if strings.EqualFold(idType, "uuid") {
		var ordered bool
		if err := s.db.QueryRowContext(ctx, uuidOrderProbe).Scan(&ordered); err != nil {
			return fmt.Errorf("conveyor: check schema: %w", err)
		}
		if !ordered {
			var version string
			_ = s.db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&version)
			return fmt.Errorf("conveyor: MariaDB %s orders uuid values out of time order (MDEV-29959), which breaks per-key order; upgrade to MariaDB 10.11.2 or later", version)
		}
	}
	return nil
}

// tables reports which of the relay's tables exist in the current database.
func (s *Store) tables(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('conveyor_event', 'conveyor_audit', 'django_migrations')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out[strings.ToLower(name)] = true
	}
	return out, rows.Err()
}

// ageSQL is the age in seconds of a DATETIME(6) column's value on the database clock.
func ageSQL(expr string) string {
	return `TIMESTAMPDIFF(MICROSECOND, ` + expr + `, UTC_TIMESTAMP(6)) / 1000000.0`
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context) (*store.Stats, error) {
	var st store.Stats
	var oldest sql.NullFloat64
	err := s.db.QueryRowContext(ctx, `
SELECT COALESCE(SUM(status = 0), 0), COALESCE(SUM(status = 1), 0), COALESCE(SUM(status = 2), 0),
       COALESCE(SUM(status = 0 AND locked_until IS NOT NULL AND locked_until > UTC_TIMESTAMP(6)), 0),
       `+ageSQL(`MIN(CASE WHEN status = 0 THEN created_at END)`)+`
  FROM conveyor_event`).Scan(&st.Pending, &st.Published, &st.Dead, &st.InFlight, &oldest)
	if err != nil {
		return nil, fmt.Errorf("conveyor: stats: %w", err)
	}
	if oldest.Valid {
		st.OldestPending = time.Duration(oldest.Float64 * float64(time.Second))
	}
	return &st, nil
}

// eventTypeSQL groups and orders event types by their bytes, as on PostgreSQL, not by
// the column's case-insensitive collation.
const eventTypeSQL = `CONVERT(event_type USING utf8mb4) COLLATE utf8mb4_bin`

// Backlog implements store.Store. The inner LIMIT bounds the scan of
// conveyor_event_claim_idx (status = 0 first).
func (s *Store) Backlog(ctx context.Context) (*store.Backlog, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT `+eventTypeSQL+` AS t, COUNT(*), `+ageSQL(`MIN(created_at)`)+`
  FROM (SELECT event_type, created_at FROM conveyor_event WHERE status = 0 LIMIT ?) p
 GROUP BY t`, store.BacklogScanLimit+1)
	if err != nil {
		return nil, fmt.Errorf("conveyor: backlog: %w", err)
	}
	defer rows.Close()
	return store.ScanBacklog(rows)
}
