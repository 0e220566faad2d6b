// Package relay is the engine: claim a batch under a lease, publish it with no database
// transaction open, settle every row with a fenced write. Per-key order comes from the
// claim rules plus publishing a key's events one after another; see docs/contract.md.
package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store"
)

// Config tunes the relay. Zero values take the documented defaults.
type Config struct {
	// ID names this relay in leases and logs. Required.
	ID string
	// BatchSize is the most events claimed per cycle. Default 500.
	BatchSize int
	// PerKey is the most consecutive events of one key claimed per cycle. Default 20.
	PerKey int
	// Lease is how long a claim holds its rows. Default 30s.
	Lease time.Duration
	// PollInterval is the fallback poll period. Default 1s.
	PollInterval time.Duration
	// Listen uses the store's commit notifications when it supports them. Default false.
	Listen bool
	// Workers is the number of concurrent claim loops. Default 2.
	Workers int
	// ShutdownTimeout bounds the drain after the context ends. Default 15s.
	ShutdownTimeout time.Duration
	// NoRoute is "dead" (default) or "block" for events that match no route.
	NoRoute string
	// Routes are tried in order; the first match wins.
	Routes []Route
	// Retry is the policy for poison detection when no route matches. Default 10 attempts.
	Retry RetryPolicy
	// ClaimCooldown is the least time between the start of a worker's claim and its
	// next one, unless the first may have left claimable events behind (it was full, or
	// cut a key at PerKey): wake-ups that come closer together are served by one claim.
	// At 1,000 commits/s, 5ms turns about 500 claims of 2 events per second into about
	// 300 of 3.4, for +1.5ms at the median (docs/benchmarks.md). Default 5ms; negative
	// for none.
	ClaimCooldown time.Duration
}

// Relay moves events from a Store to Sinks.
type Relay struct {
	cfg      Config
	store    store.Store
	sinks    map[string]sink.Sink
	breakers map[string]*Breaker
	log      *slog.Logger
	hooks    Hooks
	tracer   Tracer
	wake     chan struct{}
	// listening is set by Run when commit notifications drive the workers.
	listening bool
}

// Options are the optional collaborators of a relay.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Hooks receive metrics events; default none.
	Hooks Hooks
	// Tracer starts a span per publish; default none.
	Tracer Tracer
}

// New builds a relay. sinks maps the names routes use to open sinks; the relay does
// not close them.
func New(cfg Config, st store.Store, sinks map[string]sink.Sink, opts Options) (*Relay, error) {
	logger, hooks := opts.Logger, opts.Hooks
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 500)
	cfg.PerKey = cmp.Or(cfg.PerKey, 20)
	cfg.Lease = cmp.Or(cfg.Lease, 30*time.Second)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.Workers = cmp.Or(cfg.Workers, 2)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 15*time.Second)
	cfg.NoRoute = cmp.Or(cfg.NoRoute, "dead")
	cfg.Retry = fillRetry(cfg.Retry)
	cfg.ClaimCooldown = cmp.Or(cfg.ClaimCooldown, 5*time.Millisecond)
	if cfg.ID == "" {
		return nil, errors.New("relay: Config.ID is required")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if hooks == nil {
		hooks = NopHooks{}
	}
	r := &Relay{cfg: cfg, store: st, sinks: sinks, breakers: map[string]*Breaker{},
		log: logger.With("relay_id", cfg.ID), hooks: hooks, tracer: opts.Tracer, wake: make(chan struct{}, cfg.Workers)}
	for i := range r.cfg.Routes {
		rt := &r.cfg.Routes[i]
		if _, ok := sinks[rt.Sink]; !ok {
			return nil, fmt.Errorf("relay: route %s names unknown sink %q", rt.Name, rt.Sink)
		}
		if dl := rt.DeadLetter; dl != nil {
			if _, ok := sinks[dl.Sink]; !ok {
				return nil, fmt.Errorf("relay: route %s dead_letter names unknown sink %q", rt.Name, dl.Sink)
			}
		}
		switch rt.OnDead {
		case "":
			rt.OnDead = "skip"
		case "skip", "block":
		default:
			return nil, fmt.Errorf("relay: route %s: on_dead must be skip or block, got %q", rt.Name, rt.OnDead)
		}
		rt.Retry = fillRetry(rt.Retry)
	}
	for name := range sinks {
		r.breakers[name] = &Breaker{}
	}
	return r, nil
}

