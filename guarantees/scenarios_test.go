//go:build guarantees

package guarantees_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/store/postgres"
)

func requireClean(t *testing.T, v verdict) {
	t.Helper()
	require.Zero(t, v.lost, "lost events")
	require.Zero(t, v.phantom, "phantom events")
	require.Zero(t, v.orderViolations, "per-key order violations")
}

// 1. Many relays, writers committing out of id order, rollbacks.
func TestManyRelaysOutOfOrderCommits(t *testing.T) {
	events, keys := size(6000, 50000), size(100, 500)
	url, db := pgDB(t)
	nats := startNATS(t, "")
	var relays []*relayProc
	for i := range 3 {
		r := newRelay(t, fmt.Sprintf("many-%d", i), relayOpts{dbURL: url, natsURL: nats.URL()})
		r.Start()
		relays = append(relays, r)
	}
	start := time.Now()
	l := newLedger()
	write(t, db, outbox.Postgres, l, writeOpts{writers: 6, events: events, keys: keys, rollback: 0.05, holdLong: 0.1})
	waitDrained(t, db, 0, 5*time.Minute)
	elapsed := time.Since(start)
	v := check(t, l, consumeAll(t, nats.URL()), nil)
	record(t, result{Scenario: "3 relays, out-of-order commits, 5% rollbacks", Events: len(l.committed), Relays: 3,
		Faults: fmt.Sprintf("%d rollbacks", len(l.rolledBack)), Lost: v.lost, Phantom: v.phantom,
		OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
	requireClean(t, v)
	require.Zero(t, v.duplicates, "no fault was injected, so no duplicates")
	require.Greater(t, len(l.rolledBack), 0)
}

// 2. kill -9 of a relay mid-batch, several times, each followed by a restart.
func TestKill9MidBatch(t *testing.T) {
	events, kills := size(15000, 60000), size(5, 12)
	url, db := pgDB(t)
	nats := startNATS(t, "")
	// Every kill counts an attempt for each event the victim held (that is how a poison
	// event that crashes the relay ends dead), so max_attempts must exceed the kills.
	a := newRelay(t, "kill-a", relayOpts{dbURL: url, natsURL: nats.URL(), lease: "2s", maxAttempts: 3 * kills})
	b := newRelay(t, "kill-b", relayOpts{dbURL: url, natsURL: nats.URL(), lease: "2s", maxAttempts: 3 * kills})
	l := newLedger()
	write(t, db, outbox.Postgres, l, writeOpts{writers: 4, events: events, keys: 200, rollback: 0.02})
	start := time.Now()
	a.Start()
	b.Start()
	for range kills {
		time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
		// Wait until a live relay holds leases, then kill it: the crash lands mid-batch.
		var victim *relayProc
		for deadline := time.Now().Add(5 * time.Second); victim == nil && time.Now().Before(deadline); {
			var holder string
			if err := db.QueryRow(`SELECT locked_by FROM conveyor_event WHERE status = 0 AND locked_until > now() LIMIT 1`).Scan(&holder); err == nil {
				for _, r := range []*relayProc{a, b} {
					if holder == r.ID() {
						victim = r
					}
				}
			}
			if victim == nil {
				time.Sleep(2 * time.Millisecond)
			}
		}
		require.NotNil(t, victim, "no live relay held a lease to kill")
		victim.Kill()
		victim.Start()
	}
	waitDrained(t, db, 0, 5*time.Minute)
	elapsed := time.Since(start)
	v := check(t, l, consumeAll(t, nats.URL()), nil)
	var reclaimed int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE attempts > 1`).Scan(&reclaimed))
	record(t, result{Scenario: "kill -9 mid-batch, restarted", Events: len(l.committed), Relays: 2,
		Faults: fmt.Sprintf("%d kill -9 (%d events re-claimed after a crash)", kills, reclaimed), Lost: v.lost, Phantom: v.phantom,
		OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
	requireClean(t, v)
	var dead int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE status = 2`).Scan(&dead))
	require.Zero(t, dead, "a crash must not burn through attempts into dead")
	require.Positive(t, reclaimed, "at least one kill must have hit a leased batch")
}

