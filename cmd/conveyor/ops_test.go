package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/mysql"
	"github.com/conveyorhq/conveyor/store/postgres"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

// opsEnv is one database (PostgreSQL, MariaDB or SQLite, migrated by Django) with a
// config file pointing at it.
type opsEnv struct {
	t       *testing.T
	dialect outbox.Dialect
	url     string
	db      *sql.DB
	st      store.Store
	cfg     string
}

var backends = []struct {
	name    string
	dialect outbox.Dialect
}{{"postgres", outbox.Postgres}, {"mysql", outbox.MySQL}, {"sqlite", outbox.SQLite}}

func newOpsEnv(t *testing.T, d outbox.Dialect, extraYAML string) *opsEnv {
	t.Helper()
	e := &opsEnv{t: t, dialect: d}
	ctx := context.Background()
	switch d {
	case outbox.Postgres:
		e.url = testdb.PostgresURL(t)
		st, err := postgres.Open(ctx, postgres.Config{URL: e.url})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		db, err := sql.Open("pgx", e.url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		e.st, e.db = st, db
	case outbox.MySQL:
		e.url = testdb.MySQLURL(t)
		st, err := mysql.Open(ctx, mysql.Config{URL: e.url})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		e.st, e.db = st, st.DB()
	default:
		path := testdb.SQLitePath(t)
		e.url = "sqlite:///" + path
		st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		e.st, e.db = st, st.DB()
	}
	e.cfg = writeConfig(t, fmt.Sprintf(`
database: {url: "%s"}
sinks:
  main: {type: nats}
routes:
  - {name: orders, event_type: "order.*", sink: main, destination: "events.{event_type}"}
  - {name: rest, sink: main, destination: "events.{event_type}"}
telemetry: {listen: "off"}
%s`, e.url, extraYAML))
	return e
}

// cli runs a command against this env's config.
func (e *opsEnv) cli(args ...string) (int, string, string) {
	e.t.Helper()
	return cli(e.t, append(args, "--config", e.cfg)...)
}

func (e *opsEnv) q(query string) string {
	if e.dialect == outbox.MySQL {
		return strings.ReplaceAll(query, "SET key =", "SET `key` =") // a reserved word there
	}
	if e.dialect != outbox.Postgres {
		return query
	}
	n := 0
	return regexp.MustCompile(`\?`).ReplaceAllStringFunc(query, func(string) string { n++; return "$" + strconv.Itoa(n) })
}

func (e *opsEnv) idArg(id uuid.UUID) any {
	switch e.dialect {
	case outbox.SQLite:
		return sqlite.HexID(id)
	case outbox.MySQL:
		return mysql.HexID(id)
	}
	return id.String()
}

func (e *opsEnv) exec(query string, args ...any) {
	e.t.Helper()
	_, err := e.db.Exec(e.q(query), args...)
	require.NoError(e.t, err)
}

func (e *opsEnv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.QueryRow(e.q(query), args...).Scan(&n))
	return n
}

func (e *opsEnv) insert(evs ...*outbox.Event) []uuid.UUID {
	e.t.Helper()
	for _, ev := range evs {
		ev.Source = "ops-test"
		if ev.Data == nil {
			ev.Data = map[string]int{"n": 1}
		}
	}
	ids, err := outbox.Insert(context.Background(), e.db, e.dialect, evs...)
	require.NoError(e.t, err)
	return ids
}

func (e *opsEnv) many(typ, key string, n int) []uuid.UUID {
	evs := make([]*outbox.Event, n)
	for i := range evs {
		evs[i] = &outbox.Event{Type: typ, Key: key, Data: map[string]int{"seq": i}}
	}
	return e.insert(evs...)
}

// kill makes events dead as the relay would, with an error; block holds their key.
func (e *opsEnv) kill(msg string, block bool, ids ...uuid.UUID) {
	for _, id := range ids {
		e.exec(`UPDATE conveyor_event SET status = 2, attempts = 3, last_error = ?, blocks_key = ? WHERE id = ?`, msg, block, e.idArg(id))
	}
}

func (e *opsEnv) publish(ids ...uuid.UUID) {
	now := "now()"
	switch e.dialect {
	case outbox.SQLite:
		now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
	case outbox.MySQL:
		now = "UTC_TIMESTAMP(6)"
	}
	for _, id := range ids {
		e.exec(`UPDATE conveyor_event SET status = 1, attempts = 1, published_at = `+now+` WHERE id = ?`, e.idArg(id))
	}
}

