package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/postgres"
	"github.com/conveyorhq/conveyor/store/sqlite"
	"github.com/conveyorhq/conveyor/telemetry"
)

func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	return config.Load(file)
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
	return postgres.Open(ctx, postgres.Config{URL: u, MaxConns: int32(c.Database.MaxConns), Logger: logger})
}

// sinks holds the open sinks and whatever must be stopped with them.
type sinks struct {
	byName   map[string]sink.Sink
	embedded []*natsjs.Embedded
}

func (s *sinks) Close(ctx context.Context) {
	for _, sk := range s.byName {
		_ = sk.Close(ctx)
	}
	for _, e := range s.embedded {
		e.Shutdown()
	}
}

func openSinks(ctx context.Context, c *config.Config, logger *slog.Logger) (*sinks, error) {
	out := &sinks{byName: map[string]sink.Sink{}}
	for name, sc := range c.Sinks {
		switch sc.Type {
		case "nats":
			n := sc.NATS
			url := n.URL
			if n.Embedded.Enabled {
				e, err := natsjs.StartEmbedded(ctx, natsjs.EmbeddedConfig{Host: n.Embedded.Host, Port: n.Embedded.Port, StoreDir: n.Embedded.StoreDir})
				if err != nil {
					out.Close(ctx)
					return nil, fmt.Errorf("sinks.%s: start embedded NATS server: %w", name, err)
				}
				out.embedded = append(out.embedded, e)
				url = e.ClientURL()
				logger.Info("embedded NATS JetStream server started", "sink", name, "url", url, "store_dir", n.Embedded.StoreDir)
			}
			s, err := natsjs.New(ctx, natsjs.Config{
				URL: url, Name: "conveyor-relay " + c.Relay.ID,
				User: n.User, Password: n.Password, Token: n.Token, CredsFile: n.CredsFile,
				TLS:    natsjs.TLSConfig{CAFile: n.TLS.CAFile, CertFile: n.TLS.CertFile, KeyFile: n.TLS.KeyFile, InsecureSkipVerify: n.TLS.InsecureSkipVerify},
				Stream: n.Stream.Name, Subjects: n.Stream.Subjects, CreateStream: *n.Stream.Create,
				MaxInFlight: n.MaxInFlight, AckTimeout: n.AckTimeout.D(),
			}, logger.With("sink", name))
			if err != nil {
				out.Close(ctx)
				return nil, fmt.Errorf("sinks.%s: %w", name, err)
			}
			out.byName[name] = s
		default:
			out.Close(ctx)
			return nil, fmt.Errorf("sinks.%s: unsupported type %q", name, sc.Type)
		}
	}
	return out, nil
}

func relayConfig(c *config.Config) relay.Config {
	rc := relay.Config{
		ID: c.Relay.ID, BatchSize: c.Relay.BatchSize, PerKey: c.Relay.PerKey, Lease: c.Relay.Lease.D(),
		PollInterval: c.Relay.PollInterval.D(), Listen: *c.Database.Listen, Workers: c.Relay.Workers,
		ShutdownTimeout: c.Relay.ShutdownTimeout.D(), NoRoute: c.Relay.NoRoute,
		Retry: relay.RetryPolicy{Initial: c.Retry.Initial.D(), Max: c.Retry.Max.D(), MaxAttempts: c.Retry.MaxAttempts},
	}
	for _, r := range c.Routes {
		rc.Routes = append(rc.Routes, relay.Route{Name: r.Name, EventType: r.EventType, Source: r.Source, Sink: r.Sink,
			Destination: r.Destination,
			Retry:       relay.RetryPolicy{Initial: r.Retry.Initial.D(), Max: r.Retry.Max.D(), MaxAttempts: r.Retry.MaxAttempts}})
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
