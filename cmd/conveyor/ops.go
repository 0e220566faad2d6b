package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/store"
)

// Shared plumbing of the operator commands (dead, replay, purge): flags, filters,
// batches with progress, interruption.

// errInterrupted ends a command stopped by SIGINT/SIGTERM between two batches. Main
// exits 130 for it.
var errInterrupted = errors.New("interrupted")

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// configFlag adds the repeatable --config flag.
func configFlag(fs *flag.FlagSet) *stringList {
	var files stringList
	fs.Var(&files, "config", "YAML config file; repeat to layer files, later ones win (default: the embedded setup).\nCONVEYOR_SECTION__KEY environment variables override any file")
	return &files
}

// usageError prints a message about bad arguments and ends with exit code 2.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\nRun `%s --help` for the flags.\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return errUsage
}

// filterFlags are the event filters shared by dead list/retry/discard and replay.
type filterFlags struct {
	ids          stringList
	typ, key     *string
	since, until *string
	errSubstr    *string
}

func addFilterFlags(fs *flag.FlagSet, withError bool) *filterFlags {
	f := &filterFlags{}
	fs.Var(&f.ids, "id", "event id (repeatable)")
	f.typ = fs.String("type", "", "event type glob: * matches any run of characters, ? one character (e.g. 'order.*')")
	f.key = fs.String("key", "", "exact ordering key")
	f.since = fs.String("since", "", "events created at or after this time: RFC 3339 (2026-11-27T10:00:00Z), a date (2026-11-27, UTC)\nor a duration ago (90m, 2h, 7d)")
	f.until = fs.String("until", "", "events created before this time (same forms as --since)")
	if withError {
		f.errSubstr = fs.String("error", "", "substring of last_error, case-insensitive")
	} else {
		empty := ""
		f.errSubstr = &empty
	}
	return f
}

// parseTimeFlag reads an absolute time or a duration ago.
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	if d, err := config.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: use RFC 3339 (2026-11-27T10:00:00Z), a date (2026-11-27) or a duration ago (2h, 7d)", name, v)
}

func parseID(flagName, v string) (uuid.UUID, error) {
	id, err := uuid.Parse(strings.TrimSpace(v))
	if err != nil {
		return uuid.Nil, fmt.Errorf("--%s %q is not an event id (a UUID like 0193a5b4-7c1e-7d2a-9f00-3b5c8e1d2a4f)", flagName, v)
	}
	return id, nil
}

func (f *filterFlags) filter() (store.Filter, error) {
	var out store.Filter
	for _, v := range f.ids {
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			id, err := parseID("id", part)
			if err != nil {
				return out, err
			}
			out.IDs = append(out.IDs, id)
		}
	}
	now := time.Now()
	var err error
	if out.Since, err = parseTimeFlag("since", *f.since, now); err != nil {
		return out, err
	}
	if out.Until, err = parseTimeFlag("until", *f.until, now); err != nil {
		return out, err
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && !out.Since.Before(out.Until) {
		return out, fmt.Errorf("--since %s is not before --until %s", out.Since.Format(time.RFC3339), out.Until.Format(time.RFC3339))
	}
	out.Type, out.Key, out.Error = *f.typ, *f.key, *f.errSubstr
	return out, nil
}

// defaultActor is $USER@hostname, the audit trail's "who" for CLI actions.
func defaultActor() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s", cmpOr(name, "unknown"), cmpOr(host, "localhost"))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// openOperator loads the config and opens the store as a store.Operator, after checking
// the schema.
func openOperator(ctx context.Context, files []string) (store.Operator, *config.Config, func(), error) {
	c, err := loadConfig(files)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := openStore(ctx, c, newLogger(c, io.Discard))
	if err != nil {
		return nil, c, nil, scrubbed(c, err)
	}
	if err := st.Check(ctx); err != nil {
		_ = st.Close()
		return nil, c, nil, scrubbed(c, err)
	}
	op, ok := st.(store.Operator)
	if !ok {
		_ = st.Close()
		return nil, c, nil, fmt.Errorf("the %T store does not support operator commands", st)
	}
	return op, c, func() { _ = st.Close() }, nil
}

// isTerminal reports whether w is a character device (a terminal), without a
// dependency: progress bars only go to terminals.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress reports a long operation on stderr: a bar on a terminal, plain lines at most
// once a second otherwise ("replay: 1500/4200 events").
type progress struct {
	w     io.Writer
	label string
	total int64
	tty   bool
	done  int64
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, label string, total int64) *progress {
	return &progress{w: w, label: label, total: total, tty: isTerminal(w)}
}

func (p *progress) add(n int64) {
	if n == 0 {
		return // a batch that changed nothing (a purge window of young or pending rows)
	}
	p.done += n
	p.print(false)
}