func (e *opsEnv) status(id uuid.UUID) int {
	return e.count(`SELECT status FROM conveyor_event WHERE id = ?`, e.idArg(id))
}

func (e *opsEnv) claimIDs(perKey int) []uuid.UUID {
	e.t.Helper()
	c, err := e.st.Claim(context.Background(), &store.ClaimParams{RelayID: "test-relay", Limit: 100, PerKey: perKey, Lease: time.Minute})
	require.NoError(e.t, err)
	out := make([]uuid.UUID, len(c))
	for i, ev := range c {
		out[i] = ev.ID
	}
	return out
}

func TestOpsBadArguments(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "database: {url: \"sqlite:////nonexistent/db.sqlite3\"}\nsinks: {main: {type: nats}}\nroutes: [{sink: main, destination: x}]\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"dead"}, "a subcommand is required"},
		{[]string{"dead", "resurrect"}, `unknown subcommand "resurrect"`},
		{[]string{"dead", "list", "--since", "yesterday"}, `--since "yesterday": use RFC 3339`},
		{[]string{"dead", "list", "--limit", "0"}, "--limit must be between 1 and 10000"},
		{[]string{"dead", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"dead", "list", "--after-id", "x"}, `--after-id "x" is not an event id`},
		{[]string{"dead", "retry", "--id", "not-a-uuid"}, `--id "not-a-uuid" is not an event id`},
		{[]string{"dead", "retry", "--batch-size", "0"}, "--batch-size must be between 1 and 10000"},
		{[]string{"dead", "retry", "--limit", "-1"}, "--limit must not be negative"},
		{[]string{"dead", "retry", "--since", "1h", "--until", "2h"}, "is not before --until"},
		{[]string{"dead", "retry", "--actor", " "}, "--actor must not be empty"},
		{[]string{"dead", "discard", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"dead", "show"}, "expected one event id, got 0 arguments"},
		{[]string{"dead", "show", "a", "b"}, "expected one event id, got 2 arguments"},
		{[]string{"dead", "show", "zzz"}, `"zzz" is not an event id`},
		{[]string{"replay"}, "select the events: --id, --type, --key, --since or --until"},
		{[]string{"replay", "--error", "x"}, "flag provided but not defined: -error"},
		{[]string{"purge"}, "--older-than is required"},
		{[]string{"purge", "--older-than", "soon"}, `--older-than "soon": want a positive duration`},
		{[]string{"purge", "--older-than", "-1h"}, "want a positive duration"},
		{[]string{"config"}, "a subcommand is required"},
		{[]string{"config", "show"}, `unknown subcommand "show"`},
		{[]string{"config", "print", "x"}, `unexpected argument "x"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, append(tc.args, "--config", cfg)...)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Contains(t, errOut, tc.want)
		})
	}
	for _, args := range [][]string{{"dead", "--help"}, {"dead", "list", "--help"}, {"dead", "show", "--help"},
		{"dead", "retry", "--help"}, {"dead", "discard", "--help"}, {"replay", "--help"}, {"purge", "--help"},
		{"config", "--help"}, {"config", "print", "--help"}, {"status", "--help"}} {
		code, _, errOut := cli(t, args...)
		require.Equal(t, 0, code, args)
		require.Contains(t, errOut, "Usage: conveyor "+args[0], args)
	}
	_, out, _ := cli(t, "help")
	for _, sub := range []string{"dead", "replay", "purge", "config"} {
		require.Contains(t, out, sub)
	}
}

func TestOpsEmptyResults(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			code, out, errOut := e.cli("dead", "list")
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "no dead events match (all)")
			code, out, _ = e.cli("dead", "list", "--json")
			require.Equal(t, 0, code)
			require.Equal(t, "[]\n", out)
			code, out, _ = e.cli("dead", "retry", "--yes")
			require.Equal(t, 0, code)
			require.Contains(t, out, "dead retry: no events match (all)")
			code, out, _ = e.cli("dead", "discard", "--type", "order.*")
			require.Equal(t, 0, code)
			require.Contains(t, out, "dead discard: no events match --type \"order.*\"")
			code, out, _ = e.cli("replay", "--type", "*", "--yes", "--json")
			require.Equal(t, 0, code)
			var res changeResult
			require.NoError(t, json.Unmarshal([]byte(out), &res))
			require.Equal(t, changeResult{Action: "replay"}, res)
			code, out, _ = e.cli("purge", "--older-than", "7d")
			require.Equal(t, 0, code)
			require.Contains(t, out, "Would delete 0 published and 0 dead events")
			code, out, _ = e.cli("purge", "--older-than", "7d", "--include-dead", "--yes")
			require.Equal(t, 0, code)
			require.Contains(t, out, "deleted 0 published and 0 dead events")
			code, out, _ = e.cli("status")
			require.Equal(t, 0, code)
			require.Contains(t, out, "pending    0 (in flight 0)")
			require.Contains(t, out, "relays holding leases: none")
			code, _, errOut = e.cli("dead", "show", uuid.Must(uuid.NewV7()).String())
			require.Equal(t, 1, code)
			require.Contains(t, errOut, "event not found")
			require.Zero(t, e.count(`SELECT count(*) FROM conveyor_audit`), "nothing changed, nothing audited")
		})
	}
}

func TestOpsDeadRetryKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			a := e.many("order.paid", "order-1", 3)
			other := e.many("invoice.issued", "", 1)
			e.kill("broker rejected: Message Too Large", true, a[0])
			e.kill("timeout", false, other[0])
			require.Empty(t, e.claimIDsNoLease(), "the key is blocked")

			code, out, _ := e.cli("dead", "list", "--error", "TOO LARGE")
			require.Equal(t, 0, code)
			require.Contains(t, out, a[0].String())
			require.Contains(t, out, "[blocks key] broker rejected")
			require.NotContains(t, out, other[0].String())
			require.Contains(t, out, "1 of 1 matching dead event.")
			code, out, _ = e.cli("dead", "list", "--limit", "1")
			require.Equal(t, 0, code)
			require.Contains(t, out, "Next page: --after-id "+a[0].String())

			// Dry run by default: shows, changes nothing.
			code, out, _ = e.cli("dead", "retry", "--key", "order-1")
			require.Equal(t, 0, code)
			require.Contains(t, out, "dry run, nothing changed. 1 event would be retried")
			require.Contains(t, out, "Run again with --yes to retry them.")
			require.Equal(t, 2, e.status(a[0]))

			code, out, errOut := e.cli("dead", "retry", "--key", "order-1", "--yes", "--actor", "alice@ops", "--reason", "broker limit raised")
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "dead retry: 1 event retried (audit actor alice@ops)")
			require.Equal(t, 0, e.status(a[0]))
			require.Equal(t, 2, e.status(other[0]))
			// The retried head goes first, then the rest of its key, in order.
			require.Equal(t, a, e.claimIDs(10)[:3])

			code, out, _ = e.cli("dead", "show", a[0].String())
			require.Equal(t, 0, code)
			require.Contains(t, out, "last error:    broker rejected: Message Too Large")
			require.Contains(t, out, "retry    alice@ops  conveyor dead retry --key order-1; reason: broker limit raised")
			code, out, _ = e.cli("dead", "show", "--json", a[0].String())
			require.Equal(t, 0, code)
			var shown struct {
				Status string           `json:"status"`
				Data   map[string]int   `json:"data"`
				Audit  []map[string]any `json:"audit"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &shown))
			require.Equal(t, "pending", shown.Status)
			require.Equal(t, map[string]int{"seq": 0}, shown.Data)
			require.Len(t, shown.Audit, 1)
			require.Equal(t, "alice@ops", shown.Audit[0]["actor"])
		})
	}
}

