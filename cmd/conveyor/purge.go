package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/store"
)

// purgeResult is the JSON output of purge.
type purgeResult struct {
	DryRun      bool  `json:"dry_run"`
	Published   int64 `json:"published"`
	Dead        int64 `json:"dead"`
	Interrupted bool  `json:"interrupted"`
}

func purgeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("purge", "Delete published events published more than --older-than ago, in batches of short\n"+
		"transactions (one audit row each). Pending events are never deleted; dead events only\n"+
		"with --include-dead (created more than --older-than ago, discarded or not). Dry run by\n"+
		"default: --yes to delete. Safe to interrupt and to re-run. `retention:` in the config\n"+
		"makes `conveyor run` do the same in the background.", stderr)
	files := configFlag(fs)
	olderThan := fs.String("older-than", "", "age cutoff, required: 7d, 36h, 90m")
	includeDead := fs.Bool("include-dead", false, "also delete dead events created before the cutoff")
	yes := fs.Bool("yes", false, "delete; without it, count what would be deleted (dry run)")
	actor := fs.String("actor", defaultActor(), "who acts, written to the audit trail")
	reason := fs.String("reason", "", "why, written to the audit trail")
	batchSize := fs.Int("batch-size", store.DefaultPurgeBatch, "rows per transaction")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *olderThan == "" {
		return usageError(fs, "--older-than is required, e.g. --older-than 7d")
	}
	age, err := config.ParseDuration(*olderThan)
	if err != nil || age <= 0 {
		return usageError(fs, "--older-than %q: want a positive duration like 7d, 36h or 90m", *olderThan)
	}
	if *batchSize < 1 || *batchSize > store.MaxBatch {
		return usageError(fs, "--batch-size must be between 1 and %d, got %d", store.MaxBatch, *batchSize)
	}
	if strings.TrimSpace(*actor) == "" {
		return usageError(fs, "--actor must not be empty: the audit trail records who acted")
	}
	op, c, closeStore, err := openOperator(ctx, *files)
	if err != nil {
		return err
	}
	defer closeStore()
	p := store.PurgeParams{PublishedOlderThan: age, Limit: *batchSize, Actor: *actor}
	if *includeDead {
		p.DeadOlderThan = age
	}
	detail := "conveyor purge --older-than " + *olderThan
	if *includeDead {
		detail += " --include-dead"
	}
	if *reason != "" {
		detail += " (reason: " + *reason + ")"
	}
	p.Detail = detail
	dry := p
	dry.DryRun = true
	would, err := op.Purge(ctx, &dry)
	if err != nil {
		return scrubbed(c, err)
	}
	what := "published events published more than " + *olderThan + " ago"
	if *includeDead {
		what += ", and dead events created more than " + *olderThan + " ago"
	}
	if !*yes {
		if *asJSON {
			return writeJSON(stdout, purgeResult{DryRun: true, Published: would.Published, Dead: would.Dead})
		}
		fmt.Fprintf(stdout, "purge: dry run, nothing deleted. Would delete %d published and %d dead events (%s).\n",
			would.Published, would.Dead, what)
		if would.Deleted() > 0 {
			fmt.Fprintln(stdout, "Run again with --yes to delete them.")
		}
		return nil
	}
	prog := newProgress(stderr, "purge", would.Deleted())
	var out purgeResult
	for {
		if ctx.Err() != nil {
			out.Interrupted = true
			break
		}
		// The batch finishes even if ctx ends meanwhile; the loop stops before the next.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		res, err := op.Purge(bctx, &p)
		cancel()
		if err != nil {
			prog.finish()
			return scrubbed(c, err)
		}
		out.Published += res.Published
		out.Dead += res.Dead
		prog.add(res.Deleted())
		if !res.More || res.LastID == uuid.Nil {
			break
		}
		p.AfterID = res.LastID
	}
	prog.finish()
	if *asJSON {
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "purge: deleted %d published and %d dead events (%s)\n", out.Published, out.Dead, what)
	}
	if out.Interrupted {
		fmt.Fprintln(stderr, "purge: interrupted; every finished batch is complete. Run the same command again to continue.")
		return errInterrupted
	}
	return nil
}
