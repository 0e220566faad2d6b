package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/config"
)

const minimal = `
database:
  url: postgres://conveyor:${CONVEYOR_CFG_TEST_PW}@db:5432/shop
sinks:
  main:
    type: nats
    url: ${CONVEYOR_CFG_TEST_NATS:-nats://127.0.0.1:4222}
    password: hunter2-secret
routes:
  - sink: main
    destination: "events.{event_type}"
`

func TestParseInterpolatesAndDefaults(t *testing.T) {
	t.Setenv("CONVEYOR_CFG_TEST_PW", "p@ss-from-env")
	c, err := config.Parse([]byte(minimal))
	require.NoError(t, err)
	require.Equal(t, "postgres://conveyor:p@ss-from-env@db:5432/shop", c.Database.URL)
	require.Equal(t, "nats://127.0.0.1:4222", c.Sinks["main"].NATS.URL)
	require.Equal(t, 500, c.Relay.BatchSize)
	require.Equal(t, 30*time.Second, c.Relay.Lease.D())
	require.Equal(t, "route-0", c.Routes[0].Name)
	require.Equal(t, "*", c.Routes[0].EventType)
	require.Equal(t, 10, c.Routes[0].Retry.MaxAttempts)
	require.True(t, *c.Database.Listen)
	require.False(t, *c.Sinks["main"].NATS.Stream.Create)
}

func TestRedaction(t *testing.T) {
	t.Setenv("CONVEYOR_CFG_TEST_PW", "db-secret-123")
	c, err := config.Parse([]byte(minimal))
	require.NoError(t, err)
	r := c.Redacted()
	require.Equal(t, "postgres://conveyor:REDACTED@db:5432/shop", r.Database.URL)
	require.Equal(t, "REDACTED", r.Sinks["main"].NATS.Password)
	require.Equal(t, "hunter2-secret", c.Sinks["main"].NATS.Password, "the original is untouched")
	require.ElementsMatch(t, []string{"db-secret-123", "hunter2-secret"}, c.Secrets())
	require.Equal(t, "host=x password=REDACTED user=y", config.Redact("host=x password=abc user=y"))
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("from-file\n"), 0o600))
	c, err := config.Parse([]byte(`
sinks:
  main: {type: nats, password_file: ` + pw + `}
routes:
  - {sink: main, destination: x}
`))
	require.NoError(t, err)
	require.Equal(t, "from-file", c.Sinks["main"].NATS.Password)

	_, err = config.Parse([]byte(`
sinks:
  main: {type: nats, password: a, password_file: ` + pw + `}
routes:
  - {sink: main, destination: x}
`))
	require.ErrorContains(t, err, "sinks.main.password and sinks.main.password_file are both set")
}

func TestValidationNamesFields(t *testing.T) {
	_, err := config.Parse([]byte(`
relay: {batch_size: 0, per_key: 5000, workers: 100, no_route: maybe}
retry: {max_attempts: 0}
log: {level: loud}
sinks:
  main: {type: nats, url: "http://x", stream: {name: "a.b"}}
routes:
  - {sink: main}
`))
	require.Error(t, err)
	for _, want := range []string{"relay.per_key", "relay.workers", "relay.no_route", "log.level",
		"sinks.main.url", "sinks.main.stream.name", "routes[0].destination"} {
		require.ErrorContains(t, err, want)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"250ms": 250 * time.Millisecond, "7d": 7 * 24 * time.Hour, "1.5h": 90 * time.Minute} {
		got, err := config.ParseDuration(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := config.ParseDuration("30")
	require.ErrorContains(t, err, "with a unit")
}

func TestDefaultIsEmbedded(t *testing.T) {
	c := config.Default()
	require.NoError(t, c.Validate())
	require.Equal(t, "sqlite:///db.sqlite3", c.Database.URL)
	require.True(t, c.Sinks["default"].NATS.Embedded.Enabled)
	require.True(t, *c.Sinks["default"].NATS.Stream.Create)
}