// claimIDsNoLease reports what a claim would return, then releases it.
func (e *opsEnv) claimIDsNoLease() []uuid.UUID {
	e.t.Helper()
	c, err := e.st.Claim(context.Background(), &store.ClaimParams{RelayID: "peek", Limit: 100, PerKey: 10, Lease: time.Minute})
	require.NoError(e.t, err)
	outs := make([]store.Outcome, len(c))
	ids := make([]uuid.UUID, len(c))
	for i, ev := range c {
		outs[i] = store.Outcome{ID: ev.ID, LeaseToken: ev.LeaseToken, Kind: store.OutcomeRelease}
		ids[i] = ev.ID
	}
	_, err = e.st.Settle(context.Background(), &store.SettleParams{RelayID: "peek", Outcomes: outs})
	require.NoError(e.t, err)
	return ids
}

func TestOpsDeadDiscardUnblocksKey(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			b := e.many("order.placed", "order-9", 2)
			e.kill("schema mismatch", true, b[0])
			code, out, errOut := e.cli("dead", "discard", "--id", b[0].String(), "--yes", "--json", "--reason", "obsolete")
			require.Equal(t, 0, code, errOut)
			var res changeResult
			require.NoError(t, json.Unmarshal([]byte(out), &res))
			require.Equal(t, []string{b[0].String()}, res.IDs)
			require.Equal(t, 2, e.status(b[0]), "the row stays, dead")
			require.Equal(t, 1, e.count(`SELECT count(*) FROM conveyor_event WHERE discarded_at IS NOT NULL AND NOT blocks_key`))
			require.Equal(t, b[1:], e.claimIDs(10), "the key moves on")
			_, out, _ = e.cli("dead", "list")
			require.Contains(t, out, "no dead events match")
			_, out, _ = e.cli("dead", "list", "--include-discarded")
			require.Contains(t, out, "[discarded] schema mismatch")
			require.Equal(t, 1, e.count(`SELECT count(*) FROM conveyor_audit WHERE action = 'discard' AND detail LIKE '%reason: obsolete'`))
		})
	}
}

