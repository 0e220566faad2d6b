// Package postgres is the PostgreSQL Store, on pgx v5. It runs against the schema made by
// the Django migrations (docs/contract.md) and wakes the relay with LISTEN/NOTIFY.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

// NotifyChannel is the channel the migration's statement-level trigger notifies.
const NotifyChannel = "conveyor_event"

// Config configures the PostgreSQL store.
type Config struct {
	// URL is a libpq-style connection URL or DSN. Required.
	URL string
	// MaxConns caps the pool. Default 8.
	MaxConns int32
	// Logger receives listener errors. Default slog.Default().
	Logger *slog.Logger
}

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	cfg    pgx.ConnConfig
	logger *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Open connects to the database and verifies the connection. The error never contains
// the password.
func Open(ctx context.Context, c Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("conveyor: database url for postgres is malformed (%s): expected postgres://user:password@host:5432/dbname", scrubParseError(err))
	}
	pc.MaxConns = 8
	// The claim query is short and planned fresh each time; with a large backlog the
	// planner's cost estimate crosses the JIT threshold and PostgreSQL compiles it on every
	// run (84% of the backend's CPU on an all-unkeyed backlog, bench/results). Off unless
	// the URL sets it.
	if _, ok := pc.ConnConfig.RuntimeParams["jit"]; !ok {
		pc.ConnConfig.RuntimeParams["jit"] = "off"
	}
	// Custom plans for the relay's prepared statements. A generic plan is made once and
	// kept until the table's statistics change; one made while the table was small (a
	// new deployment, a fresh clone) keeps scanning the whole table to find a few heads
	// long after it has grown, until autovacuum's next ANALYZE: 9 ms claims and a 60 ms
	// p99 at 1,000 events/s in make bench, against 2 ms and 7 ms with custom plans,
	// which are planned on the table's current size every time (docs/benchmarks.md).
	if _, ok := pc.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		pc.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("conveyor: connect to postgres %s: %w", describe(pc.ConnConfig), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("conveyor: connect to postgres %s: %w", describe(pc.ConnConfig), err)
	}
	return &Store{pool: pool, cfg: *pc.ConnConfig, logger: logger}, nil
}

// describe names a connection target without its password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("host=%s port=%d user=%s database=%s", c.Host, c.Port, c.User, c.Database)
}

// scrubParseError drops pgx's echo of the input, which can hold a password.
func scrubParseError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if pe.Unwrap() != nil {
			return pe.Unwrap().Error()
		}
		return "cannot parse"
	}
	return "cannot parse"
}

// Pool exposes the connection pool for tests and tools in this module.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close releases the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// SupportsListenNotify is true: commits wake the relay through NOTIFY.
func (s *Store) SupportsListenNotify() bool { return true }

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, p *store.ClaimParams) ([]*store.Claimed, error) {
	perKey := max(p.PerKey, 1)
	rows, err := s.pool.Query(ctx, claimSQL, p.RelayID, p.Limit, p.Lease.Seconds(), perKey-1)
	if err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	defer rows.Close()
	var out []*store.Claimed
	for rows.Next() {
		var (
			c                      store.Claimed
			key, subject, idem     *string
			data, headers          *string
			createdAt, availableAt time.Time
			attempts               int32
		)
		if err := rows.Scan(&c.ID, &c.Type, &c.Source, &key, &subject, &data, &headers,
			&idem, &createdAt, &availableAt, &attempts, &c.LeaseToken); err != nil {
			return nil, fmt.Errorf("conveyor: claim: scan: %w", err)
		}
		c.Key, c.Subject, c.IdempotencyKey = deref(key), deref(subject), deref(idem)
		c.CreatedAt, c.AvailableAt, c.Attempts = createdAt, availableAt, int(attempts)
		c.DecodeErr = store.DecodeJSONB(&c.Event, data, headers)
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conveyor: claim: %w", err)
	}
	store.SortClaimed(out)
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Settle implements store.Store.
func (s *Store) Settle(ctx context.Context, p *store.SettleParams) (*store.SettleResult, error) {
	n := len(p.Outcomes)
	if n == 0 {
		return &store.SettleResult{}, nil
	}
	ids := make([]uuid.UUID, n)
	tokens := make([]int64, n)
	kinds := make([]int32, n)
	delays := make([]int64, n)
	errs := make([]string, n)
	blocks := make([]bool, n)
	for i, o := range p.Outcomes {
		blocks[i] = o.BlockKey
		ids[i], tokens[i], kinds[i] = o.ID, o.LeaseToken, int32(o.Kind)
		delays[i], errs[i] = o.Delay.Milliseconds(), store.TruncateError(o.Error)
	}
	rows, err := s.pool.Query(ctx, settleSQL, p.RelayID, ids, tokens, kinds, delays, errs, blocks)
	if err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	settled, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("conveyor: settle: %w", err)
	}
	return store.SettleOutcome(p.Outcomes, settled), nil
}