// 3. A broker restart mid-stream, then the broker down for a while: the circuit opens,
// no attempts are used, the backlog drains afterwards.
func TestBrokerRestartAndOutage(t *testing.T) {
	events := size(6000, 50000)
	down := time.Duration(size(8, 30)) * time.Second
	url, db := pgDB(t)
	nats := startNATS(t, "")
	a := newRelay(t, "broker-a", relayOpts{dbURL: url, natsURL: nats.URL()})
	b := newRelay(t, "broker-b", relayOpts{dbURL: url, natsURL: nats.URL()})
	a.Start()
	b.Start()
	l := newLedger()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		write(t, db, outbox.Postgres, l, writeOpts{writers: 4, events: events, keys: 200, rollback: 0.02, holdLong: 0.05})
	}()
	time.Sleep(300 * time.Millisecond)
	nats.Stop()
	nats.Start() // restart mid-stream
	time.Sleep(500 * time.Millisecond)
	nats.Stop() // and now a real outage
	time.Sleep(down)
	var attemptsDuringOutage int
	require.NoError(t, db.QueryRow(`SELECT coalesce(max(attempts), 0) FROM conveyor_event WHERE status = 0`).Scan(&attemptsDuringOutage))
	nats.Start()
	wg.Wait()
	waitDrained(t, db, 0, 5*time.Minute)
	elapsed := time.Since(start)
	v := check(t, l, consumeAll(t, nats.URL()), nil)
	record(t, result{Scenario: fmt.Sprintf("broker restart, then down %s", down), Events: len(l.committed), Relays: 2,
		Faults: "1 restart, 1 outage", Lost: v.lost, Phantom: v.phantom,
		OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
	requireClean(t, v)
	require.LessOrEqual(t, attemptsDuringOutage, 1, "an outage uses no attempts (only a claim in flight holds one)")
	require.Contains(t, a.logText()+b.logText(), "circuit opened")
	var maxAttempts int
	require.NoError(t, db.QueryRow(`SELECT max(attempts) FROM conveyor_event`).Scan(&maxAttempts))
	require.LessOrEqual(t, maxAttempts, 2)
}

// 4. A database restart mid-stream: the relays reconnect by themselves.
func TestDatabaseRestart(t *testing.T) {
	events := size(5000, 40000)
	url, db := pgDB(t)
	nats := startNATS(t, "")
	l := newLedger()
	write(t, db, outbox.Postgres, l, writeOpts{writers: 4, events: events, keys: 200, rollback: 0.02, holdLong: 0.05})
	a := newRelay(t, "db-a", relayOpts{dbURL: url, natsURL: nats.URL()})
	b := newRelay(t, "db-b", relayOpts{dbURL: url, natsURL: nats.URL()})
	start := time.Now()
	a.Start()
	b.Start()
	time.Sleep(400 * time.Millisecond)
	restartPostgres(t)
	waitDrained(t, db, 0, 5*time.Minute)
	elapsed := time.Since(start)
	v := check(t, l, consumeAll(t, nats.URL()), nil)
	record(t, result{Scenario: "PostgreSQL restart mid-stream", Events: len(l.committed), Relays: 2,
		Faults: "1 database restart", Lost: v.lost, Phantom: v.phantom,
		OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
	requireClean(t, v)
	require.Contains(t, a.logText()+b.logText(), "relay cycle failed", "the relays saw the database go away")
}

func restartPostgres(t *testing.T) {
	t.Helper()
	root := testdb.Require(t, "CONVEYOR_REPO")
	for _, args := range [][]string{{"down", "postgres"}, {"up", "postgres"}} {
		out, err := exec.Command(root+"/scripts/services.sh", args...).CombinedOutput()
		require.NoError(t, err, "services.sh %v: %s", args, out)
	}
}

// 5. A poison event (permanent error) among good events of its key, under both on_dead
// modes: skip lets the key go on, block holds it.
func TestPoisonEvent(t *testing.T) {
	for _, mode := range []string{"skip", "block"} {
		t.Run(mode, func(t *testing.T) {
			url, db := pgDB(t)
			nats := startNATS(t, "max_payload: 65536\n")
			r := newRelay(t, "poison-"+mode, relayOpts{dbURL: url, natsURL: nats.URL(), onDead: mode})
			l := newLedger()
			write(t, db, outbox.Postgres, l, writeOpts{writers: 2, events: 400, keys: 10})
			// The poison: too large for the broker, in the middle of key k0000.
			big := fmt.Sprintf(`{"k":"k0000","s":1000,"blob":%q}`, strings.Repeat("x", 100*1024))
			tx, err := db.Begin()
			require.NoError(t, err)
			ids, err := outbox.Insert(context.Background(), tx, outbox.Postgres,
				&outbox.Event{Type: "order.placed", Source: "guarantees", Key: "k0000", Data: json.RawMessage(big)},
				&outbox.Event{Type: "order.placed", Source: "guarantees", Key: "k0000", Data: json.RawMessage(`{"k":"k0000","s":1001}`)},
				&outbox.Event{Type: "order.placed", Source: "guarantees", Key: "k0000", Data: json.RawMessage(`{"k":"k0000","s":1002}`)})
			require.NoError(t, err)
			require.NoError(t, tx.Commit())
			poison := ids[0]
			l.committed[ids[1]] = payload{K: "k0000", S: 1001}
			l.committed[ids[2]] = payload{K: "k0000", S: 1002}
			start := time.Now()
			r.Start()
			held := 0
			if mode == "block" {
				held = 2
			}
			waitDrained(t, db, held, 2*time.Minute)
			time.Sleep(time.Second) // a blocked key must stay blocked, not drain late
			elapsed := time.Since(start)
			v := check(t, l, consumeAll(t, nats.URL()), func(id uuid.UUID, _ payload) bool {
				return mode == "skip" || (id != ids[1] && id != ids[2])
			})
			var status, attempts int
			var lastErr string
			require.NoError(t, db.QueryRow(`SELECT status, attempts, last_error FROM conveyor_event WHERE id = $1`, poison).Scan(&status, &attempts, &lastErr))
			require.Equal(t, 2, status, "the poison event is dead")
			require.Equal(t, 1, attempts, "a permanent error is dead at once")
			require.Contains(t, lastErr, "permanent")
			var pending int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE status = 0`).Scan(&pending))
			require.Equal(t, held, pending)
			record(t, result{Scenario: "poison event, on_dead: " + mode, Events: len(l.committed) + 1, Relays: 1,
				Faults: "1 permanent rejection", Lost: v.lost, Phantom: v.phantom,
				OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
			requireClean(t, v)
		})
	}
}

// stallSink delays its first Publish call past the lease.
type stallSink struct {
	sink.Sink
	stall   time.Duration
	stalled atomic.Bool
}

func (s *stallSink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if s.stalled.CompareAndSwap(false, true) {
		time.Sleep(s.stall)
	}
	return s.Sink.Publish(context.WithoutCancel(ctx), msgs)
}

// 6. A lease that expires while a publish is slow: the old owner's settle is refused, and
// per-key order still holds.
func TestLeaseExpiresDuringSlowPublish(t *testing.T) {
	url, db := pgDB(t)
	nats := startNATS(t, "")
	l := newLedger()
	write(t, db, outbox.Postgres, l, writeOpts{writers: 2, events: 1000, keys: 20})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuf{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	var wg sync.WaitGroup
	start := time.Now()
	for i, stall := range []time.Duration{3 * time.Second, 0} {
		st, err := postgres.Open(ctx, postgres.Config{URL: url})
		require.NoError(t, err)
		defer st.Close()
		ns, err := natsjs.New(ctx, natsjs.Config{URL: nats.URL(), Stream: "GUARANTEES", Subjects: []string{"g.>"},
			CreateStream: true, Duplicates: 100 * time.Millisecond}, logger)
		require.NoError(t, err)
		defer ns.Close(context.Background())
		var sk sink.Sink = ns
		if stall > 0 {
			sk = &stallSink{Sink: ns, stall: stall}
		}
		r, err := relay.New(relay.Config{ID: fmt.Sprintf("slow-%d", i), BatchSize: 100, PerKey: 5, Lease: 1500 * time.Millisecond,
			PollInterval: 100 * time.Millisecond, Workers: 1,
			Routes: []relay.Route{{Name: "all", Sink: "main", Destination: "g.{event_type}"}}},
			st, map[string]sink.Sink{"main": sk}, relay.Options{Logger: logger})
		require.NoError(t, err)
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
		if i == 0 {
			time.Sleep(200 * time.Millisecond) // the slow relay claims first
		}
	}
	waitDrained(t, db, 0, 2*time.Minute)
	time.Sleep(3 * time.Second) // let the stalled publish finish and its settle be refused
	cancel()
	wg.Wait()
	elapsed := time.Since(start)
	v := check(t, l, consumeAll(t, nats.URL()), nil)
	record(t, result{Scenario: "lease expires during a slow publish", Events: len(l.committed), Relays: 2,
		Faults: "1 stalled publish (3s > 1.5s lease)", Lost: v.lost, Phantom: v.phantom,
		OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
	requireClean(t, v)
	require.Contains(t, logs.String(), "lease lost", "the old owner's settle was refused")
	var published int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE status = 1`).Scan(&published))
	require.Equal(t, len(l.committed), published)
}

// 7. SQLite with one relay: the same checks, minus the multi-relay ones.
func TestSQLiteOneRelay(t *testing.T) {
	events := size(3000, 20000)
	path := testdb.SQLitePath(t)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	nats := startNATS(t, "")
	r := newRelay(t, "sqlite", relayOpts{dbURL: "sqlite:///" + path, natsURL: nats.URL(), lease: "2s"})
	r.Start()
	l := newLedger()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		write(t, db, outbox.SQLite, l, writeOpts{writers: 1, events: events, keys: 50, rollback: 0.05})
	}()
	time.Sleep(500 * time.Millisecond)
	r.Kill()
	r.Start()
	wg.Wait()
	waitDrained(t, db, 0, 3*time.Minute)
	elapsed := time.Since(start)
	v := check(t, l, consumeAll(t, nats.URL()), nil)
	record(t, result{Scenario: "SQLite, one relay", Events: len(l.committed), Relays: 1,
		Faults: fmt.Sprintf("%d rollbacks, 1 kill -9", len(l.rolledBack)), Lost: v.lost, Phantom: v.phantom,
		OrderViolations: v.orderViolations, Duplicates: v.duplicates, Seconds: elapsed.Seconds()})
	requireClean(t, v)
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