// cancelAfter cancels a context once the output contains a string: the test's Ctrl-C.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	substr string
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.substr) {
		w.cancel()
	}
	return len(p), nil
}

func (w *cancelAfter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// interrupted runs a command and cancels it after the first batch's progress line.
func (e *opsEnv) interrupted(after string, args ...string) (int, string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelAfter{substr: after, cancel: cancel}
	code := mainContext(ctx, append(args, "--config", e.cfg), io.Discard, w)
	return code, w.String()
}

func TestOpsInterruptedRunsResume(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			pub := e.many("order.paid", "", 10)
			e.publish(pub...)
			dead := e.many("order.failed", "", 6)
			e.kill("boom", false, dead...)
			old := e.many("order.old", "", 5)
			e.publish(old...)
			e.exec(`UPDATE conveyor_event SET published_at = ` + e.ago(48*time.Hour) + ` WHERE event_type = 'order.old'`)
			e.exec(`UPDATE conveyor_event SET created_at = ` + e.ago(72*time.Hour)) // ids are older still

			// replay: stops after the batch in progress and says how to resume.
			code, errOut := e.interrupted("replay: 3/10 events", "replay", "--type", "order.paid", "--batch-size", "3", "--yes")
			require.Equal(t, 130, code, errOut)
			require.Contains(t, errOut, "interrupted after 3 of 10 events; every finished batch is complete")
			m := regexp.MustCompile(`--after-id (\S+)`).FindStringSubmatch(errOut)
			require.NotNil(t, m, errOut)
			require.Equal(t, pub[2].String(), m[1])
			require.Equal(t, 3, e.count(`SELECT count(*) FROM conveyor_event WHERE event_type = 'order.paid' AND status = 0`))
			require.Equal(t, 3, e.count(`SELECT count(*) FROM conveyor_audit WHERE action = 'replay'`), "a batch is rows and audit together")
			code, out, errOut2 := e.cli("replay", "--type", "order.paid", "--batch-size", "3", "--yes", "--after-id", m[1])
			require.Equal(t, 0, code, errOut2)
			require.Contains(t, out, "replay: 7 events replayed")
			require.Equal(t, 10, e.count(`SELECT count(*) FROM conveyor_event WHERE event_type = 'order.paid' AND status = 0`))
			require.Equal(t, 10, e.count(`SELECT count(DISTINCT event) FROM conveyor_audit WHERE action = 'replay'`), "each event replayed once")
			require.Equal(t, 10, e.count(`SELECT count(*) FROM conveyor_audit WHERE action = 'replay'`))

			// dead retry: re-running the same command continues.
			code, errOut = e.interrupted("retry: 2/6 events", "dead", "retry", "--batch-size", "2", "--yes")
			require.Equal(t, 130, code, errOut)
			require.Contains(t, errOut, "Run the same command again to continue")
			require.Equal(t, 4, e.count(`SELECT count(*) FROM conveyor_event WHERE status = 2`))
			code, out, _ = e.cli("dead", "retry", "--batch-size", "2", "--yes")
			require.Equal(t, 0, code)
			require.Contains(t, out, "dead retry: 4 events retried")
			require.Zero(t, e.count(`SELECT count(*) FROM conveyor_event WHERE status = 2`))

			// purge: the same.
			code, errOut = e.interrupted("purge: 2/5 events", "purge", "--older-than", "1d", "--batch-size", "2", "--yes")
			require.Equal(t, 130, code, errOut)
			require.Contains(t, errOut, "purge: interrupted; every finished batch is complete")
			require.Equal(t, 3, e.count(`SELECT count(*) FROM conveyor_event WHERE event_type = 'order.old'`))
			code, out, _ = e.cli("purge", "--older-than", "1d", "--batch-size", "2", "--yes")
			require.Equal(t, 0, code)
			require.Contains(t, out, "deleted 3 published and 0 dead events")
			require.Zero(t, e.count(`SELECT count(*) FROM conveyor_event WHERE event_type = 'order.old'`))
			require.Equal(t, 16, e.count(`SELECT count(*) FROM conveyor_event`), "nothing else was touched")
		})
	}
}

