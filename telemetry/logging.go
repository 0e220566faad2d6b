// Package telemetry is the relay's logging, Prometheus metrics, OpenTelemetry tracing and
// health endpoints.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
)

// NewLogger returns a slog logger writing JSON, or text when format is "text" or when it
// is "auto" and w is a terminal. Every string attribute and message is scrubbed of the
// given secrets, so a password that leaks into an error never reaches the log (G8).
func NewLogger(w io.Writer, level, format string, secrets []string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: scrubber(secrets)}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(&scrubHandler{Handler: h, secrets: nonEmpty(secrets)})
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func nonEmpty(s []string) []string {
	var out []string
	for _, v := range s {
		if len(v) >= 3 { // shorter strings would scrub ordinary words
			out = append(out, v)
		}
	}
	return out
}

// Scrub replaces every secret in s with REDACTED.
func Scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}

func scrubber(secrets []string) func([]string, slog.Attr) slog.Attr {
	secrets = nonEmpty(secrets)
	return func(_ []string, a slog.Attr) slog.Attr {
		if len(secrets) == 0 {
			return a
		}
		switch a.Value.Kind() {
		case slog.KindString:
			a.Value = slog.StringValue(Scrub(a.Value.String(), secrets))
		case slog.KindAny:
			if err, ok := a.Value.Any().(error); ok {
				a.Value = slog.StringValue(Scrub(err.Error(), secrets))
			} else if s, ok := a.Value.Any().(interface{ String() string }); ok {
				a.Value = slog.StringValue(Scrub(s.String(), secrets))
			}
		}
		return a
	}
}

// scrubHandler also scrubs the message text.
type scrubHandler struct {
	slog.Handler
	secrets []string
}

func (h *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	if len(h.secrets) > 0 {
		r.Message = Scrub(r.Message, h.secrets)
	}
	return h.Handler.Handle(ctx, r)
}

func (h *scrubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &scrubHandler{Handler: h.Handler.WithAttrs(as), secrets: h.secrets}
}

func (h *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{Handler: h.Handler.WithGroup(name), secrets: h.secrets}
}
