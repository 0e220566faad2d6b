package relay

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/store"
)

// Janitor defaults.
const (
	DefaultJanitorInterval = 5 * time.Minute
	DefaultJanitorPause    = 100 * time.Millisecond
)

// Purger is the part of store.Operator the janitor needs.
type Purger interface {
	Purge(ctx context.Context, p *store.PurgeParams) (*store.PurgeResult, error)
}

// Janitor applies retention (retention.published, retention.dead): every Interval it
// deletes old published events, and old dead ones when Dead is set, in batches of
// BatchSize rows, one short transaction each with its audit row, pausing between
// batches. It never deletes a pending event. Several relays may run one each: their
// batches never conflict in a way that loses anything, at worst one finds the rows
// already gone. Start and Stop may each be called more than once.
type Janitor struct {
	// Store deletes the rows. Required.
	Store Purger
	// Published deletes published events this long after publishing; 0 keeps them.
	Published time.Duration
	// Dead deletes dead events this long after they were created; 0 keeps them.
	Dead time.Duration
	// Interval between runs. Default DefaultJanitorInterval.
	Interval time.Duration
	// BatchSize is the most rows per transaction. Default store.DefaultPurgeBatch.
	BatchSize int
	// Pause between batches. Default DefaultJanitorPause.
	Pause time.Duration
	// Actor names the janitor in conveyor_audit, e.g. the relay id. Required.
	Actor string
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs the janitor at once and then every Interval until Stop or ctx ends. It does
// nothing when neither Published nor Dead is set.
func (j *Janitor) Start(ctx context.Context) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cancel != nil || (j.Published <= 0 && j.Dead <= 0) {
		return
	}
	ctx, j.cancel = context.WithCancel(ctx)
	j.done = make(chan struct{})
	interval := cmp.Or(j.Interval, DefaultJanitorInterval)
	log := j.logger()
	log.Info("retention janitor started", "published", j.Published.String(), "dead", j.Dead.String(), "interval", interval.String())
	go func() {
		defer close(j.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
				log.Warn("retention janitor run failed; trying again next interval", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the janitor after its current batch and waits for it.
func (j *Janitor) Stop() {
	j.mu.Lock()
	cancel, done := j.cancel, j.done
	j.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (j *Janitor) logger() *slog.Logger {
	if j.Logger != nil {
		return j.Logger
	}
	return slog.Default()
}

// RunOnce deletes everything retention allows now, batch by batch, and returns the
// number of rows deleted. It stops between batches when ctx ends.
func (j *Janitor) RunOnce(ctx context.Context) (int64, error) {
	if j.Published <= 0 && j.Dead <= 0 {
		return 0, nil
	}
	if j.Store == nil {
		return 0, errors.New("relay: Janitor.Store is required")
	}
	pause := cmp.Or(j.Pause, DefaultJanitorPause)
	var total, published, dead int64
	after := uuid.Nil
	start := time.Now()
	for ctx.Err() == nil {
		// A batch is one short transaction; let it finish even when ctx ends meanwhile.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		res, err := j.Store.Purge(bctx, &store.PurgeParams{
			PublishedOlderThan: j.Published, DeadOlderThan: j.Dead, AfterID: after,
			Limit: j.BatchSize, Actor: j.Actor, Detail: "retention janitor",
		})
		cancel()
		if err != nil {
			return total, err
		}
		total += res.Deleted()
		published += res.Published
		dead += res.Dead
		if !res.More {
			break
		}
		after = res.LastID
		sleep(ctx, pause, nil)
	}
	if total > 0 {
		j.logger().Info("retention janitor deleted old events", "published", published, "dead", dead,
			"took", time.Since(start).Round(time.Millisecond).String())
	}
	return total, ctx.Err()
}
