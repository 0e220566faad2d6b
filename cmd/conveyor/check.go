package main

import (
	"context"
	"fmt"
	"io"

	"github.com/conveyorhq/conveyor/sink"
)

func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "Validate the config, connect to the database and check the schema version, then\nconnect to every sink. Exits non-zero with the failing field or connection.", stderr)
	files := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*files)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "config: ok")
	logger := newLogger(c, io.Discard)
	st, err := openStore(ctx, c, logger)
	if err != nil {
		return scrubbed(c, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return scrubbed(c, err)
	}
	fmt.Fprintln(stdout, "database: ok (schema known)")
	sk, err := openSinks(ctx, c, logger)
	if err != nil {
		return scrubbed(c, err)
	}
	defer sk.Close(ctx)
	for name, s := range sk.byName {
		if ch, ok := s.(sink.Checker); ok {
			if err := ch.Check(ctx); err != nil {
				return scrubbed(c, fmt.Errorf("sinks.%s: %w", name, err))
			}
		}
		fmt.Fprintf(stdout, "sink %s: ok\n", name)
	}
	return nil
}
