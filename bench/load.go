package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/conveyorhq/conveyor/outbox"
)

// loadResult is one sustained-load run: writers at a fixed rate, the relay binary
// publishing to NATS, latency from the writer's commit to the JetStream ack.
type loadResult struct {
	Name       string  `json:"name"`
	Writer     string  `json:"writer"` // "Django publish()" or "Go outbox.Insert"
	Wakeup     string  `json:"wakeup"` // NOTIFY or poll
	TargetRate float64 `json:"target_events_per_s"`
	Seconds    float64 `json:"seconds"`
	Written    int     `json:"written"`
	Achieved   float64 `json:"achieved_events_per_s"`
	Delivered  int     `json:"delivered"`
	Measured   int     `json:"latency_samples"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	// DrainAfterMs is how long after the writers stopped the last event reached the
	// broker: near zero when the relay keeps up, the backlog's drain time when not.
	DrainAfterMs float64 `json:"drain_after_ms"`
	KeptUp       bool    `json:"kept_up"`
	// RelayKeptPace is true when everything written reached the broker within 2 s of
	// the writers stopping, whether or not the writers reached the target rate.
	RelayKeptPace bool `json:"relay_kept_pace"`
	// Limited says what stopped the run from keeping up: "writer" (the writers did not
	// reach the rate) or "relay" (a backlog built up).
	Limited     string  `json:"limited_by,omitempty"`
	RelayCPUPct float64 `json:"relay_cpu_pct"`
	// The machine while the writers ran: busy %, PostgreSQL's and the writers' CPU
	// seconds (the Django writer processes, or the Go writer goroutines' whole bench
	// process).
	MachineBusyPct float64 `json:"machine_busy_pct"`
	PostgresCPUs   float64 `json:"postgres_cpu_s"`
	WriterCPUs     float64 `json:"writer_cpu_s"`
	// Steps is the relay's own account of its cycles, from its /metrics.
	Steps *relaySteps `json:"relay_steps,omitempty"`
	Error string      `json:"error,omitempty"`
}

// commit is one event a writer recorded and the time its transaction committed.
type commit struct {
	id string
	at time.Time
}

// latencyConsumer reads the stream with an ordered consumer and keeps each message's
// JetStream timestamp: the time the stream stored it, just before the ack.
type latencyConsumer struct {
	mu   sync.Mutex
	got  map[string]time.Time
	last time.Time
	cc   jetstream.ConsumeContext
}

func startConsumer(ctx context.Context, js jetstream.JetStream) (*latencyConsumer, error) {
	c, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	lc := &latencyConsumer{got: map[string]time.Time{}}
	lc.cc, err = c.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		id := m.Headers().Get(jetstream.MsgIDHeader)
		lc.mu.Lock()
		if _, dup := lc.got[id]; !dup {
			lc.got[id] = md.Timestamp
		}
		lc.last = time.Now()
		lc.mu.Unlock()
	})
	return lc, err
}

func (lc *latencyConsumer) stats() (int, time.Time) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return len(lc.got), lc.last
}

// runLoad runs one sustained-load scenario.
func (b *bench) runLoad(ctx context.Context, name, writer string, rate float64, listen bool, dur time.Duration) loadResult {
	res := loadResult{Name: name, Writer: writer, TargetRate: rate, Wakeup: "NOTIFY"}
	if !listen {
		res.Wakeup = "poll (listen: false)"
	}
	fail := func(err error) loadResult { res.Error = err.Error(); b.logf("  %s: %v", name, err); return res }
	run := "bench_load"
	if err := b.db.create(ctx, run, b.db.template); err != nil {
		return fail(err)
	}
	defer func() { _ = b.db.drop(context.WithoutCancel(ctx), run) }()
	br := &natsBroker{srv: b.nats}
	if err := br.prepare(ctx); err != nil {
		return fail(err)
	}
	defer br.cleanup(context.WithoutCancel(ctx))
	lc, err := startConsumer(ctx, b.nats.js)
	if err != nil {
		return fail(err)
	}
	defer lc.cc.Stop()
	metricsAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	p, err := startRelay(b.relayBin, b.scratch, "bench-load", b.db.relayURL(run), br.sink(), relayOptions{listen: listen, telemetry: metricsAddr, extra: b.relayYAML})
	if err != nil {
		return fail(err)
	}
	defer func() { _, _ = p.stop() }()
	time.Sleep(time.Second) // the relay connects, LISTENs and finds nothing to do
	if gone, why := p.exited(); gone {
		return fail(fmt.Errorf("relay exited: %s", why))
	}
	_, relayCPU0, _, _ := procCPU(p.cmd.Process.Pid)
	cpu0 := sampleCPU(nil)
	self0 := selfCPU()
	t0 := time.Now()
	var commits []commit
	switch writer {
	case writerDjango:
		commits, res.WriterCPUs, err = b.djangoWriter(ctx, run, rate, dur)
	default:
		commits, err = goWriter(ctx, b.db.url(run), rate, dur)
		res.WriterCPUs = selfCPU() - self0
	}
	if err != nil {
		return fail(fmt.Errorf("writer: %w", err))
	}
	wrote := time.Now()
	split := splitCPU(cpu0, sampleCPU(nil), "")
	res.MachineBusyPct, res.PostgresCPUs = split.MachineBusyPct, split.PostgresS
	res.Seconds = wrote.Sub(t0).Seconds()
	res.Written = len(commits)
	if len(commits) > 0 {
		first, last := commits[0].at, commits[0].at
		for _, c := range commits {
			first, last = minTime(first, c.at), maxTime(last, c.at)
		}
		if span := last.Sub(first).Seconds(); span > 0 {
			res.Achieved = float64(len(commits)-1) / span
		}
	}
	// Wait for the tail: everything written should arrive.
	deadline := time.Now().Add(max(30*time.Second, dur))
	for {
		n, _ := lc.stats()
		if n >= len(commits) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, relayCPU1, _, _ := procCPU(p.cmd.Process.Pid)
	res.RelayCPUPct = 100 * (relayCPU1 - relayCPU0) / time.Since(t0).Seconds()
	if st, err := scrapeSteps(ctx, metricsAddr); err == nil {
		res.Steps = st
	} else {
		b.logf("  %s: relay metrics: %v", name, err)
	}
	n, last := lc.stats()
	res.Delivered = n
	if last.After(wrote) {
		res.DrainAfterMs = float64(last.Sub(wrote).Microseconds()) / 1000
	}
	// Latency of the events committed after a warm-up of a tenth of the run.
	var from time.Time
	for _, c := range commits {
		if from.IsZero() || c.at.Before(from) {
			from = c.at
		}
	}
	from = from.Add(dur / 10)
	lc.mu.Lock()
	lat := make([]float64, 0, len(commits))
	for _, c := range commits {
		if c.at.Before(from) {
			continue
		}
		if ts, ok := lc.got[c.id]; ok {
			lat = append(lat, max(0, float64(ts.Sub(c.at).Microseconds())/1000))
		}
	}
	lc.mu.Unlock()
	slices.Sort(lat)
	res.Measured = len(lat)
	if len(lat) > 0 {
		res.P50ms, res.P99ms, res.P999ms, res.MaxMs = quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 0.999), lat[len(lat)-1]
	}
	res.RelayKeptPace = res.Delivered >= res.Written && res.DrainAfterMs <= 2000
	res.KeptUp = res.RelayKeptPace && res.Achieved >= 0.95*rate
	switch {
	case !res.RelayKeptPace:
		res.Limited = "relay"
	case !res.KeptUp:
		res.Limited = "writer"
	}
	if res.Delivered < res.Written {
		res.Error = fmt.Sprintf("%d of %d events reached the broker within %s of the writers stopping", res.Delivered, res.Written, max(30*time.Second, dur))
	}
	b.logf("  %s: %s at %.0f/s (achieved %.0f/s), %s: p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, drain after %.0f ms, kept up %t",
		name, writer, rate, res.Achieved, res.Wakeup, res.P50ms, res.P99ms, res.P999ms, res.DrainAfterMs, res.KeptUp)
	b.logf("    machine %.0f%% busy, PostgreSQL %.1f CPU s, writers %.1f CPU s, relay %.0f%%; relay: %s",
		res.MachineBusyPct, res.PostgresCPUs, res.WriterCPUs, res.RelayCPUPct, res.Steps)
	return res
}

func quantile(sorted []float64, q float64) float64 {
	i := int(q * float64(len(sorted)))
	return sorted[min(i, len(sorted)-1)]
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

const (
	writerDjango = "Django publish()"
	writerGo     = "Go outbox.Insert"
)

// goWriter commits one event per transaction through the Go outbox writer, open loop:
// transaction i is due at start + i/rate whatever happened before, spread over enough
// connections that a slow commit does not hold the others back.
func goWriter(ctx context.Context, dsn string, rate float64, dur time.Duration) ([]commit, error) {
	workers := min(64, max(16, int(rate/250)))
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = int32(workers)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	db.SetMaxOpenConns(workers)
	db.SetMaxIdleConns(workers)
	total := int(rate * dur.Seconds())
	tickets := make(chan int, total)
	out := make([][]commit, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tickets {
				key := keyOf(keysRoundRobin, 10000, i)
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				ids, err := outbox.Insert(ctx, tx, outbox.Postgres, &outbox.Event{Type: eventType, Source: eventSource,
					Key: key, Data: json.RawMessage(payload(i, key))})
				if err != nil {
					_ = tx.Rollback()
					errs <- err
					return
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
				out[w] = append(out[w], commit{id: ids[0].String(), at: time.Now()})
			}
		}()
	}
	start := time.Now()
	for i := 0; i < total; {
		due := int(time.Since(start).Seconds() * rate)
		for ; i < total && i <= due; i++ {
			tickets <- i
		}
		time.Sleep(time.Millisecond)
	}
	close(tickets)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	var all []commit
	for _, o := range out {
		all = append(all, o...)
	}
	return all, nil
}

// djangoWriter runs bench/django_writer.py: processes that each commit one publish()
// per transaction at their share of the rate, and write "id commit_ns" lines.
func (b *bench) djangoWriter(ctx context.Context, dbName string, rate float64, dur time.Duration) ([]commit, float64, error) {
	procs := max(1, int(rate/250+0.5))
	outDir := filepath.Join(b.scratch, "django-writer")
	_ = os.RemoveAll(outDir)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, 0, err
	}
	cmd := exec.CommandContext(ctx, b.python, filepath.Join(b.root, "bench", "django_writer.py"),
		"--database", dbName, "--rate", fmt.Sprint(rate), "--seconds", fmt.Sprint(dur.Seconds()),
		"--processes", fmt.Sprint(procs), "--out", outDir)
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	// wait4's rusage of the parent includes the writer processes it reaped.
	var cpu float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = tv(ru.Utime) + tv(ru.Stime)
	}
	files, _ := filepath.Glob(filepath.Join(outDir, "commits-*.txt"))
	var all []commit
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			id, ns, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			v, err := strconv.ParseInt(ns, 10, 64)
			if err != nil {
				continue
			}
			all = append(all, commit{id: id, at: time.Unix(0, v)})
		}
		fh.Close()
	}
	if len(all) == 0 {
		return nil, 0, fmt.Errorf("django writer recorded no commits (output in %s)", outDir)
	}
	return all, cpu, nil
}

// selfCPU is this process's CPU seconds so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
