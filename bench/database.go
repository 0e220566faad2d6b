package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// database manages the benchmark's PostgreSQL databases on the test server: seeded
// templates (built once per shape) and the per-run copies cloned from them, so every
// run starts from the same table, freshly copied.
type database struct {
	adminDSN string // CONVEYOR_TEST_PG_DSN
	template string // the Django-migrated template, conveyor_template
	// params are extra connection parameters for the relays' URLs (e.g. jit=off), for
	// analysis runs; the report records them.
	params url.Values
}

// relayURL returns the DSN a relay uses for database name: url plus params.
func (d *database) relayURL(name string) string {
	u, err := url.Parse(d.url(name))
	if err != nil {
		panic(err)
	}
	q := u.Query()
	for k, v := range d.params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// url returns the DSN of database name.
func (d *database) url(name string) string {
	u, err := url.Parse(d.adminDSN)
	if err != nil {
		panic(fmt.Sprintf("bench: CONVEYOR_TEST_PG_DSN does not parse: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

func (d *database) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, d.adminDSN)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// create makes database name as a copy of template. FILE_COPY copies the files instead
// of WAL-logging every block, which is several times faster for a 2 GB seeded table.
func (d *database) create(ctx context.Context, name, template string) error {
	_ = d.drop(ctx, name)
	var err error
	for range 50 { // CREATE DATABASE ... TEMPLATE fails while another session uses the template
		err = d.exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY`,
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("create database %s from %s: %w", name, template, err)
}

func (d *database) drop(ctx context.Context, name string) error {
	return d.exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
}

// seed is one seeded template: n events keyed by mode.
type seed struct {
	name   string
	events int
	mode   keyMode
	keys   int
}

// build creates the seeded template: a copy of the migrated template holding s.events
// pending events, written with COPY, vacuumed and analyzed.
func (d *database) build(ctx context.Context, s seed) (time.Duration, error) {
	t0 := time.Now()
	if err := d.create(ctx, s.name, d.template); err != nil {
		return 0, err
	}
	conn, err := pgx.Connect(ctx, d.url(s.name))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == s.events {
			return nil, nil
		}
		id, err := uuid.NewV7() // monotonic within the process: ids follow i
		if err != nil {
			return nil, err
		}
		key := keyOf(s.mode, s.keys, i)
		var k any
		if key != "" {
			k = key
		}
		row := []any{id, eventType, eventSource, k, string(payload(i, key)), "{}"}
		i++
		return row, nil
	})
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"conveyor_event"},
		[]string{"id", "event_type", "source", "key", "data", "headers"}, src)
	if err != nil {
		return 0, fmt.Errorf("seed %s: copy: %w", s.name, err)
	}
	if int(n) != s.events {
		return 0, fmt.Errorf("seed %s: copied %d rows, want %d", s.name, n, s.events)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE conveyor_event`); err != nil {
		return 0, fmt.Errorf("seed %s: vacuum: %w", s.name, err)
	}
	return time.Since(t0), nil
}

// pendingAndPublished counts rows by status (a full scan: only called outside timings).
func pendingAndPublished(ctx context.Context, dsn string) (pending, published, dead int64, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 0), count(*) FILTER (WHERE status = 1),
	       count(*) FILTER (WHERE status = 2) FROM conveyor_event`).Scan(&pending, &published, &dead)
	return pending, published, dead, err
}

// avgDataBytes is the mean size of the stored payloads, as the relay reads them.
func avgDataBytes(ctx context.Context, dsn string) (float64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var v float64
	err = conn.QueryRow(ctx, `SELECT coalesce(avg(octet_length(data::text)), 0)::float8 FROM (SELECT data FROM conveyor_event LIMIT 1000) s`).Scan(&v)
	return v, err
}
