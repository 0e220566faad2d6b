package telemetry_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/telemetry"
)

func TestLoggerScrubsSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "debug", "json", []string{"s3cr3t-pw", "ab"})
	log.Info("label: connect nats://u:s3cr3t-pw@h failed", "err", errors.New("auth s3cr3t-pw rejected"), "url", "postgres://u:s3cr3t-pw@db/x")
	out := buf.String()
	require.NotContains(t, out, "s3cr3t-pw")
	require.Contains(t, out, "REDACTED")
	require.Contains(t, out, `"level":"INFO"`)
	require.Contains(t, out, "ab", "short strings are not treated as secrets")
}

func TestTextFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	telemetry.NewLogger(&buf, "warn", "text", nil).Info("hidden")
	telemetry.NewLogger(&buf, "warn", "text", nil).Warn("shown", "k", "v")
	require.NotContains(t, buf.String(), "hidden")
	require.Contains(t, buf.String(), "level=WARN msg=shown k=v")
}
