package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/postgres"
)

// limitResult is one denominator: how fast the database alone (the relay's loop with a
// null sink) or a broker alone (its client library) moves the benchmark's events.
type limitResult struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind"` // database | broker
	Events       int      `json:"events"`
	Seconds      float64  `json:"seconds"`
	EventsPerSec float64  `json:"events_per_s"`
	CPUSeconds   float64  `json:"client_cpu_s"`
	CPU          cpuSplit `json:"cpu"`
	Profile      string   `json:"profile,omitempty"`
	// HeapProfile is taken at the peak of in-use heap, PeakHeapInuseMB.
	HeapProfile     string  `json:"heap_profile,omitempty"`
	PeakHeapInuseMB float64 `json:"peak_heap_inuse_mb,omitempty"`
	// Cycles is the in-process relay's cycle breakdown.
	Cycles *cycleStats `json:"cycles,omitempty"`
	Note   string      `json:"note,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// nullSink acknowledges everything at once: the relay's loop with publishing removed.
type nullSink struct{}

func (nullSink) Publish(_ context.Context, msgs []*sink.Message) []error {
	return make([]error, len(msgs))
}
func (nullSink) Close(context.Context) error { return nil }

// settleCounter counts settled events through the relay's hooks, and where each
// cycle's time went.
type settleCounter struct {
	relay.NopHooks
	n                      atomic.Int64
	mu                     sync.Mutex
	cycles                 int
	claim, publish, settle time.Duration
}

func (c *settleCounter) OnBatch(claimed int, claim, publish, settle time.Duration) {
	c.n.Add(int64(claimed))
	c.mu.Lock()
	c.cycles++
	c.claim += claim
	c.publish += publish
	c.settle += settle
	c.mu.Unlock()
}

// timedStore wraps the store to count every claim, including the empty ones the hooks
// never see, and the time spent in Claim and Settle.
type timedStore struct {
	store.Store
	mu                    sync.Mutex
	claims, emptyClaims   int
	claimTime, settleTime time.Duration
}

func (t *timedStore) Claim(ctx context.Context, p *store.ClaimParams) ([]*store.Claimed, error) {
	t0 := time.Now()
	c, err := t.Store.Claim(ctx, p)
	t.mu.Lock()
	t.claims++
	if len(c) == 0 {
		t.emptyClaims++
	}
	t.claimTime += time.Since(t0)
	t.mu.Unlock()
	return c, err
}

func (t *timedStore) Settle(ctx context.Context, p *store.SettleParams) (*store.SettleResult, error) {
	t0 := time.Now()
	r, err := t.Store.Settle(ctx, p)
	t.mu.Lock()
	t.settleTime += time.Since(t0)
	t.mu.Unlock()
	return r, err
}

// cycleStats is where the in-process relay's cycles spent their time (summed over
// workers, so it can exceed the wall time).
type cycleStats struct {
	Cycles       int     `json:"cycles"`
	Claims       int     `json:"claims"`
	EmptyClaims  int     `json:"empty_claims"`
	ClaimTotalS  float64 `json:"claim_total_s"`
	SettleTotalS float64 `json:"settle_total_s"`
	RowsPerCycle float64 `json:"rows_per_cycle"`
	ClaimMs      float64 `json:"claim_ms_per_cycle"`
	PublishMs    float64 `json:"publish_ms_per_cycle"`
	SettleMs     float64 `json:"settle_ms_per_cycle"`
}

func (c *settleCounter) stats() *cycleStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cycles == 0 {
		return nil
	}
	n := float64(c.cycles)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	return &cycleStats{Cycles: c.cycles, RowsPerCycle: float64(c.n.Load()) / n,
		ClaimMs: ms(c.claim), PublishMs: ms(c.publish), SettleMs: ms(c.settle)}
}

// processCPU is this process's CPU seconds so far.
func processCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return tv(ru.Utime) + tv(ru.Stime)
}

// inProcessDrain drains a clone of s with an in-process relay (default settings) whose
// sinks are given, under a CPU profile written to profilePath when it is set.
func (b *bench) inProcessDrain(ctx context.Context, s seed, sinks map[string]sink.Sink, dest string,
	profilePath string, brokerName string, counted func(context.Context) (int64, error)) (limitResult, error) {
	res := limitResult{Events: s.events}
	run := "bench_run"
	if err := b.db.create(ctx, run, s.name); err != nil {
		return res, err
	}
	defer func() { _ = b.db.drop(context.WithoutCancel(ctx), run) }()
	st, err := postgres.Open(ctx, postgres.Config{URL: b.db.relayURL(run), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, err
	}
	defer st.Close()
	ts := &timedStore{Store: st}
	hooks := &settleCounter{}
	var sinkName string
	for name := range sinks {
		sinkName = name
	}
	logf, err := os.Create(filepath.Join(b.scratch, "inprocess-relay.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	r, err := relay.New(relay.Config{ID: "bench-inprocess", Listen: true,
		Routes: []relay.Route{{Name: "all", Sink: sinkName, Destination: dest}}},
		ts, sinks, relay.Options{Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn})), Hooks: hooks})
	if err != nil {
		return res, err
	}
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
		res.Profile = filepath.Base(profilePath)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopHeap := func() {}
	if profilePath != "" {
		runtime.GC() // the harness's own garbage out of the heap profile
		stopHeap = watchHeap(rctx, strings.TrimSuffix(profilePath, ".cpu.prof")+".heap.prof", &res)
	}
	defer func() { stopHeap() }()
	before, cpu0 := sampleCPU(b.brokerPIDs), processCPU()
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := t0.Add(b.drainTimeout(s.events))
	for {
		n := hooks.n.Load()
		if counted != nil {
			if c, err := counted(ctx); err == nil {
				n = c
			}
		}
		if n >= int64(s.events) {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("timed out with %d of %d events settled; relay log: %s", n, s.events, tailFile(logf.Name()))
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	elapsed := time.Since(t0)
	res.CPUSeconds = processCPU() - cpu0
	res.CPU = splitCPU(before, sampleCPU(b.brokerPIDs), brokerName)
	cancel()
	<-done
	stopHeap()
	stopHeap = func() {}
	res.Seconds = elapsed.Seconds()
	res.EventsPerSec = float64(s.events) / elapsed.Seconds()
	if res.Cycles = hooks.stats(); res.Cycles != nil {
		ts.mu.Lock()
		res.Cycles.Claims, res.Cycles.EmptyClaims = ts.claims, ts.emptyClaims
		res.Cycles.ClaimTotalS, res.Cycles.SettleTotalS = ts.claimTime.Seconds(), ts.settleTime.Seconds()
		ts.mu.Unlock()
	}
	pending, published, _, err := pendingAndPublished(ctx, b.db.url(run))
	if err == nil && (pending != 0 || published != int64(s.events)) {
		err = fmt.Errorf("after the drain %d rows are pending and %d published, want 0 and %d", pending, published, s.events)
	}
	return res, err
}

// databaseLimit is the relay's own claim-publish-settle loop, in process, over
// PostgreSQL, with a null sink: what the database lets the relay do at most.
func (b *bench) databaseLimit(ctx context.Context, s seed) limitResult {
	res, err := b.inProcessDrain(ctx, s, map[string]sink.Sink{"null": nullSink{}}, "null",
		b.resultPath("database-limit.cpu.prof"), "", nil)
	res.Name, res.Kind = "database (claim + settle, null sink)", "database"
	res.Note = "relay.Relay in process, default settings (batch 500, per_key 20, 2 workers)"
	if err != nil {
		res.Error = err.Error()
		b.logf("  database limit: %v", err)
		return res
	}
	b.logf("  database limit: %d events in %.1fs = %.0f/s", res.Events, res.Seconds, res.EventsPerSec)
	return res
}

// brokerLimit publishes the events straight to a broker with its client library.
func (b *bench) brokerLimit(ctx context.Context, br broker, n, keys int) limitResult {
	res := limitResult{Name: br.name(), Kind: "broker", Events: n}
	fail := func(err error) limitResult {
		res.Error = err.Error()
		b.logf("  %s limit: %v", br.name(), err)
		return res
	}
	if err := br.prepare(ctx); err != nil {
		return fail(err)
	}
	defer br.cleanup(context.WithoutCancel(ctx))
	before, cpu0 := sampleCPU(b.brokerPIDs), processCPU()
	t0 := time.Now()
	if err := br.publish(ctx, n, keysRoundRobin, keys); err != nil {
		return fail(err)
	}
	elapsed := time.Since(t0)
	res.CPUSeconds = processCPU() - cpu0
	res.CPU = splitCPU(before, sampleCPU(b.brokerPIDs), br.name())
	res.Seconds = elapsed.Seconds()
	res.EventsPerSec = float64(n) / elapsed.Seconds()
	if got, err := br.count(ctx); err != nil || got != int64(n) {
		return fail(fmt.Errorf("broker holds %d messages after the publish, want %d (%v)", got, n, err))
	}
	b.logf("  %s limit: %d events in %.1fs = %.0f/s", br.name(), n, res.Seconds, res.EventsPerSec)
	return res
}

// watchHeap keeps a heap profile taken at the in-use peak of the run (checked every
// 100 ms, retaken when the peak grows by 5 %) and records the peak in res.
func watchHeap(ctx context.Context, path string, res *limitResult) (stop func()) {
	done := make(chan struct{})
	var best []byte
	var peak uint64
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak*105/100 {
				peak = ms.HeapInuse
				var buf bytes.Buffer
				if pprof.Lookup("heap").WriteTo(&buf, 0) == nil {
					best = buf.Bytes()
				}
			}
		}
	}()
	return func() {
		<-done
		res.PeakHeapInuseMB = float64(peak) / (1 << 20)
		if best != nil && os.WriteFile(path, best, 0o644) == nil {
			res.HeapProfile = filepath.Base(path)
		}
	}
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	return lastLines(string(b), 3)
}
