// Command conveyor is the Conveyor relay: it publishes the events a Django app records in
// its outbox table to a message broker. See `conveyor help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the relay until SIGTERM/SIGINT", runCmd},
		{"check", "validate the config, connect to the database and sinks, check the schema", checkCmd},
		{"status", "show counts by status, event type and route, the oldest pending age, leases and circuits", statusCmd},
		{"dead", "list, show, retry or discard dead events", deadCmd},
		{"replay", "publish already published events again, with their original ids", replayCmd},
		{"purge", "delete old published (and optionally dead) events in batches", purgeCmd},
		{"config", "print the effective configuration, secrets redacted", configCmd},
		{"tail", "print events from a NATS JetStream stream (for demos and debugging)", tailCmd},
		{"version", "print the version", versionCmd},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "conveyor %s: the transactional-outbox relay for Django\n\nUsage: conveyor <command> [flags]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `conveyor <command> --help` for a command's flags. With no --config, the relay uses\nthe embedded default: ./db.sqlite3 and an in-process NATS JetStream server on 127.0.0.1:4222.\n")
}

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the CLI and returns the exit code. SIGINT and SIGTERM cancel the command's
// context.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mainContext(ctx, args, stdout, stderr)
}

// mainContext is Main with the context given, so tests can interrupt a command.
func mainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, errInterrupted):
			return 130
		default:
			fmt.Fprintf(stderr, "conveyor %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "conveyor: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

var errUsage = errors.New("usage")

func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "Print the version of this binary and of Go it was built with.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(stdout, "conveyor %s (%s)\n", version, goVersion)
	return nil
}

func newFlags(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("conveyor "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: conveyor %s [flags]\n\n%s\n\nFlags:\n", name, help)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
