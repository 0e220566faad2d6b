package main

import (
	"context"
	"fmt"
	"time"
)

// drainResult is one backlog drained by relay processes.
type drainResult struct {
	Name         string   `json:"name"`
	Broker       string   `json:"broker"`
	Relays       int      `json:"relays"`
	Events       int      `json:"events"`
	Seconds      float64  `json:"seconds"`
	EventsPerSec float64  `json:"events_per_s"`
	CPUSeconds   float64  `json:"relay_cpu_s"`
	CPUPer1M     float64  `json:"relay_cpu_s_per_1m"`
	PeakRSSMB    float64  `json:"relay_peak_rss_mb"`
	RusageRSSMB  float64  `json:"relay_rusage_maxrss_mb"`
	CPU          cpuSplit `json:"cpu"`
	// Limit is the slower of the database and broker limits; Ratio is EventsPerSec/Limit.
	LimitName string  `json:"limit_name,omitempty"`
	Limit     float64 `json:"limit_events_per_s,omitempty"`
	Ratio     float64 `json:"ratio_to_limit,omitempty"`
	// OrderViolations counts, for ordered shapes, deliveries out of id order.
	OrderViolations *int   `json:"order_violations,omitempty"`
	Error           string `json:"error,omitempty"`
}

// drain clones seed s into a fresh database, starts `relays` relay processes against it
// and times them until the broker holds every event. The clock stops at the last
// broker ack (counted on the broker); that every row was then settled published is
// checked afterwards, outside the timing.
//
// With checkOrder (NATS only), the stream is then read back to count per-key order
// violations.
func (b *bench) drain(ctx context.Context, name string, s seed, br broker, relays int, checkOrder bool) drainResult {
	res := drainResult{Name: name, Broker: br.name(), Relays: relays, Events: s.events}
	fail := func(err error) drainResult { res.Error = err.Error(); b.logf("  %s: %v", name, err); return res }
	run := "bench_run"
	if err := b.db.create(ctx, run, s.name); err != nil {
		return fail(err)
	}
	defer func() { _ = b.db.drop(context.WithoutCancel(ctx), run) }()
	if err := br.prepare(ctx); err != nil {
		return fail(err)
	}
	defer br.cleanup(context.WithoutCancel(ctx))
	sk := br.sink()
	before := sampleCPU(b.brokerPIDs)
	t0 := time.Now()
	procs := make([]*relayProcess, 0, relays)
	stopAll := func() (relayUsage, error) {
		var u relayUsage
		var firstErr error
		for _, p := range procs {
			pu, err := p.stop()
			u.CPUSeconds += pu.CPUSeconds
			u.MaxRSSMB = max(u.MaxRSSMB, pu.MaxRSSMB)
			u.RusageMaxRSSMB = max(u.RusageMaxRSSMB, pu.RusageMaxRSSMB)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		procs = nil
		return u, firstErr
	}
	defer func() { _, _ = stopAll() }()
	for i := range relays {
		p, err := startRelay(b.relayBin, b.scratch, fmt.Sprintf("bench-%s-%d", br.name(), i+1), b.db.relayURL(run), sk, relayOptions{listen: true, extra: b.relayYAML})
		if err != nil {
			return fail(err)
		}
		procs = append(procs, p)
	}
	deadline := t0.Add(b.drainTimeout(s.events))
	for {
		n, err := br.count(ctx)
		if err == nil && n >= int64(s.events) {
			break
		}
		for _, p := range procs {
			if gone, why := p.exited(); gone {
				return fail(fmt.Errorf("relay exited early: %s", why))
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("timed out after %s with %d of %d events on the broker (count error: %v)",
				time.Since(t0).Round(time.Second), n, s.events, err))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	elapsed := time.Since(t0)
	after := sampleCPU(b.brokerPIDs)
	// Let the last settle land before stopping, then check the table.
	var pending, published int64
	for range 100 {
		var err error
		if pending, published, _, err = pendingAndPublished(ctx, b.db.url(run)); err == nil && pending == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	u, err := stopAll()
	res.Seconds = elapsed.Seconds()
	res.EventsPerSec = float64(s.events) / elapsed.Seconds()
	res.CPUSeconds, res.PeakRSSMB, res.RusageRSSMB = u.CPUSeconds, u.MaxRSSMB, u.RusageMaxRSSMB
	res.CPUPer1M = u.CPUSeconds / float64(s.events) * 1e6
	res.CPU = splitCPU(before, after, br.name())
	if err != nil {
		return fail(err)
	}
	if pending != 0 || published != int64(s.events) {
		return fail(fmt.Errorf("after the drain %d rows are pending and %d published, want 0 and %d", pending, published, s.events))
	}
	if nb, ok := br.(*natsBroker); ok && checkOrder {
		v, err := orderViolations(ctx, nb.srv.js, s.events)
		if err != nil {
			return fail(fmt.Errorf("order check: %w", err))
		}
		res.OrderViolations = &v
	}
	b.logf("  %s: %d events in %.1fs = %.0f/s, relay CPU %.1fs, peak RSS %.0f MB, machine busy %.0f%%",
		name, s.events, res.Seconds, res.EventsPerSec, res.CPUSeconds, res.PeakRSSMB, res.CPU.MachineBusyPct)
	return res
}

// drainTimeout bounds a drain: generous (500 events/s), so a slow machine still finishes.
func (b *bench) drainTimeout(events int) time.Duration {
	return 60*time.Second + time.Duration(events/500)*time.Second
}
