// Package testlog gives a test a logger whose output is shown only when the test fails,
// so tests can also search what was logged (for a leaked secret, say).
package testlog

import (
	"log/slog"
	"testing"
)

// New returns a debug-level text logger writing to the returned buffer, which is
// printed when the test fails.
func New(t testing.TB) (*slog.Logger, *Buffer) {
	t.Helper()
	buf := &Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}