func (e *opsEnv) ago(d time.Duration) string {
	switch e.dialect {
	case outbox.Postgres:
		return fmt.Sprintf("now() - interval '%d seconds'", int(d.Seconds()))
	case outbox.MySQL:
		return fmt.Sprintf("UTC_TIMESTAMP(6) - INTERVAL %d SECOND", int(d.Seconds()))
	}
	return fmt.Sprintf("strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-%d seconds')", int(d.Seconds()))
}

func TestOpsPurgeKeepsPendingAndDead(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			pub := e.many("a", "", 4)
			e.publish(pub...)
			dead := e.many("d", "", 2)
			e.kill("x", false, dead...)
			pending := e.many("p", "k", 3)
			e.exec(`UPDATE conveyor_event SET created_at = ` + e.ago(10*24*time.Hour))
			e.exec(`UPDATE conveyor_event SET published_at = ` + e.ago(10*24*time.Hour) + ` WHERE status = 1`)
			code, out, _ := e.cli("purge", "--older-than", "7d", "--json")
			require.Equal(t, 0, code)
			require.JSONEq(t, `{"dry_run":true,"published":4,"dead":0,"interrupted":false}`, out)
			code, out, _ = e.cli("purge", "--older-than", "7d", "--yes")
			require.Equal(t, 0, code)
			require.Contains(t, out, "deleted 4 published and 0 dead events")
			require.Equal(t, 5, e.count(`SELECT count(*) FROM conveyor_event`))
			code, out, _ = e.cli("purge", "--older-than", "7d", "--include-dead", "--yes", "--actor", "bob")
			require.Equal(t, 0, code)
			require.Contains(t, out, "deleted 0 published and 2 dead events")
			require.Equal(t, 3, e.count(`SELECT count(*) FROM conveyor_event WHERE status = 0`), "pending events are never purged")
			for _, id := range pending {
				require.Equal(t, 0, e.status(id))
			}
			require.Equal(t, 1, e.count(`SELECT count(*) FROM conveyor_audit WHERE action = 'purge' AND actor = 'bob' AND event IS NULL AND detail LIKE 'conveyor purge --older-than 7d --include-dead: deleted 2 rows%'`))
		})
	}
}

