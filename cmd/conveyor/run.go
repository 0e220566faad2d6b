package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/conveyorhq/conveyor/relay"
)

func runCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("run", "Run the relay: claim committed events, publish them, settle them. Stops gracefully on\nSIGTERM or SIGINT, finishing or releasing in-flight events.", stderr)
	files := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*files)
	if err != nil {
		return err
	}
	logger := newLogger(c, stderr)
	slog.SetDefault(logger)
	st, err := openStore(ctx, c, logger)
	if err != nil {
		return scrubbed(c, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return scrubbed(c, err)
	}
	sk, err := openSinks(ctx, c, logger)
	if err != nil {
		return scrubbed(c, err)
	}
	defer sk.Close(context.WithoutCancel(ctx))
	tel, err := startTelemetry(ctx, c, st, logger)
	if err != nil {
		return scrubbed(c, err)
	}
	defer tel.Stop()
	r, err := relay.New(relayConfig(c, st), st, sk.byName, relay.Options{Logger: logger, Hooks: tel.Hooks, Tracer: tel.Tracer})
	if err != nil {
		return err
	}
	tel.Attach(r)
	stopJanitor := startJanitor(ctx, c, st, logger)
	defer stopJanitor()
	if err := r.Run(ctx); err != nil {
		return scrubbed(c, fmt.Errorf("relay: %w", err))
	}
	return nil
}