func (p *progress) print(final bool) {
	if p.total == 0 && p.done == 0 {
		return
	}
	total := max(p.total, p.done)
	if p.tty {
		const width = 30
		filled := int(float64(width) * float64(p.done) / float64(max(total, 1)))
		fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d events", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, total)
		if final {
			fmt.Fprintln(p.w)
		}
		p.shown = true
		return
	}
	if final || !p.shown || time.Since(p.last) >= time.Second {
		fmt.Fprintf(p.w, "%s: %d/%d events\n", p.label, p.done, total)
		p.last, p.shown = time.Now(), true
	}
}

func (p *progress) finish() {
	if p.shown || p.tty {
		p.print(true)
	}
}

// batchFunc applies one batch of a change.
type batchFunc func(ctx context.Context, p *store.ChangeParams) (*store.ChangeResult, error)

// changeRun is the outcome of runChange.
type changeRun struct {
	Changed     []uuid.UUID
	LastID      uuid.UUID
	Interrupted bool
}

// runChange applies batches until done, the total limit is reached or ctx ends. A batch
// that started finishes (its transaction is short); the loop stops before the next one.
func runChange(ctx context.Context, f batchFunc, p store.ChangeParams, limit int, prog *progress) (*changeRun, error) {
	out := &changeRun{LastID: p.AfterID}
	batch := store.ClampLimit(p.Limit, store.DefaultChangeBatch)
	for {
		if ctx.Err() != nil {
			out.Interrupted = true
			return out, nil
		}
		p.Limit = batch
		if limit > 0 {
			p.Limit = min(batch, limit-len(out.Changed))
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		res, err := f(bctx, &p)
		cancel()
		if err != nil {
			return out, err
		}
		out.Changed = append(out.Changed, res.IDs...)
		if res.LastID != uuid.Nil {
			out.LastID = res.LastID
		}
		prog.add(int64(len(res.IDs)))
		if !res.More || (limit > 0 && len(out.Changed) >= limit) {
			return out, nil
		}
		p.AfterID = res.LastID
	}
}

// eventJSON is the JSON shape of an event in list, show and dry-run output.
type eventJSON struct {
	ID          string            `json:"id"`
	EventType   string            `json:"event_type"`
	Source      string            `json:"source"`
	Key         string            `json:"key,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	Status      string            `json:"status"`
	Attempts    int               `json:"attempts"`
	LastError   string            `json:"last_error,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	AvailableAt time.Time         `json:"available_at"`
	PublishedAt *time.Time        `json:"published_at,omitempty"`
	DiscardedAt *time.Time        `json:"discarded_at,omitempty"`
	LockedBy    string            `json:"locked_by,omitempty"`
	LockedUntil *time.Time        `json:"locked_until,omitempty"`
	LeaseToken  int64             `json:"lease_token"`
	BlocksKey   bool              `json:"blocks_key"`
	Headers     map[string]string `json:"headers,omitempty"`
	Data        json.RawMessage   `json:"data,omitempty"`
	// RawData holds data that is not valid JSON, as text.
	RawData string `json:"raw_data,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toJSON(r *store.EventRow, withData bool) eventJSON {
	e := eventJSON{ID: r.ID.String(), EventType: r.Type, Source: r.Source, Key: r.Key, Subject: r.Subject,
		Status: r.Status.String(), Attempts: r.Attempts, LastError: r.LastError, CreatedAt: r.CreatedAt,
		AvailableAt: r.AvailableAt, PublishedAt: optTime(r.PublishedAt), DiscardedAt: optTime(r.DiscardedAt),
		LockedBy: r.LockedBy, LockedUntil: optTime(r.LockedUntil), LeaseToken: r.LeaseToken, BlocksKey: r.BlocksKey,
		Headers: r.Headers}
	if withData {
		if json.Valid([]byte(r.RawData)) {
			e.Data = json.RawMessage(r.RawData)
		} else {
			e.RawData = r.RawData
		}
	}
	return e
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shorten cuts s to n runes on one line, for tables.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// printEvents prints a table of events.
func printEvents(w io.Writer, rows []*store.EventRow) {
	fmt.Fprintf(w, "%-36s  %-20s  %-24s  %-12s  %8s  %s\n", "ID", "CREATED (UTC)", "TYPE", "KEY", "ATTEMPTS", "LAST ERROR")
	for _, r := range rows {
		status := ""
		if !r.DiscardedAt.IsZero() {
			status = "[discarded] "
		} else if r.BlocksKey {
			status = "[blocks key] "
		}
		fmt.Fprintf(w, "%-36s  %-20s  %-24s  %-12s  %8d  %s\n", r.ID, r.CreatedAt.UTC().Format("2006-01-02 15:04:05"),
			shorten(r.Type, 24), shorten(r.Key, 12), r.Attempts, status+shorten(r.LastError, 60))
	}
}

// auditDetail is the conveyor_audit.detail of a CLI action: the command, its filter and
// the reason.
func auditDetail(command string, f store.Filter, reason string) string {
	d := command + " " + f.String()
	if reason != "" {
		d += "; reason: " + reason
	}
	return d
}

// plural formats a count with its noun: "1 event", "2 events".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
