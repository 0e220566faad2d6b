package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store"
)

// item is one claimed event on its way through a cycle.
type item struct {
	c       *store.Claimed
	route   *Route
	dest    string
	done    bool
	outcome store.Outcome
}

func (it *item) settle(kind store.OutcomeKind, delay time.Duration, errMsg string) {
	it.done = true
	it.outcome = store.Outcome{ID: it.c.ID, LeaseToken: it.c.LeaseToken, Kind: kind, Delay: delay, Error: errMsg}
}

func (it *item) logAttrs() []any {
	name := ""
	if it.route != nil {
		name = it.route.Name
	}
	return []any{"event_id", it.c.ID.String(), "event_type", it.c.Type, "route", name,
		"attempt", it.c.Attempts, "trace_id", traceID(it.c.Headers["traceparent"])}
}

// traceID extracts the trace id from a W3C traceparent.
func traceID(tp string) string {
	if len(tp) >= 35 && tp[2] == '-' {
		return tp[3:35]
	}
	return ""
}

// Cycle runs one claim-publish-settle round and returns how many events it claimed.
func (r *Relay) Cycle(ctx context.Context) (int, error) {
	n, _, err := r.cycle(ctx)
	return n, err
}

// cycle is Cycle, and also reports whether the claim may have left claimable events
// behind: it was full, or it cut a key's run at PerKey.
func (r *Relay) cycle(ctx context.Context) (int, bool, error) {
	if ctx.Err() != nil {
		return 0, false, ctx.Err()
	}
	t0 := time.Now()
	// The claim must not be cancelled halfway by shutdown: the server could commit the
	// lease after the client gave up, leaving rows leased to nobody until they expire.
	claimCtx, claimCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer claimCancel()
	claimed, err := r.store.Claim(claimCtx, &store.ClaimParams{RelayID: r.cfg.ID, Limit: r.cfg.BatchSize,
		PerKey: r.cfg.PerKey, Lease: r.cfg.Lease})
	if err != nil {
		return 0, false, err
	}
	if len(claimed) == 0 {
		return 0, false, nil
	}
	tClaim := time.Since(t0)
	more := len(claimed) >= r.cfg.BatchSize || maxRun(claimed) >= r.cfg.PerKey
	// Publishing may outlive ctx (shutdown): it gets its own deadline inside the lease,
	// so a settle after it still holds the lease.
	pubCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Lease*4/5)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		// On shutdown allow ShutdownTimeout for the in-flight waves, then give up.
		time.AfterFunc(r.cfg.ShutdownTimeout, cancel)
	})
	defer stop()

	items := r.prepare(claimed)
	t1 := time.Now()
	r.publishWaves(ctx, pubCtx, items)
	r.publishDeadLetters(pubCtx, items)
	tPub := time.Since(t1)

	outcomes := make([]store.Outcome, len(items))
	for i, it := range items {
		outcomes[i] = it.outcome
	}
	t2 := time.Now()
	res, err := r.settle(ctx, t0.Add(r.cfg.Lease), outcomes)
	if err != nil {
		return len(claimed), more, fmt.Errorf("settle %d events (their leases expire in %s and they will be retried): %w",
			len(outcomes), r.cfg.Lease, err)
	}
	if n := len(res.LeaseLost); n > 0 {
		r.hooks.OnLeaseLost(n)
		r.log.WarnContext(ctx, "lease lost: settle refused for events whose lease expired or was taken over; they may be published twice",
			"count", n, "first_event_id", res.LeaseLost[0].String())
	}
	r.hooks.OnBatch(len(claimed), tClaim, tPub, time.Since(t2))
	return len(claimed), more, nil
}

// maxRun is the most events of one key in a claim.
func maxRun(claimed []*store.Claimed) int {
	per := make(map[string]int, len(claimed))
	best := 0
	for _, c := range claimed {
		if c.Key != "" {
			per[c.Key]++
			best = max(best, per[c.Key])
		}
	}
	return best
}

// settle writes the outcomes, retrying a failed write (a database restart, a dropped
// connection) until the lease runs out: a settle that lands in time avoids republishing
// the whole batch as duplicates.
func (r *Relay) settle(ctx context.Context, leaseEnd time.Time, outcomes []store.Outcome) (*store.SettleResult, error) {
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), leaseEnd.Add(5*time.Second))
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		res, err := r.store.Settle(sctx, &store.SettleParams{RelayID: r.cfg.ID, Outcomes: outcomes})
		if err == nil || time.Now().Add(backoff).After(leaseEnd) {
			return res, err
		}
		r.log.Warn("settle failed; retrying while the lease holds", "events", len(outcomes), "err", err,
			"retry_in", backoff.String())
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
}

