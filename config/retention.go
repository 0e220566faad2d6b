package config

import "time"

// Retention defaults.
const (
	DefaultRetentionInterval  = 5 * time.Minute
	DefaultRetentionBatchSize = 1000
	DefaultRetentionPause     = 100 * time.Millisecond
)

// Retention configures the janitor that `conveyor run` starts to delete old events in
// small batches, the same way `conveyor purge` does. Pending events are never deleted.
// Every relay runs it; concurrent janitors are harmless.
type Retention struct {
	// Published deletes published events this long after they were published. Default
	// off (0); e.g. "7d".
	Published Duration `yaml:"published,omitempty"`
	// Dead deletes dead events, discarded or not, this long after they were created.
	// Default off (0): dead events stay until an operator retries, discards or purges them.
	Dead Duration `yaml:"dead,omitempty"`
	// Interval is the time between janitor runs. Default 5m.
	Interval Duration `yaml:"interval"`
	// BatchSize is the most rows deleted per transaction. Default 1000.
	BatchSize int `yaml:"batch_size"`
	// Pause is the wait between two batches of one run, so the janitor never hogs the
	// table. Default 100ms.
	Pause Duration `yaml:"pause"`
}

// Enabled reports whether the janitor has anything to do.
func (r *Retention) Enabled() bool { return r.Published > 0 || r.Dead > 0 }

func (r *Retention) defaults() {
	if r.Interval == 0 {
		r.Interval = Duration(DefaultRetentionInterval)
	}
	if r.BatchSize == 0 {
		r.BatchSize = DefaultRetentionBatchSize
	}
	if r.Pause == 0 {
		r.Pause = Duration(DefaultRetentionPause)
	}
}

func (r *Retention) validate(bad func(field, format string, args ...any)) {
	if r.Published < 0 {
		bad("retention.published", "must not be negative, got %s (leave it unset to keep published events)", r.Published)
	}
	if r.Dead < 0 {
		bad("retention.dead", "must not be negative, got %s (leave it unset to keep dead events)", r.Dead)
	}
	if r.Interval.D() < time.Second {
		bad("retention.interval", "must be at least 1s, got %s", r.Interval)
	}
	if r.BatchSize < 1 || r.BatchSize > 10000 {
		bad("retention.batch_size", "must be between 1 and 10000, got %d", r.BatchSize)
	}
	if r.Pause < 0 {
		bad("retention.pause", "must not be negative, got %s", r.Pause)
	}
}
