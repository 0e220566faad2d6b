package main

import (
	"context"
	"log/slog"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/store"
)

// startJanitor starts the retention janitor when retention.published or retention.dead
// is set, and returns its stop function (a no-op otherwise).
func startJanitor(ctx context.Context, c *config.Config, st store.Store, logger *slog.Logger) func() {
	if !c.Retention.Enabled() {
		return func() {}
	}
	p, ok := st.(relay.Purger)
	if !ok {
		logger.Warn("retention is configured but this store cannot purge; no janitor runs")
		return func() {}
	}
	j := &relay.Janitor{Store: p, Published: c.Retention.Published.D(), Dead: c.Retention.Dead.D(),
		Interval: c.Retention.Interval.D(), BatchSize: c.Retention.BatchSize, Pause: c.Retention.Pause.D(),
		Actor: c.Relay.ID, Logger: logger}
	j.Start(ctx)
	return j.Stop
}