// prepare routes each claimed event and settles the ones that cannot be published.
func (r *Relay) prepare(claimed []*store.Claimed) []*item {
	items := make([]*item, len(claimed))
	for i, c := range claimed {
		it := &item{c: c}
		items[i] = it
		if c.DecodeErr != nil {
			r.dead(it, c.DecodeErr.Error())
			continue
		}
		it.route = r.match(c)
		if it.route == nil {
			if r.cfg.NoRoute == "block" {
				it.settle(store.OutcomeRelease, time.Minute, fmt.Sprintf("no route matches event_type %q (no_route: block)", c.Type))
				r.log.Warn("no route; holding event", it.logAttrs()...)
				continue
			}
			r.dead(it, fmt.Sprintf("no route matches event_type %q source %q", c.Type, c.Source))
			continue
		}
		if c.Attempts > it.route.Retry.MaxAttempts {
			r.dead(it, fmt.Sprintf("poison: %d delivery attempts started without finishing (max_attempts %d); the relay may have crashed while publishing it",
				c.Attempts-1, it.route.Retry.MaxAttempts))
			continue
		}
		it.dest = Render(it.route.Destination, &c.Event)
	}
	return items
}

func (r *Relay) match(c *store.Claimed) *Route {
	for i := range r.cfg.Routes {
		if r.cfg.Routes[i].matches(&c.Event) {
			return &r.cfg.Routes[i]
		}
	}
	return nil
}

func (r *Relay) dead(it *item, msg string) {
	it.settle(store.OutcomeDead, 0, msg)
	name := ""
	if it.route != nil {
		name = it.route.Name
		it.outcome.BlockKey = it.route.OnDead == "block" && it.c.Key != ""
	}
	r.hooks.OnDead(name)
	r.log.Error("event dead-lettered", append(it.logAttrs(), "error", msg)...)
}

// publishWaves publishes in waves: each wave holds every keyless event (first wave only)
// and the next event of each key whose previous event succeeded, so a key never has two
// events in flight and a failed event is never overtaken.
func (r *Relay) publishWaves(ctx, pubCtx context.Context, items []*item) {
	var queues [][]*item
	byKey := map[string]int{}
	var wave []*item
	for _, it := range items {
		if it.done {
			continue
		}
		if it.c.Key == "" {
			wave = append(wave, it)
			continue
		}
		qi, ok := byKey[it.c.Key]
		if !ok {
			qi = len(queues)
			byKey[it.c.Key] = qi
			queues = append(queues, nil)
		}
		queues[qi] = append(queues[qi], it) // claims come back in id order
	}
	for {
		for qi, q := range queues {
			if len(q) > 0 {
				wave = append(wave, q[0])
				queues[qi] = q[1:]
			}
		}
		if len(wave) == 0 {
			return
		}
		if ctx.Err() != nil && pubCtx.Err() != nil {
			for _, it := range wave {
				it.settle(store.OutcomeRelease, 0, "")
			}
		} else {
			r.publishWave(pubCtx, wave)
		}
		// A key whose event did not get published releases the rest of its run.
		for _, it := range wave {
			if it.c.Key == "" || it.outcome.Kind == store.OutcomePublished {
				continue
			}
			qi := byKey[it.c.Key]
			for _, rest := range queues[qi] {
				rest.settle(store.OutcomeRelease, 0, "")
			}
			queues[qi] = nil
		}
		wave = wave[:0]
	}
}

