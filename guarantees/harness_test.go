//go:build guarantees

// Package guarantees is the suite that tries hard to break G1-G6 against real PostgreSQL
// (and SQLite) and a real nats-server: many relays, kill -9, broker and database
// restarts, poison events, leases lost to slow publishes. Run it with
// `make test` (short) or `make soak` (long); see docs/guarantees.md.
package guarantees_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/sink/natsjs"
)

// soak scales the scenarios up: CONVEYOR_SOAK=1 (make soak).
var soak = os.Getenv("CONVEYOR_SOAK") != ""

func size(short, long int) int {
	if soak {
		return long
	}
	return short
}

// ---- results table -------------------------------------------------------------

type result struct {
	Scenario                                   string
	Events, Relays                             int
	Faults                                     string
	Lost, Phantom, OrderViolations, Duplicates int
	Seconds                                    float64
}

var (
	resultsMu sync.Mutex
	results   []result
)

func record(t *testing.T, r result) {
	t.Helper()
	line := fmt.Sprintf("| %s | %d | %d | %s | %d | %d | %d | %d | %.1f |", r.Scenario, r.Events, r.Relays, r.Faults,
		r.Lost, r.Phantom, r.OrderViolations, r.Duplicates, r.Seconds)
	fmt.Println("GUARANTEE " + line)
	resultsMu.Lock()
	results = append(results, r)
	resultsMu.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if len(results) > 0 {
		var b strings.Builder
		b.WriteString("| scenario | events | relays | faults injected | lost | phantom | order violations | duplicates | seconds |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range results {
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %d | %d | %d | %d | %.1f |\n", r.Scenario, r.Events, r.Relays, r.Faults,
				r.Lost, r.Phantom, r.OrderViolations, r.Duplicates, r.Seconds)
		}
		fmt.Print("\n" + b.String())
		if out := os.Getenv("CONVEYOR_GUARANTEES_OUT"); out != "" {
			_ = os.WriteFile(out, []byte(b.String()), 0o644)
		}
	}
	os.Exit(code)
}

// ---- nats-server ---------------------------------------------------------------

type natsProc struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

func startNATS(t *testing.T, conf string) *natsProc {
	t.Helper()
	n := &natsProc{t: t, bin: testdb.Require(t, "CONVEYOR_TEST_NATS_SERVER"), dir: t.TempDir(), port: freePort(t)}
	if conf != "" {
		n.conf = filepath.Join(n.dir, "nats.conf")
		require.NoError(t, os.WriteFile(n.conf, []byte(conf), 0o600))
	}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

func (n *natsProc) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func (n *natsProc) Start() {
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-js", "-sd", filepath.Join(n.dir, "js")}
	if n.conf != "" {
		args = append(args, "-c", n.conf)
	}
	n.cmd = exec.Command(n.bin, args...)
	require.NoError(n.t, n.cmd.Start())
	n.done = make(chan struct{})
	go func(c *exec.Cmd, d chan struct{}) { _ = c.Wait(); close(d) }(n.cmd, n.done)
	waitPort(n.t, n.port)
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown).
func (n *natsProc) Stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, port int) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("port %d did not open", port)
}

// ---- relay processes -----------------------------------------------------------

type relayProc struct {
	t      *testing.T
	name   string
	config string
	// incarnation numbers restarts; the relay id is name-incarnation, so a lease names
	// the process that took it.
	incarnation int
	cfgText     string
	log         *bytes.Buffer
	mu          sync.Mutex
	cmd         *exec.Cmd
	done        chan struct{}
}

type relayOpts struct {
	dbURL, natsURL, onDead string
	lease                  string
	maxAttempts            int
}

