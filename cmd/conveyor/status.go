package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "Show how many events are pending, in flight, published and dead, and the age of the\noldest pending event.", stderr)
	file := fs.String("config", "", "YAML config file (default: the embedded setup)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*file)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c, newLogger(c, io.Discard))
	if err != nil {
		return scrubbed(c, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return scrubbed(c, err)
	}
	s, err := st.Stats(ctx)
	if err != nil {
		return scrubbed(c, err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"pending": s.Pending, "in_flight": s.InFlight, "published": s.Published, "dead": s.Dead,
			"oldest_pending_seconds": s.OldestPending.Seconds(),
		})
	}
	fmt.Fprintf(stdout, "pending    %d (in flight %d)\npublished  %d\ndead       %d\noldest pending age  %s\n",
		s.Pending, s.InFlight, s.Published, s.Dead, s.OldestPending.Round(1e6))
	return nil
}