// Check verifies the connection and the schema version.
func (s *Store) Check(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("conveyor: postgres %s unreachable: %w", describe(&s.cfg), err)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('conveyor_event') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("conveyor: check schema: %w", err)
	}
	if !exists {
		return conveyor.ErrSchemaMissing
	}
	var hasMigrations bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('django_migrations') IS NOT NULL`).Scan(&hasMigrations); err != nil {
		return fmt.Errorf("conveyor: check schema: %w", err)
	}
	var applied []string
	if hasMigrations {
		rows, err := s.pool.Query(ctx, `SELECT name FROM django_migrations WHERE app = 'conveyor' ORDER BY name`)
		if err != nil {
			return fmt.Errorf("conveyor: check schema: %w", err)
		}
		if applied, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("conveyor: check schema: %w", err)
		}
	}
	if err := store.CheckMigrations(applied, hasMigrations); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, store.ColumnProbeSQL); err != nil {
		return fmt.Errorf("conveyor: table conveyor_event does not have the expected columns (%v); run `python manage.py migrate conveyor`", err)
	}
	return nil
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context) (*store.Stats, error) {
	var st store.Stats
	var oldest *float64
	err := s.pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE status = 0),
       count(*) FILTER (WHERE status = 1),
       count(*) FILTER (WHERE status = 2),
       count(*) FILTER (WHERE status = 0 AND locked_until > now()),
       extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 0))::float8
  FROM conveyor_event`).Scan(&st.Pending, &st.Published, &st.Dead, &st.InFlight, &oldest)
	if err != nil {
		return nil, fmt.Errorf("conveyor: stats: %w", err)
	}
	if oldest != nil {
		st.OldestPending = time.Duration(*oldest * float64(time.Second))
	}
	return &st, nil
}

// Backlog implements store.Store. The inner LIMIT bounds the scan of the partial
// indexes; the ages come from the same rows.
func (s *Store) Backlog(ctx context.Context) (*store.Backlog, error) {
	rows, err := s.pool.Query(ctx, `
SELECT event_type, count(*), extract(epoch FROM now() - min(created_at))::float8
  FROM (SELECT event_type, created_at FROM conveyor_event WHERE status = 0 LIMIT $1) p
 GROUP BY event_type`, store.BacklogScanLimit+1)
	if err != nil {
		return nil, fmt.Errorf("conveyor: backlog: %w", err)
	}
	defer rows.Close()
	return store.ScanBacklog(rows)
}

// Listen delivers a wake-up for every NOTIFY on NotifyChannel, and one after each
// (re)connect so a notification missed while disconnected costs nothing.
func (s *Store) Listen(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	wake := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, s.cfg.Copy())
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				s.logger.WarnContext(ctx, "postgres listener error; reconnecting", "err", err)
			}
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(NotifyChannel, handler{wake: wake})
	go func() {
		defer close(ch)
		_ = l.Listen(ctx)
	}()
	return ch, nil
}

type handler struct{ wake func() }

func (h handler) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	h.wake()
	return nil
}

func (h handler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.wake()
	return nil
}