func newRelay(t *testing.T, name string, o relayOpts) *relayProc {
	t.Helper()
	cfg := fmt.Sprintf(`
database:
  url: %q
relay:
  id: %s
  lease: %s
  poll_interval: 200ms
  batch_size: 200
  per_key: 10
  shutdown_timeout: 5s
retry:
  initial: 50ms
  max: 500ms
  max_attempts: %d
sinks:
  main:
    type: nats
    url: %s
    stream: GUARANTEES
    subjects: ["g.>"]
    create_stream: true
    duplicates: 100ms
    ack_timeout: 2s
    connect_timeout: 1s
routes:
  - name: all
    sink: main
    destination: "g.{event_type}"
    on_dead: %s
log:
  level: warn
  format: json
telemetry:
  listen: "off"
`, o.dbURL, name, cmpOr(o.lease, "3s"), max(o.maxAttempts, 5), o.natsURL, cmpOr(o.onDead, "skip"))
	p := filepath.Join(t.TempDir(), name+".yaml")
	r := &relayProc{t: t, name: name, config: p, log: &bytes.Buffer{}, cfgText: cfg}
	t.Cleanup(func() {
		r.Term()
		if t.Failed() {
			t.Logf("relay %s log:\n%s", name, r.logText())
		}
	})
	return r
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (r *relayProc) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// ID is the relay id of the running incarnation.
func (r *relayProc) ID() string { return fmt.Sprintf("%s-%d", r.name, r.incarnation) }

func (r *relayProc) Start() {
	r.incarnation++
	cfg := strings.Replace(r.cfgText, "  id: "+r.name+"\n", "  id: "+r.ID()+"\n", 1)
	require.NoError(r.t, os.WriteFile(r.config, []byte(cfg), 0o600))
	bin := testdb.Require(r.t, "CONVEYOR_BIN")
	cmd := exec.Command(bin, "run", "--config", r.config)
	w := lockedWriter{mu: &r.mu, b: r.log}
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(r.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
}

// Kill is kill -9.
func (r *relayProc) Kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

// Term is a graceful stop.
func (r *relayProc) Term() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// ---- writers -------------------------------------------------------------------

// ledger records what writers committed and rolled back.
type ledger struct {
	mu         sync.Mutex
	committed  map[uuid.UUID]payload
	rolledBack map[uuid.UUID]bool
}

type payload struct {
	K string `json:"k"`
	S int    `json:"s"`
}

func newLedger() *ledger {
	return &ledger{committed: map[uuid.UUID]payload{}, rolledBack: map[uuid.UUID]bool{}}
}

type writeOpts struct {
	writers, events, keys int
	// rollback is the share of transactions rolled back; holdLong the share held open
	// long enough for later transactions to commit first.
	rollback, holdLong float64
	eventType          func(key string, seq int) string
}

// write records events through the Go outbox writer, several writer goroutines each
// owning a set of keys (so a key's sequence numbers follow its ids), committing out of
// id order across writers and rolling some transactions back.
func write(t *testing.T, db *sql.DB, d outbox.Dialect, l *ledger, o writeOpts) {
	t.Helper()
	if o.eventType == nil {
		o.eventType = func(string, int) string { return "order.placed" }
	}
	var wg sync.WaitGroup
	errs := make(chan error, o.writers)
	per := o.events / o.writers
	for w := range o.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			seq := map[string]int{}
			var myKeys []string
			for k := w; k < o.keys; k += o.writers {
				myKeys = append(myKeys, fmt.Sprintf("k%04d", k))
			}
			written := 0
			for written < per {
				n := min(1+rng.IntN(5), per-written)
				evs := make([]*outbox.Event, n)
				pl := make([]payload, n)
				for i := range evs {
					key := myKeys[rng.IntN(len(myKeys))]
					pl[i] = payload{K: key, S: seq[key]}
					seq[key]++
					b, _ := json.Marshal(pl[i])
					evs[i] = &outbox.Event{Type: o.eventType(key, pl[i].S), Source: "guarantees", Key: key, Data: json.RawMessage(b)}
				}
				tx, err := db.BeginTx(context.Background(), nil)
				if err != nil {
					errs <- err
					return
				}
				ids, err := outbox.Insert(context.Background(), tx, d, evs...)
				if err != nil {
					_ = tx.Rollback()
					errs <- err
					return
				}
				if rng.Float64() < o.holdLong {
					time.Sleep(time.Duration(20+rng.IntN(60)) * time.Millisecond)
				}
				if rng.Float64() < o.rollback {
					if err := tx.Rollback(); err != nil {
						errs <- err
						return
					}
					l.mu.Lock()
					for _, id := range ids {
						l.rolledBack[id] = true
					}
					l.mu.Unlock()
				} else {
					if err := tx.Commit(); err != nil {
						errs <- err
						return
					}
					l.mu.Lock()
					for i, id := range ids {
						l.committed[id] = pl[i]
					}
					l.mu.Unlock()
				}
				written += n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// ---- checking ------------------------------------------------------------------

type received struct {
	ID  uuid.UUID
	Pay payload
}

func consumeAll(t *testing.T, natsURL string) []received {
	t.Helper()
	var out []received
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := natsjs.Tail(ctx, natsjs.TailParams{Config: natsjs.Config{URL: natsURL, Stream: "GUARANTEES"},
		Timeout: 3 * time.Second}, func(m natsjs.Received) error {
		id, err := uuid.Parse(m.Headers["Nats-Msg-Id"][0])
		if err != nil {
			return err
		}
		var p payload
		if err := json.Unmarshal(m.Data, &p); err != nil {
			return err
		}
		out = append(out, received{ID: id, Pay: p})
		return nil
	})
	require.NoError(t, err)
	return out
}

type verdict struct {
	lost, phantom, orderViolations, duplicates int
	firstOrder                                 map[string][]int
}

// check compares what the broker holds with the ledger. expect says which committed
// events must have arrived (all of them, unless a scenario holds some back on purpose).
func check(t *testing.T, l *ledger, got []received, expect func(uuid.UUID, payload) bool) verdict {
	t.Helper()
	v := verdict{firstOrder: map[string][]int{}}
	seen := map[uuid.UUID]int{}
	for _, r := range got {
		seen[r.ID]++
		if seen[r.ID] > 1 {
			v.duplicates++
			continue
		}
		if _, ok := l.committed[r.ID]; !ok {
			v.phantom++ // rolled back, or never written
			continue
		}
		v.firstOrder[r.Pay.K] = append(v.firstOrder[r.Pay.K], r.Pay.S)
	}
	for id, p := range l.committed {
		if seen[id] == 0 && (expect == nil || expect(id, p)) {
			v.lost++
		}
	}
	for _, seqs := range v.firstOrder {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				v.orderViolations++
			}
		}
	}
	return v
}

func waitDrained(t *testing.T, db *sql.DB, remaining int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var n int
	for time.Now().Before(deadline) {
		if err := db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE status = 0`).Scan(&n); err == nil && n <= remaining {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("outbox not drained after %s: %d pending (want %d)", timeout, n, remaining)
}

func pgDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	url := testdb.PostgresURL(t)
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	db.SetMaxOpenConns(20)
	t.Cleanup(func() { _ = db.Close() })
	return url, db
}

func sortedKeys(m map[string][]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
