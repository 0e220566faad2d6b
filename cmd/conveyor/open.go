package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	_ "github.com/conveyorhq/conveyor/sink/all" // registers the sink types
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/mysql"
	"github.com/conveyorhq/conveyor/store/postgres"
	"github.com/conveyorhq/conveyor/store/sqlite"
	"github.com/conveyorhq/conveyor/telemetry"
)

// loadConfig layers the --config files and the CONVEYOR_* environment overrides; with
// no file the base is the embedded setup.
func loadConfig(files []string) (*config.Config, error) {
	return config.LoadFiles(files, nil)
}

func openStore(ctx context.Context, c *config.Config, logger *slog.Logger) (store.Store, error) {
	u := c.Database.URL
	if strings.HasPrefix(u, "sqlite:") {
		p, err := sqlite.ParseURL(u)
		if err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, sqlite.Config{Path: p})
	}
	if strings.HasPrefix(u, "mysql://") || strings.HasPrefix(u, "mariadb://") {
		return mysql.Open(ctx, mysql.Config{URL: u, MaxConns: c.Database.MaxConns, Logger: logger})
	}
	return postgres.Open(ctx, postgres.Config{URL: u, MaxConns: int32(c.Database.MaxConns), Logger: logger})
}

// sinks holds the open sinks.
type sinks struct {
	byName map[string]sink.Sink
}

func (s *sinks) Close(ctx context.Context) {
	for _, sk := range s.byName {
		_ = sk.Close(ctx)
	}
}

func openSinks(ctx context.Context, c *config.Config, logger *slog.Logger) (*sinks, error) {
	out := &sinks{byName: map[string]sink.Sink{}}
	for name, sc := range c.Sinks {
		s, err := sc.Config.Open(ctx, logger.With("sink", name))
		if err != nil {
			out.Close(ctx)
			return nil, fmt.Errorf("sinks.%s: %w", name, err)
		}
		out.byName[name] = s
	}
	return out, nil
}

func relayConfig(c *config.Config, st store.Store) relay.Config {
	poll := c.Relay.PollInterval.D()
	if poll == 0 {
		poll = time.Second
		if !*c.Database.Listen || !st.SupportsListenNotify() {
			poll = 100 * time.Millisecond // nothing wakes the relay: poll often (an idle poll is one index probe)
		}
	}
	cooldown := c.Relay.ClaimCooldown.D()
	if cooldown == 0 {
		cooldown = -1 // relay.Config: zero is the default, negative is none
	}
	rc := relay.Config{
		ClaimCooldown: cooldown,
		ID:            c.Relay.ID, BatchSize: c.Relay.BatchSize, PerKey: c.Relay.PerKey, Lease: c.Relay.Lease.D(),
		PollInterval: poll, Listen: *c.Database.Listen, Workers: c.Relay.Workers,
		ShutdownTimeout: c.Relay.ShutdownTimeout.D(), NoRoute: c.Relay.NoRoute,
		Retry: relay.RetryPolicy{Initial: c.Retry.Initial.D(), Max: c.Retry.Max.D(), MaxAttempts: c.Retry.MaxAttempts},
	}
	for _, r := range c.Routes {
		rt := relay.Route{Name: r.Name, EventType: r.EventType, Source: r.Source, Headers: r.Headers, Sink: r.Sink,
			Destination: r.Destination, OnDead: r.OnDead,
			Retry: relay.RetryPolicy{Initial: r.Retry.Initial.D(), Max: r.Retry.Max.D(), MaxAttempts: r.Retry.MaxAttempts}}
		if r.DeadLetter != nil {
			rt.DeadLetter = &relay.DeadLetter{Sink: r.DeadLetter.Sink, Destination: r.DeadLetter.Destination}
		}
		rc.Routes = append(rc.Routes, rt)
	}
	return rc
}

func newLogger(c *config.Config, w io.Writer) *slog.Logger {
	return telemetry.NewLogger(w, c.Log.Level, c.Log.Format, c.Secrets())
}

// scrubbed returns err's message with the config's secrets removed.
func scrubbed(c *config.Config, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s", telemetry.Scrub(err.Error(), c.Secrets()))
}
