package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func deadSubcommands() []subcommand {
	return []subcommand{
		{"list", "list dead events (newest last), with filters", deadListCmd},
		{"show", "show one event with every column and its audit trail", deadShowCmd},
		{"retry", "make dead events pending again (attempts reset, per-key order kept)", deadRetryCmd},
		{"discard", "mark dead events discarded: they stay in the table and stop blocking their key", deadDiscardCmd},
	}
}

func deadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch("dead", "Inspect and handle dead events: events the relay gave up on, kept with their last error.\nretry and discard change nothing without --yes; every change is written to the\nconveyor_audit table with --actor and --reason.", deadSubcommands(), ctx, args, stdout, stderr)
}

// dispatch runs a subcommand of a command group.
func dispatch(group, help string, subs []subcommand, ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: conveyor %s <subcommand> [flags]\n\n%s\n\nSubcommands:\n", group, help)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun `conveyor %s <subcommand> --help` for its flags.\n", group)
	}
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help") {
		fmt.Fprintf(stderr, "conveyor %s: a subcommand is required before the flags\n\n", group)
		usage(stderr)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "conveyor %s: unknown subcommand %q\n\n", group, args[0])
	usage(stderr)
	return errUsage
}

// parseInterleaved parses flags and positional arguments in any order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

var deadStatus = []conveyor.Status{conveyor.StatusDead}

func deadListCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dead list", "List dead events in id (= creation) order, with their last error. Discarded events are\nhidden unless --include-discarded. Page with --after-id.", stderr)
	files := configFlag(fs)
	ff := addFilterFlags(fs, true)
	limit := fs.Int("limit", 50, "show at most this many events")
	afterID := fs.String("after-id", "", "show events after this id (the next page)")
	discarded := fs.Bool("include-discarded", false, "also show discarded events")
	asJSON := fs.Bool("json", false, "print a JSON array, with data and headers")
	if err := parse(fs, args); err != nil {
		return err
	}
	f, err := ff.filter()
	if err != nil {
		return usageError(fs, "%v", err)
	}
	if *limit < 1 || *limit > store.MaxBatch {
		return usageError(fs, "--limit must be between 1 and %d, got %d", store.MaxBatch, *limit)
	}
	after := uuid.Nil
	if *afterID != "" {
		if after, err = parseID("after-id", *afterID); err != nil {
			return usageError(fs, "%v", err)
		}
	}
	op, c, closeStore, err := openOperator(ctx, *files)
	if err != nil {
		return err
	}
	defer closeStore()
	p := &store.ListEventsParams{Filter: f, Statuses: deadStatus, IncludeDiscarded: *discarded, AfterID: after, Limit: *limit}
	rows, err := op.ListEvents(ctx, p)
	if err != nil {
		return scrubbed(c, err)
	}
	if *asJSON {
		out := make([]eventJSON, 0, len(rows))
		for _, r := range rows {
			out = append(out, toJSON(r, true))
		}
		return writeJSON(stdout, out)
	}
	cnt, err := op.CountEvents(ctx, p)
	if err != nil {
		return scrubbed(c, err)
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no dead events match %s\n", f)
		return nil
	}
	printEvents(stdout, rows)
	fmt.Fprintf(stdout, "\n%d of %s.", len(rows), plural(cnt.Count, "matching dead event"))
	if int64(len(rows)) < cnt.Count {
		fmt.Fprintf(stdout, " Next page: --after-id %s", rows[len(rows)-1].ID)
	}
	fmt.Fprintln(stdout)
	return nil
}

func deadShowCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dead show", "Show one event (any status) with every column: payload, headers, last error, attempts,\nlease, and its audit trail.\n\nUsage: conveyor dead show [flags] EVENT_ID", stderr)
	files := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError(fs, "expected one event id, got %d arguments", len(pos))
	}
	id, err := parseID("id", pos[0])
	if err != nil {
		return usageError(fs, "%s", strings.TrimPrefix(err.Error(), "--id "))
	}
	op, c, closeStore, err := openOperator(ctx, *files)
	if err != nil {
		return err
	}
	defer closeStore()
	d, err := op.GetEvent(ctx, &store.GetEventParams{ID: id})
	if err != nil {
		return scrubbed(c, err)
	}
	if *asJSON {
		type auditJSON struct {
			At     time.Time `json:"at"`
			Actor  string    `json:"actor"`
			Action string    `json:"action"`
			Detail string    `json:"detail"`
		}
		out := struct {
			eventJSON
			Audit []auditJSON `json:"audit"`
		}{eventJSON: toJSON(d.Event, true), Audit: []auditJSON{}}
		for _, a := range d.Audit {
			out.Audit = append(out.Audit, auditJSON{At: a.At, Actor: a.Actor, Action: a.Action, Detail: a.Detail})
		}
		return writeJSON(stdout, out)
	}
	printEvent(stdout, d)
	return nil
}

