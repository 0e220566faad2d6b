package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Config is one sink type's configuration block, decoded strictly from YAML into the
// struct a sink package registers. Every sink package implements it on its config type.
type Config interface {
	// Defaults fills unset fields with their documented defaults.
	Defaults()
	// Validate returns an error naming the field (relative to the block) when invalid.
	Validate() error
	// Secrets lists the secret values in the block (passwords, tokens, signing keys), so
	// logs and errors can be scrubbed of them.
	Secrets() []string
	// Redacted returns a copy safe to print.
	Redacted() Config
	// Open connects the sink. It may return a sink that also implements Checker.
	Open(ctx context.Context, logger *slog.Logger) (Sink, error)
}

// BlockError rewrites an error of a sink package's own Config.Validate for the relay's
// config, where field names are relative to the sink's block: it drops the package's
// prefix (pkg + ": ") from each line, and hides secrets. A nil err stays nil.
func BlockError(err error, pkg string, secrets []string) error {
	if err == nil {
		return nil
	}
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, pkg+": ")
	}
	return RedactError(errors.New(strings.Join(lines, "\n")), secrets)
}

var (
	regMu    sync.RWMutex
	registry = map[string]func() Config{}
)

// Register makes a sink type available to the config loader. It panics on a duplicate
// type; sink packages call it from init.
func Register(typ string, newConfig func() Config) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[typ]; dup {
		panic(fmt.Sprintf("sink: type %q registered twice", typ))
	}
	registry[typ] = newConfig
}

// NewConfig returns an empty config block for a registered type.
func NewConfig(typ string) (Config, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := registry[typ]
	if !ok {
		return nil, false
	}
	return f(), true
}

// Types lists the registered sink types, sorted.
func Types() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