func (r *Relay) publishWave(ctx context.Context, wave []*item) {
	bySink := map[string][]*item{}
	for _, it := range wave {
		bySink[it.route.Sink] = append(bySink[it.route.Sink], it)
	}
	var wg sync.WaitGroup
	for name, its := range bySink {
		br := r.breakers[name]
		if ok, wait := br.Allow(); !ok {
			for _, it := range its {
				it.settle(store.OutcomeRelease, wait, "")
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.publishToSink(ctx, name, br, its)
		}()
	}
	wg.Wait()
}

func (r *Relay) publishToSink(ctx context.Context, name string, br *Breaker, its []*item) {
	msgs := make([]*sink.Message, len(its))
	ends := make([]func(error), len(its))
	for i, it := range its {
		ev := &it.c.Event
		if r.tracer != nil {
			var headers map[string]string
			headers, ends[i] = r.tracer.StartPublish(ev, it.route.Name, name, it.dest)
			if headers != nil {
				cp := *ev
				cp.Headers = headers
				ev = &cp
			}
		}
		msgs[i] = &sink.Message{Event: ev, Destination: it.dest, Route: it.route.Name}
	}
	errs := r.sinks[name].Publish(ctx, msgs)
	for i, end := range ends {
		if end != nil {
			var err error
			if i < len(errs) {
				err = errs[i]
			}
			end(err)
		}
	}
	var outage, delivered bool
	debug := r.log.Enabled(ctx, slog.LevelDebug) // else skip building attributes per message
	for i, it := range its {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = fmt.Errorf("sink %s returned %d results for %d messages", name, len(errs), len(msgs))
		}
		if err == nil {
			delivered = true
			it.settle(store.OutcomePublished, 0, "")
			r.hooks.OnPublished(it.route.Name, name, time.Since(it.c.CreatedAt))
			if debug {
				r.log.Debug("published", append(it.logAttrs(), "destination", it.dest)...)
			}
			continue
		}
		kind := sink.KindOf(err)
		if ctx.Err() != nil && kind == sink.KindMessage {
			kind = sink.KindTransient // our own deadline, not the message's fault
		}
		r.hooks.OnFailure(it.route.Name, name, kind)
		msg := fmt.Sprintf("%s: %v", kind, err)
		switch kind {
		case sink.KindTransient:
			outage = true
			it.settle(store.OutcomeRelease, 0, msg)
		case sink.KindPermanent:
			r.dead(it, msg)
		default:
			if it.c.Attempts >= it.route.Retry.MaxAttempts {
				r.dead(it, fmt.Sprintf("%s (gave up after %d attempts)", msg, it.c.Attempts))
				continue
			}
			delay := it.route.Retry.Delay(it.c.Attempts, sink.RetryAfterOf(err))
			it.settle(store.OutcomeRetry, delay, msg)
			r.hooks.OnRetry(it.route.Name)
			r.log.Warn("publish failed; will retry", append(it.logAttrs(), "error", msg, "retry_in", delay.String())...)
		}
	}
	switch {
	case outage:
		if br.Failure() {
			r.hooks.OnBreaker(name, BreakerOpen)
			r.log.Warn("circuit opened: destination unreachable; no attempts are used while it is open", "sink", name,
				"error", firstErr(errs))
		}
		// Released events wait out the cooldown instead of spinning.
		_, wait := br.Allow()
		for _, it := range its {
			if it.outcome.Kind == store.OutcomeRelease {
				it.outcome.Delay = wait
			}
		}
	case delivered:
		if br.Success() {
			r.hooks.OnBreaker(name, BreakerClosed)
			r.log.Info("circuit closed", "sink", name)
		}
	}
}

func firstErr(errs []error) slog.Value {
	for _, e := range errs {
		if e != nil {
			return slog.StringValue(e.Error())
		}
	}
	return slog.StringValue("")
}

// publishDeadLetters also sends this cycle's dead events to their route's dead-letter
// destination. The row is dead in the table either way (the table is the record); a
// failure here is logged, not retried.
func (r *Relay) publishDeadLetters(ctx context.Context, items []*item) {
	bySink := map[string][]*sink.Message{}
	for _, it := range items {
		if it.outcome.Kind != store.OutcomeDead || it.route == nil || it.route.DeadLetter == nil {
			continue
		}
		ev := it.c.Event
		ev.Headers = make(map[string]string, len(it.c.Headers)+3)
		for k, v := range it.c.Headers {
			ev.Headers[k] = v
		}
		ev.Headers[HeaderDeadReason] = it.outcome.Error
		ev.Headers[HeaderDeadAttempts] = fmt.Sprint(it.c.Attempts)
		ev.Headers[HeaderDeadRoute] = it.route.Name
		if ev.Data == nil {
			ev.Data = []byte("null")
		}
		dl := it.route.DeadLetter
		bySink[dl.Sink] = append(bySink[dl.Sink], &sink.Message{Event: &ev, Destination: Render(dl.Destination, &ev), Route: it.route.Name})
	}
	for name, msgs := range bySink {
		errs := r.sinks[name].Publish(ctx, msgs)
		for i, err := range errs {
			if err != nil {
				r.log.Error("dead-letter publish failed; the event stays dead in the table",
					"event_id", msgs[i].Event.ID.String(), "sink", name, "destination", msgs[i].Destination, "err", err)
			}
		}
	}
}
