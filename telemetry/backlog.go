package telemetry

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyorhq/conveyor/store"
)

// Backlog defaults.
const (
	// DefaultBacklogInterval is how often BacklogPoller queries the backlog.
	DefaultBacklogInterval = 15 * time.Second
	// MaxBacklogTypes bounds the event_type series; the smallest backlogs beyond it are
	// summed under event_type="_other".
	MaxBacklogTypes = 200
	otherType       = "_other"
)

// BacklogSource is the part of store.Store the poller needs.
type BacklogSource interface {
	Backlog(ctx context.Context) (*store.Backlog, error)
}

// BacklogPoller refreshes the backlog gauges of a Metrics with one bounded query
// (Store.Backlog) every Interval, never per event. Start and Stop may each be called
// more than once.
type BacklogPoller struct {
	// Source is queried for the backlog. Required.
	Source BacklogSource
	// Metrics receives the result. Required.
	Metrics *Metrics
	// Interval between queries. Default DefaultBacklogInterval.
	Interval time.Duration
	// Timeout bounds one query. Default 10s.
	Timeout time.Duration
	// Logger reports failed queries (at most once a minute). Default slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	lastLog time.Time
}

// Start polls once at once, then every Interval, until Stop or ctx ends.
func (p *BacklogPoller) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	interval := cmp.Or(p.Interval, DefaultBacklogInterval)
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			_ = p.Poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the polling loop and waits for it.
func (p *BacklogPoller) Stop() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Poll queries the backlog once and updates the gauges. A failure keeps the previous
// values and counts in conveyor_backlog_poll_errors_total.
func (p *BacklogPoller) Poll(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, cmp.Or(p.Timeout, 10*time.Second))
	defer cancel()
	b, err := p.Source.Backlog(qctx)
	if err != nil {
		if ctx.Err() != nil {
			return err // stopping
		}
		p.Metrics.backlog.failed()
		p.mu.Lock()
		logNow := time.Since(p.lastLog) >= time.Minute
		if logNow {
			p.lastLog = time.Now()
		}
		p.mu.Unlock()
		if logNow {
			cmp.Or(p.Logger, slog.Default()).Warn("backlog metrics: query failed; the backlog gauges keep their last values", "err", err)
		}
		return err
	}
	p.Metrics.backlog.set(b)
	return nil
}

// backlogCollector exports the last backlog snapshot atomically, so a scrape never sees
// half of one poll and half of the next.
type backlogCollector struct {
	mu     sync.Mutex
	snap   *store.Backlog
	errors float64
}

var (
	backlogEventsDesc = prometheus.NewDesc("conveyor_backlog_events",
		"Pending events per event_type, as of the last backlog query.", []string{"event_type"}, nil)
	oldestPendingDesc = prometheus.NewDesc("conveyor_oldest_pending_age_seconds",
		"Age of the oldest pending event per event_type, as of the last backlog query.", []string{"event_type"}, nil)
	pendingEventsDesc = prometheus.NewDesc("conveyor_pending_events",
		"Pending events of every type, as of the last backlog query (counted up to the scan limit; see conveyor_backlog_truncated).", nil, nil)
	pendingOldestDesc = prometheus.NewDesc("conveyor_pending_oldest_age_seconds",
		"Age of the oldest pending event of any type, as of the last backlog query; 0 when none is pending.", nil, nil)
	backlogTruncatedDesc = prometheus.NewDesc("conveyor_backlog_truncated",
		"1 when more events are pending than the backlog query counts, so the counts are lower bounds.", nil, nil)
	backlogErrorsDesc = prometheus.NewDesc("conveyor_backlog_poll_errors_total",
		"Backlog queries that failed (the database was unreachable or slow).", nil, nil)
)

func (c *backlogCollector) set(b *store.Backlog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snap = b
}

func (c *backlogCollector) failed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errors++
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backlogEventsDesc, oldestPendingDesc, pendingEventsDesc, pendingOldestDesc,
		backlogTruncatedDesc, backlogErrorsDesc} {
		ch <- d
	}
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	b, errs := c.snap, c.errors
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(backlogErrorsDesc, prometheus.CounterValue, errs)
	if b == nil {
		return // no successful query yet: report nothing rather than a false zero
	}
	var total int64
	var oldest time.Duration
	types := make([]string, 0, len(b.ByType))
	for t, n := range b.ByType {
		types = append(types, t)
		total += n
		oldest = max(oldest, b.OldestByType[t])
	}
	// Largest backlogs first; ties by name so the series are stable.
	slices.SortFunc(types, func(x, y string) int {
		return cmp.Or(cmp.Compare(b.ByType[y], b.ByType[x]), cmp.Compare(x, y))
	})
	var otherN int64
	var otherAge time.Duration
	emitOther := false
	for i, t := range types {
		if i >= MaxBacklogTypes || t == otherType {
			otherN += b.ByType[t]
			otherAge = max(otherAge, b.OldestByType[t])
			emitOther = true
			continue
		}
		ch <- prometheus.MustNewConstMetric(backlogEventsDesc, prometheus.GaugeValue, float64(b.ByType[t]), t)
		ch <- prometheus.MustNewConstMetric(oldestPendingDesc, prometheus.GaugeValue, b.OldestByType[t].Seconds(), t)
	}
	if emitOther {
		ch <- prometheus.MustNewConstMetric(backlogEventsDesc, prometheus.GaugeValue, float64(otherN), otherType)
		ch <- prometheus.MustNewConstMetric(oldestPendingDesc, prometheus.GaugeValue, otherAge.Seconds(), otherType)
	}
	ch <- prometheus.MustNewConstMetric(pendingEventsDesc, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(pendingOldestDesc, prometheus.GaugeValue, oldest.Seconds())
	truncated := 0.0
	if b.Truncated {
		truncated = 1
	}
	ch <- prometheus.MustNewConstMetric(backlogTruncatedDesc, prometheus.GaugeValue, truncated)
}