// TestOpsPurgeRacesRunningRelay runs `conveyor run` (with its retention janitor) while
// events are written and `conveyor purge` runs again and again: every event is
// published, and the rows purged plus the rows left add up to every event written.
func TestOpsPurgeRacesRunningRelay(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			runCfg := writeConfig(t, fmt.Sprintf(`
database: {url: "%s"}
relay: {poll_interval: 20ms, id: racing-relay}
sinks:
  default:
    type: nats
    embedded: {enabled: true, port: -1, store_dir: %s}
    create_stream: true
routes:
  - {name: all, sink: default, destination: "events.{event_type}"}
telemetry: {listen: "off"}
retention: {published: 1ms, interval: 1s, batch_size: 7, pause: 1ms}
`, e.url, t.TempDir()))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs syncBuffer
			done := make(chan error, 1)
			go func() { done <- runCmd(ctx, []string{"--config", runCfg}, io.Discard, &logs) }()

			const total = 240
			written := make(chan struct{})
			go func() {
				defer close(written)
				for i := range total / 4 {
					_, err := outbox.Insert(context.Background(), e.db, e.dialect,
						&outbox.Event{Type: "t", Source: "w", Key: fmt.Sprintf("k%d", i%5), Data: map[string]int{"i": i}},
						&outbox.Event{Type: "t", Source: "w", Key: fmt.Sprintf("k%d", i%5), Data: map[string]int{"i": i}},
						&outbox.Event{Type: "t", Source: "w", Data: map[string]int{"i": i}},
						&outbox.Event{Type: "t", Source: "w", Data: map[string]int{"i": i}})
					if err != nil {
						t.Error(err)
						return
					}
					time.Sleep(30 * time.Millisecond)
				}
			}()
			purges := 0
			for racing := true; racing; purges++ {
				select {
				case <-written:
					racing = false
				default:
				}
				code, _, errOut := e.cli("purge", "--older-than", "1ms", "--batch-size", "5", "--yes", "--actor", "racer")
				require.Equal(t, 0, code, errOut)
				time.Sleep(50 * time.Millisecond)
			}
			require.Eventually(t, func() bool {
				return e.count(`SELECT count(*) FROM conveyor_event WHERE status <> 1`) == 0
			}, 30*time.Second, 20*time.Millisecond, "every event gets published; logs:\n%s", logs.String())
			code, _, errOut := e.cli("purge", "--older-than", "1ms", "--yes", "--actor", "racer")
			require.Equal(t, 0, code, errOut)
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err, logs.String())
			case <-time.After(30 * time.Second):
				t.Fatal("run did not stop")
			}
			// Every purge batch says how many rows it deleted, and they were all published.
			rows, err := e.db.Query(`SELECT actor, detail FROM conveyor_audit WHERE action = 'purge'`)
			require.NoError(t, err)
			defer rows.Close()
			re := regexp.MustCompile(`deleted (\d+) rows; (\d+) published before`)
			deleted, byJanitor := 0, 0
			for rows.Next() {
				var actor, detail string
				require.NoError(t, rows.Scan(&actor, &detail))
				m := re.FindStringSubmatch(detail)
				require.NotNil(t, m, detail)
				require.Equal(t, m[1], m[2], "only published rows are deleted: %s", detail)
				n, _ := strconv.Atoi(m[1])
				deleted += n
				if actor == "racing-relay" {
					byJanitor += n
				}
			}
			require.NoError(t, rows.Err())
			left := e.count(`SELECT count(*) FROM conveyor_event`)
			require.Equal(t, total, deleted+left, "purged + left = written: no pending event was lost")
			require.Positive(t, deleted)
			require.Contains(t, logs.String(), "retention janitor started")
			t.Logf("%d purge runs; %d rows purged (%d by the janitor), %d left", purges, deleted, byJanitor, left)
		})
	}
}

func TestOpsStatus(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newOpsEnv(t, be.dialect, "")
			paid := e.many("order.paid", "", 3)
			inv := e.many("invoice.issued", "", 2)
			e.publish(paid[0])
			e.kill("nope", true, inv[0])
			e.exec(`UPDATE conveyor_event SET key = 'k' WHERE id = ?`, e.idArg(inv[0]))
			require.Len(t, e.claimIDs(1), 3) // paid[1], paid[2], inv[1] leased by test-relay

			code, out, errOut := e.cli("status", "--json", "--metrics-url", "")
			require.Equal(t, 0, code, errOut)
			var rep statusReport
			require.NoError(t, json.Unmarshal([]byte(out), &rep))
			require.Equal(t, int64(3), rep.Pending)
			require.Equal(t, int64(3), rep.InFlight)
			require.Equal(t, int64(1), rep.Published)
			require.Equal(t, int64(1), rep.Dead)
			require.Equal(t, int64(1), rep.BlockedKeys)
			require.Equal(t, []statusCount{
				{EventType: "invoice.issued", Route: "rest", Pending: 1, InFlight: 1, Dead: 1, OldestPending: rep.ByType[0].OldestPending},
				{EventType: "order.paid", Route: "orders", Pending: 2, InFlight: 2, Published: 1, OldestPending: rep.ByType[1].OldestPending},
			}, rep.ByType)
			require.Len(t, rep.ByRoute, 2)
			require.Equal(t, "orders", rep.ByRoute[0].Route)
			require.Equal(t, int64(2), rep.ByRoute[0].Pending)
			require.Len(t, rep.Leases, 1)
			require.Equal(t, "test-relay", rep.Leases[0].RelayID)
			require.Equal(t, int64(3), rep.Leases[0].Events)
			require.Nil(t, rep.Circuits)
			require.Contains(t, rep.CircuitsNote, "unknown")

			// Circuits come from a relay's /metrics when there is one.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprint(w, "# TYPE conveyor_circuit_state gauge\nconveyor_circuit_state{sink=\"main\"} 1\nconveyor_circuit_state{sink=\"dlq\"} 0\n"+
					"conveyor_circuit_open_seconds{sink=\"main\"} 125.5\n")
			}))
			defer srv.Close()
			code, out, _ = e.cli("status", "--metrics-url", srv.URL)
			require.Equal(t, 0, code)
			require.Contains(t, out, "dead       1 (discarded 0, keys blocked 1)")
			require.Contains(t, out, "order.paid")
			require.Contains(t, out, "test-relay")
			require.Contains(t, out, "circuits (from "+srv.URL+"):\n  dlq              closed\n  main             open for 2m6s")
			code, out, _ = e.cli("status", "--metrics-url", "http://127.0.0.1:1/metrics")
			require.Equal(t, 0, code)
			require.Contains(t, out, "circuits: unknown: no relay metrics at http://127.0.0.1:1/metrics")
		})
	}
}

