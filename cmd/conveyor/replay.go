package main

import (
	"context"
	"io"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return changeCmd(ctx, changeSpec{
		command: "replay",
		help: "Publish already published events again, selected by id, type, key or time range. They\n" +
			"keep their original event ids, so consumers and broker deduplication can drop the copies\n" +
			"they already have. Each becomes pending (attempts 0) and the relay publishes it before\n" +
			"the later pending events of its key. Dry run by default: --yes to act. Interrupted\n" +
			"(Ctrl-C) between batches, it prints the --after-id to resume with.",
		verb: "replay", past: "replayed", statuses: []conveyor.Status{conveyor.StatusPublished}, needFilter: true,
		batch: func(op store.Operator) batchFunc { return op.Replay },
	}, args, stdout, stderr)
}