func printEvent(w io.Writer, d *store.EventDetail) {
	e := d.Event
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-14s %s\n", k+":", v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	status := e.Status.String()
	if !e.DiscardedAt.IsZero() {
		status += " (discarded)"
	} else if e.BlocksKey {
		status += " (blocks its key)"
	}
	line("id", e.ID.String())
	line("type", e.Type)
	line("source", e.Source)
	line("key", e.Key)
	line("subject", e.Subject)
	line("status", status)
	line("attempts", fmt.Sprint(e.Attempts))
	line("created", ts(e.CreatedAt))
	line("available", ts(e.AvailableAt))
	line("published", ts(e.PublishedAt))
	line("discarded", ts(e.DiscardedAt))
	if !e.LockedUntil.IsZero() {
		line("lease", fmt.Sprintf("%s until %s (token %d)", e.LockedBy, ts(e.LockedUntil), e.LeaseToken))
	}
	line("idempotency", e.IdempotencyKey)
	line("last error", e.LastError)
	if len(e.Headers) > 0 {
		keys := make([]string, 0, len(e.Headers))
		for k := range e.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintln(w, "headers:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", k, e.Headers[k])
		}
	}
	fmt.Fprintln(w, "data:")
	var pretty any
	if err := json.Unmarshal([]byte(e.RawData), &pretty); err == nil {
		b, _ := json.MarshalIndent(pretty, "  ", "  ")
		fmt.Fprintf(w, "  %s\n", b)
	} else {
		fmt.Fprintf(w, "  %s\n", e.RawData)
	}
	if len(d.Audit) > 0 {
		fmt.Fprintln(w, "audit:")
		for _, a := range d.Audit {
			fmt.Fprintf(w, "  %s  %-8s %s  %s\n", a.At.UTC().Format(time.RFC3339), a.Action, a.Actor, a.Detail)
		}
	}
}

func deadRetryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return changeCmd(ctx, changeSpec{
		command: "dead retry",
		help: "Make dead events pending again: attempts 0, available now, no longer blocking their key;\n" +
			"last_error is kept. A retried event is again the oldest pending event of its key, so it\n" +
			"is published before the key's later pending events. Without --yes, only shows what\n" +
			"would change. Re-running after an interruption continues where it stopped.",
		verb: "retry", past: "retried", statuses: deadStatus, withError: true,
		batch: func(op store.Operator) batchFunc { return op.RetryDead },
	}, args, stdout, stderr)
}

func deadDiscardCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return changeCmd(ctx, changeSpec{
		command: "dead discard",
		help: "Mark dead events discarded: they stay in the table (with their audit trail) but leave\n" +
			"`dead list` and stop blocking their key, so later events of the key go on. Without\n" +
			"--yes, only shows what would change.",
		verb: "discard", past: "discarded", statuses: deadStatus, withError: true,
		batch: func(op store.Operator) batchFunc { return op.DiscardDead },
	}, args, stdout, stderr)
}

// changeSpec describes one batch-changing command.
type changeSpec struct {
	command   string // "dead retry"
	help      string
	verb      string // "retry"
	past      string // "retried"
	statuses  []conveyor.Status
	withError bool
	// needFilter refuses to run on everything without an explicit filter.
	needFilter bool
	batch      func(store.Operator) batchFunc
}

// changeResult is the JSON output of a change command.
type changeResult struct {
	Action      string      `json:"action"`
	DryRun      bool        `json:"dry_run"`
	Matched     int64       `json:"matched"`
	Changed     int         `json:"changed"`
	IDs         []string    `json:"ids,omitempty"`
	LastID      string      `json:"last_id,omitempty"`
	Interrupted bool        `json:"interrupted"`
	Events      []eventJSON `json:"events,omitempty"`
}