func TestConfigPrintRedactsAndLayers(t *testing.T) {
	t.Parallel()
	base := writeConfig(t, `
database: {url: "postgres://conveyor:db-pass-4242@db:5432/shop"}
sinks:
  main: {type: nats, url: "nats://relay:nats-pass-9898@nats:4222"}
routes:
  - {name: all, sink: main, destination: "events.{event_type}"}
`)
	prod := writeConfig(t, "relay: {batch_size: 900}\nretention: {published: 7d}\n")
	code, out, errOut := cli(t, "config", "print", "--config", base, "--config", prod)
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "db-pass-4242")
	require.NotContains(t, out, "nats-pass-9898")
	require.Contains(t, out, "postgres://conveyor:REDACTED@db:5432/shop")
	require.Contains(t, out, "batch_size: 900")
	require.Contains(t, out, "published: 168h0m0s")
	require.Contains(t, out, "interval: 5m0s")

	// A bad value elsewhere: the error names the field and never the secrets.
	bad := writeConfig(t, "relay: {batchsize: 1}\nsinks: {main: {ack_timout: 1s}}\n")
	code, _, errOut = cli(t, "config", "print", "--config", base, "--config", bad)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `relay.batchsize: unknown key (did you mean "batch_size"?) (`+bad+`:1)`)
	require.Contains(t, errOut, `sinks.main.ack_timout: unknown key (did you mean "ack_timeout"?)`)
	require.NotContains(t, errOut, "db-pass-4242")
	code, _, errOut = cli(t, "check", "--config", base, "--config", writeConfig(t, "database: {url: \"mongodb://u:db-pass-4242@x/db\"}\n"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "database.url: unsupported scheme")
	require.NotContains(t, errOut, "db-pass-4242")
}

// TestConfigEnvOverrides is not parallel: it sets process environment variables.
func TestConfigEnvOverrides(t *testing.T) {
	const secret = "env-nats-secret-5150"
	t.Setenv("CONVEYOR_RELAY__BATCH_SIZE", "77")
	t.Setenv("CONVEYOR_SINKS__MAIN__USER", "relay")
	t.Setenv("CONVEYOR_SINKS__MAIN__PASSWORD", secret)
	t.Setenv("CONVEYOR_RETENTION__DEAD", "30d")
	cfg := writeConfig(t, "sinks:\n  main: {type: nats}\nroutes:\n  - {sink: main, destination: x}\n")
	code, out, errOut := cli(t, "config", "print", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "batch_size: 77")
	require.Contains(t, out, "dead: 720h0m0s")
	require.NotContains(t, out, secret)
	require.Contains(t, out, "REDACTED")

	t.Setenv("CONVEYOR_RELAY__WORKERZ", "3")
	code, _, errOut = cli(t, "check", "--config", cfg)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `relay.workerz: unknown key (did you mean "workers"?) (from $CONVEYOR_RELAY__WORKERZ)`)
	require.NotContains(t, errOut, secret)
}
