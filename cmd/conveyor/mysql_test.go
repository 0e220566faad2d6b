package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/mysql"
)

// TestRunOnMySQL runs `conveyor run` against MariaDB (migrated by Django) and a NATS
// JetStream server while writers commit events in their own transactions, and roll some
// back: every committed event reaches the stream once, each key's events in the order
// they were recorded, and no rolled-back event ever does.
func TestRunOnMySQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.MySQLURL(t)
	st, err := mysql.Open(ctx, mysql.Config{URL: dbURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	db := st.DB()

	emb, err := natsjs.StartEmbedded(ctx, natsjs.EmbeddedConfig{Port: -1, StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { emb.Shutdown() })

	cfg := writeConfig(t, fmt.Sprintf(`
database: {url: %q, listen: true}
relay: {id: mysql-relay, batch_size: 16, per_key: 4, workers: 3}
sinks:
  main: {type: nats, url: %q, create_stream: true}
routes:
  - {name: all, sink: main, destination: "events.{event_type}"}
telemetry: {listen: "off"}
`, dbURL, emb.ClientURL()))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- runCmd(runCtx, []string{"--config", cfg}, io.Discard, &logs) }()

	const keys, perKey, writers = 5, 30, 3
	var (
		mu         sync.Mutex
		committed  = map[uuid.UUID]bool{}
		rolledBack = map[uuid.UUID]bool{}
		wg         sync.WaitGroup
	)
	record := func(tx *sql.Tx, ev *outbox.Event) (uuid.UUID, error) {
		ids, err := outbox.Insert(ctx, tx, outbox.MySQL, ev)
		if err != nil {
			return uuid.Nil, err
		}
		return ids[0], nil
	}
	// write records one key's event (and an unordered one) in a transaction, and
	// commits it or rolls it back.
	write := func(key string, seq int, commit bool) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		id, err := record(tx, &outbox.Event{Type: "order.changed", Source: "shop", Key: key, Data: map[string]any{"key": key, "seq": seq}})
		if err != nil {
			return err
		}
		free, err := record(tx, &outbox.Event{Type: "audit.logged", Source: "shop", Data: map[string]any{"key": key, "seq": seq}})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !commit {
			rolledBack[id], rolledBack[free] = true, true
			return tx.Rollback()
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		committed[id], committed[free] = true, true
		return nil
	}
	// Each writer owns some keys, so a key's events are recorded one after another
	// (concurrent writers of one key must lock the aggregate: docs/contract.md).
	for w := range writers {
		wg.Go(func() {
			for i := range perKey {
				for k := w; k < keys; k += writers {
					key := fmt.Sprintf("order-%d", k)
					if err := write(key, i, true); err != nil {
						t.Error(err)
						return
					}
					if i%7 == 3 { // a transaction that fails after recording its events
						if err := write(key, -1, false); err != nil {
							t.Error(err)
							return
						}
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	require.NotEmpty(t, rolledBack)
	want := len(committed)
	require.Equal(t, 2*keys*perKey, want)

	nc, err := nats.Connect(emb.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := js.Stream(ctx, natsjs.DefaultStream)
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "the relay creates the stream; logs:\n%s", logs.String())
	cons, err := js.OrderedConsumer(ctx, natsjs.DefaultStream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)

	seen := map[uuid.UUID]int{}
	seqs := map[string][]int{}
	// read collects messages until the deadline, or until want have arrived when stopEarly.
	read := func(until time.Time, stopEarly bool) {
		for time.Now().Before(until) && !(stopEarly && len(seen) >= want) {
			batch, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
			require.NoError(t, err)
			for m := range batch.Messages() {
				id, err := uuid.Parse(m.Headers().Get("Nats-Msg-Id"))
				require.NoError(t, err)
				seen[id]++
				if strings.HasPrefix(m.Subject(), "events.order.") {
					var body struct {
						Key string `json:"key"`
						Seq int    `json:"seq"`
					}
					require.NoError(t, json.Unmarshal(m.Data(), &body))
					seqs[body.Key] = append(seqs[body.Key], body.Seq)
				}
			}
			require.NoError(t, batch.Error())
		}
	}
	read(time.Now().Add(60*time.Second), true)
	require.Len(t, seen, want, "every committed event arrives; logs:\n%s", logs.String())
	// Let the relay run on: nothing more may arrive (no rolled-back event, no duplicate).
	read(time.Now().Add(time.Second), false)
	for id, n := range seen {
		require.True(t, committed[id], "event %s was never committed", id)
		require.False(t, rolledBack[id], "rolled-back event %s was published", id)
		require.Equal(t, 1, n, "event %s arrived %d times", id, n)
	}
	require.Len(t, seqs, keys)
	for key, got := range seqs {
		for i, s := range got {
			require.Equal(t, i, s, "key %s out of order: %v", key, got)
		}
	}
	var left int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM conveyor_event WHERE status <> 1`).Scan(&left))
	require.Zero(t, left, "every event is settled as published")
	stop()
	select {
	case err := <-done:
		require.NoError(t, err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
}

// TestMySQLPollsOften: database.listen has no effect on MySQL, which has no
// notifications; with nothing to wake it the relay polls every 100ms by default.
func TestMySQLPollsOften(t *testing.T) {
	t.Parallel()
	dbURL := testdb.MySQLURL(t)
	c, err := loadConfig([]string{writeConfig(t, "database: {url: \""+dbURL+"\", listen: true}\nsinks: {a: {type: nats}}\nroutes: [{sink: a, destination: x}]\n")})
	require.NoError(t, err)
	st, err := openStore(context.Background(), c, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.False(t, st.SupportsListenNotify())
	require.Equal(t, 100*time.Millisecond, relayConfig(c, st).PollInterval)
}

// TestMySQLErrorsAreClearAndRedacted: a wrong password, an unreachable server and a
// missing migration fail `check`, `run` and `status` with a message that says what to do
// and never shows the password.
func TestMySQLErrorsAreClearAndRedacted(t *testing.T) {
	t.Parallel()
	good := testdb.MySQLURL(t)
	u, err := url.Parse(good)
	require.NoError(t, err)
	const wrong = "not-the-password-5c1d"
	u.User = url.UserPassword(u.User.Username(), wrong)
	tail := "\nsinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: 'events.{event_type}'}\n"
	for _, sub := range []string{"check", "run", "status"} {
		code, out, errOut := cli(t, sub, "--config", writeConfig(t, "database:\n  url: "+u.String()+tail))
		require.Equal(t, 1, code, sub)
		require.Contains(t, errOut, "Access denied", sub)
		require.NotContains(t, errOut+out, wrong, sub)
	}

	code, _, errOut := cli(t, "check", "--config", writeConfig(t, "database:\n  url: mysql://conveyor:s3cret-pw-2@127.0.0.1:1/conveyor?timeout=2s"+tail))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "connect to mysql host=127.0.0.1 port=1")
	require.NotContains(t, errOut, "s3cret-pw-2")

	code, _, errOut = cli(t, "check", "--config", writeConfig(t, "database:\n  url: mysql://conveyor:s3cret-pw-3@127.0.0.1:port/conveyor"+tail))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "database url for mysql is malformed")
	require.NotContains(t, errOut, "s3cret-pw-3")

	st, err := mysql.Open(context.Background(), mysql.Config{URL: good})
	require.NoError(t, err)
	last := store.KnownMigrations[len(store.KnownMigrations)-1]
	_, err = st.DB().Exec(`DELETE FROM django_migrations WHERE app = 'conveyor' AND name = ?`, last)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	code, _, errOut = cli(t, "run", "--config", writeConfig(t, "database:\n  url: "+good+tail))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "migration conveyor."+last+" is not applied; run `python manage.py migrate conveyor`")
	gu, err := url.Parse(good)
	require.NoError(t, err)
	pw, _ := gu.User.Password()
	require.NotContains(t, errOut, pw)
}