func changeCmd(ctx context.Context, spec changeSpec, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(spec.command, spec.help, stderr)
	files := configFlag(fs)
	ff := addFilterFlags(fs, spec.withError)
	yes := fs.Bool("yes", false, "apply the change; without it, show what would change (dry run)")
	actor := fs.String("actor", defaultActor(), "who acts, written to the audit trail")
	reason := fs.String("reason", "", "why, written to the audit trail")
	limit := fs.Int("limit", 0, "change at most this many events (default: every match)")
	batchSize := fs.Int("batch-size", store.DefaultChangeBatch, "events per transaction")
	afterID := fs.String("after-id", "", "only events after this id (resume an interrupted run)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	f, err := ff.filter()
	if err != nil {
		return usageError(fs, "%v", err)
	}
	if *limit < 0 {
		return usageError(fs, "--limit must not be negative, got %d", *limit)
	}
	if *batchSize < 1 || *batchSize > store.MaxBatch {
		return usageError(fs, "--batch-size must be between 1 and %d, got %d", store.MaxBatch, *batchSize)
	}
	if strings.TrimSpace(*actor) == "" {
		return usageError(fs, "--actor must not be empty: the audit trail records who acted")
	}
	after := uuid.Nil
	if *afterID != "" {
		if after, err = parseID("after-id", *afterID); err != nil {
			return usageError(fs, "%v", err)
		}
	}
	if spec.needFilter && f.String() == "(all)" && after == uuid.Nil {
		return usageError(fs, "select the events: --id, --type, --key, --since or --until (--type '*' selects every one)")
	}
	op, c, closeStore, err := openOperator(ctx, *files)
	if err != nil {
		return err
	}
	defer closeStore()
	lp := &store.ListEventsParams{Filter: f, Statuses: spec.statuses, AfterID: after}
	cnt, err := op.CountEvents(ctx, lp)
	if err != nil {
		return scrubbed(c, err)
	}
	matched := cnt.Count
	if *limit > 0 {
		matched = min(matched, int64(*limit))
	}
	res := changeResult{Action: spec.verb, DryRun: !*yes, Matched: matched}
	if !*yes {
		lp.Limit = 20
		if *asJSON {
			lp.Limit = 100
		}
		if *limit > 0 {
			lp.Limit = min(lp.Limit, *limit)
		}
		rows, err := op.ListEvents(ctx, lp)
		if err != nil {
			return scrubbed(c, err)
		}
		if *asJSON {
			for _, r := range rows {
				res.Events = append(res.Events, toJSON(r, false))
			}
			return writeJSON(stdout, res)
		}
		if matched == 0 {
			fmt.Fprintf(stdout, "%s: no events match %s\n", spec.command, f)
			return nil
		}
		fmt.Fprintf(stdout, "%s: dry run, nothing changed. %s would be %s:\n\n", spec.command, plural(matched, "event"), spec.past)
		printEvents(stdout, rows[:min(len(rows), int(matched))])
		if matched > int64(len(rows)) {
			fmt.Fprintf(stdout, "… and %d more\n", matched-int64(len(rows)))
		}
		fmt.Fprintf(stdout, "\nRun again with --yes to %s them.\n", spec.verb)
		return nil
	}
	prog := newProgress(stderr, spec.verb, matched)
	run, err := runChange(ctx, spec.batch(op), store.ChangeParams{
		Filter: f, AfterID: after, ThroughID: cnt.LastID, Limit: *batchSize, Actor: *actor,
		Detail: auditDetail("conveyor "+spec.command, f, *reason),
	}, *limit, prog)
	prog.finish()
	if run != nil {
		res.Changed, res.Interrupted = len(run.Changed), run.Interrupted
		if run.LastID != uuid.Nil {
			res.LastID = run.LastID.String()
		}
		if len(run.Changed) <= 1000 {
			for _, id := range run.Changed {
				res.IDs = append(res.IDs, id.String())
			}
		}
	}
	if err != nil {
		if res.Changed > 0 {
			fmt.Fprintf(stderr, "%s: %s %s before the error; run the command again to continue\n", spec.command, plural(int64(res.Changed), "event"), spec.past)
		}
		return scrubbed(c, err)
	}
	if *asJSON {
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
	} else if cnt.Count == 0 {
		fmt.Fprintf(stdout, "%s: no events match %s\n", spec.command, f)
	} else {
		fmt.Fprintf(stdout, "%s: %s %s (audit actor %s)\n", spec.command, plural(int64(res.Changed), "event"), spec.past, *actor)
	}
	if res.Interrupted {
		fmt.Fprintf(stderr, "%s: interrupted after %d of %d events; every finished batch is complete.\n", spec.command, res.Changed, matched)
		if spec.verb == "replay" && res.LastID != "" {
			fmt.Fprintf(stderr, "Resume with the same flags plus --after-id %s\n", res.LastID)
		} else {
			fmt.Fprintf(stderr, "Run the same command again to continue: events already %s no longer match.\n", spec.past)
		}
		return errInterrupted
	}
	return nil
}