func fillRetry(p RetryPolicy) RetryPolicy {
	p.Initial = cmp.Or(p.Initial, time.Second)
	p.Max = cmp.Or(p.Max, 5*time.Minute)
	p.MaxAttempts = cmp.Or(p.MaxAttempts, 10)
	return p
}

// Breaker returns the circuit breaker of a sink, for health checks.
func (r *Relay) Breaker(sinkName string) *Breaker { return r.breakers[sinkName] }

// Wake asks an idle worker to claim now.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// drainWake empties the wake-up channel without blocking.
func (r *Relay) drainWake() {
	for {
		select {
		case <-r.wake:
		default:
			return
		}
	}
}

// Run relays until ctx ends, then finishes or releases in-flight work and returns.
func (r *Relay) Run(ctx context.Context) error {
	if r.cfg.Listen && r.store.SupportsListenNotify() {
		ch, err := r.store.Listen(ctx)
		if err != nil {
			return fmt.Errorf("relay: listen: %w", err)
		}
		r.listening = true
		// One token per notification: one idle worker claims what has committed so far.
		// A worker that claims a full batch wakes another (worker), so a burst still
		// spreads over every worker, while a trickle costs one claim per wake-up instead
		// of one per worker.
		go func() {
			for range ch {
				r.Wake()
			}
		}()
	}
	r.log.InfoContext(ctx, "relay started", "workers", r.cfg.Workers, "batch_size", r.cfg.BatchSize,
		"per_key", r.cfg.PerKey, "lease", r.cfg.Lease.String(), "listen", r.cfg.Listen && r.store.SupportsListenNotify())
	var wg sync.WaitGroup
	for i := range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(ctx, i)
		}()
	}
	wg.Wait()
	r.log.Info("relay stopped")
	return nil
}

func (r *Relay) worker(ctx context.Context, n int) {
	failures := 0
	var lastClaim time.Time
	backToBack := false
	for ctx.Err() == nil {
		if wait, ok := r.allBreakersOpen(); ok {
			sleep(ctx, wait, r.wake)
			continue
		}
		if cd := r.cfg.ClaimCooldown; cd > 0 && !backToBack {
			if wait := cd - time.Since(lastClaim); wait > 0 {
				sleep(ctx, wait, nil)
			}
		}
		lastClaim, backToBack = time.Now(), false
		// Every wake-up token already queued is covered by this claim: its commit
		// happened before the token, so before the claim's snapshot.
		r.drainWake()
		claimed, more, err := r.cycle(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			backoff := min(time.Duration(1<<min(failures, 6))*100*time.Millisecond, 10*time.Second)
			r.log.ErrorContext(ctx, "relay cycle failed; retrying", "worker", n, "err", err, "backoff", backoff.String())
			sleep(ctx, backoff, nil)
			continue
		}
		failures = 0
		if claimed >= r.cfg.BatchSize {
			r.Wake() // more work is likely: let another worker in too
		}
		// Claim again at once when this claim may have left claimable rows behind (a
		// full batch, a key cut at per_key), or when nothing else will say so: without
		// notifications, polling back to back is what keeps latency low under load.
		// With notifications, a partial claim took everything committed before it, and
		// anything committed since sends its own wake-up.
		if claimed > 0 && (more || !r.listening) {
			backToBack = more
			continue
		}
		// Idle: wait for a notification or the poll tick, with jitter so workers spread.
		poll := r.cfg.PollInterval
		sleep(ctx, poll/2+time.Duration(rand.Int64N(int64(poll/2)+1)), r.wake)
	}
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// allBreakersOpen reports whether every sink refuses work, and for how long.
func (r *Relay) allBreakersOpen() (time.Duration, bool) {
	if len(r.breakers) == 0 {
		return 0, false
	}
	var wait time.Duration
	for _, b := range r.breakers {
		st, _ := b.State()
		if st == BreakerClosed {
			return 0, false
		}
		if st == BreakerHalfOpen {
			return 0, false
		}
		b.mu.Lock()
		w := time.Until(b.until)
		b.mu.Unlock()
		if w <= 0 {
			return 0, false
		}
		if wait == 0 || w < wait {
			wait = w
		}
	}
	return wait, true
}
