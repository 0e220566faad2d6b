package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/config"
)

const telemetryBase = `
database: {url: "sqlite:///db.sqlite3"}
sinks:
  main: {type: nats}
routes:
  - {sink: main, destination: "events.{event_type}"}
`

func TestTelemetryDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(telemetryBase))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9464", c.Telemetry.Listen)
	require.True(t, c.Telemetry.ServerEnabled())
	require.Equal(t, time.Minute, c.Telemetry.ReadyCircuitOpenThreshold.D())
	require.Equal(t, 15*time.Second, c.Telemetry.BacklogInterval.D())
	require.Nil(t, c.Telemetry.Tracing.Enabled, "unset: decided by OTEL_* variables")
	require.Nil(t, c.Telemetry.OTLPMetrics.Enabled)
}

func TestTelemetrySettings(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(telemetryBase + `
telemetry:
  listen: "off"
  ready_circuit_open_threshold: 5m
  backlog_interval: 30s
  tracing: {enabled: true}
  otlp_metrics: {enabled: false}
`))
	require.NoError(t, err)
	require.False(t, c.Telemetry.ServerEnabled())
	require.Equal(t, 5*time.Minute, c.Telemetry.ReadyCircuitOpenThreshold.D())
	require.Equal(t, 30*time.Second, c.Telemetry.BacklogInterval.D())
	require.True(t, *c.Telemetry.Tracing.Enabled)
	require.False(t, *c.Telemetry.OTLPMetrics.Enabled)
}

func TestTelemetryValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{`{listen: "9464"}`, "telemetry.listen: want host:port"},
		{`{listen: "localhost:http"}`, "telemetry.listen: port must be a number"},
		{`{listen: "[::]:70000"}`, "telemetry.listen: port must be a number from 0 to 65535"},
		{`{ready_circuit_open_threshold: 10ms}`, "telemetry.ready_circuit_open_threshold: must be at least 1s"},
		{`{backlog_interval: 100ms}`, "telemetry.backlog_interval: must be at least 1s"},
		{`{tracing: {enable: true}}`, "enable"},
	} {
		_, err := config.Parse([]byte(telemetryBase + "telemetry: " + tc.yaml + "\n"))
		require.ErrorContains(t, err, tc.want, tc.yaml)
	}
	for _, ok := range []string{`{listen: ":9464"}`, `{listen: "0.0.0.0:0"}`, `{listen: "[::1]:9464"}`} {
		_, err := config.Parse([]byte(telemetryBase + "telemetry: " + ok + "\n"))
		require.NoError(t, err, ok)
	}
}
