package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/config"
	_ "github.com/conveyorhq/conveyor/sink/all"
	"github.com/conveyorhq/conveyor/sink/natsjs"
)

const minimal = `
database:
  url: postgres://conveyor:${CONVEYOR_CFG_TEST_PW}@db:5432/shop
sinks:
  main:
    type: nats
    url: ${CONVEYOR_CFG_TEST_NATS:-nats://127.0.0.1:4222}
    user: relay
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
	require.Equal(t, "nats://127.0.0.1:4222", nats(c).URL)
	require.Equal(t, 500, c.Relay.BatchSize)
	require.Equal(t, 30*time.Second, c.Relay.Lease.D())
	require.Equal(t, "route-0", c.Routes[0].Name)
	require.Equal(t, "*", c.Routes[0].EventType)
	require.Equal(t, 10, c.Routes[0].Retry.MaxAttempts)
	require.True(t, *c.Database.Listen)
	require.False(t, nats(c).CreateStream)
}

func TestRedaction(t *testing.T) {
	t.Setenv("CONVEYOR_CFG_TEST_PW", "db-secret-123")
	c, err := config.Parse([]byte(minimal))
	require.NoError(t, err)
	r := c.Redacted()
	require.Equal(t, "postgres://conveyor:REDACTED@db:5432/shop", r.Database.URL)
	require.Equal(t, "REDACTED", r.Sinks["main"].Config.(*natsjs.SinkConfig).Password)
	require.Equal(t, "hunter2-secret", nats(c).Password, "the original is untouched")
	require.ElementsMatch(t, []string{"db-secret-123", "hunter2-secret"}, c.Secrets())
	require.Equal(t, "host=x password=REDACTED user=y", config.Redact("host=x password=abc user=y"))
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("from-file\n"), 0o600))
	c, err := config.Parse([]byte(`
sinks:
  main: {type: nats, user: relay, password_file: ` + pw + `}
routes:
  - {sink: main, destination: x}
`))
	require.NoError(t, err)
	require.Equal(t, "from-file", nats(c).Password)

	_, err = config.Parse([]byte(`
sinks:
  main: {type: nats, user: relay, password: a, password_file: ` + pw + `}
routes:
  - {sink: main, destination: x}
`))
	require.ErrorContains(t, err, "sinks.main.password and password_file are both set")
}

func TestValidationNamesFields(t *testing.T) {
	_, err := config.Parse([]byte(`
relay: {batch_size: 0, per_key: 5000, workers: 100, no_route: maybe, claim_cooldown: 2s}
retry: {max_attempts: 0}
log: {level: loud}
sinks:
  main: {type: nats, url: "http://x", stream: "a.b"}
routes:
  - {sink: main}
`))
	require.Error(t, err)
	for _, want := range []string{"relay.per_key", "relay.workers", "relay.no_route", "log.level",
		"relay.claim_cooldown: must be between 0s and 1s, got 2s", "sinks.main.", "routes[0].destination"} {
		require.ErrorContains(t, err, want)
	}
}

func TestDatabaseURLSchemes(t *testing.T) {
	const rest = "\nsinks: {main: {type: nats}}\nroutes: [{sink: main, destination: x}]\n"
	for _, u := range []string{"postgres://u:p@h/db", "postgresql://u:p@h/db", "mysql://u:p@h:3306/db?tls=true",
		"mariadb://u:p@h/db", "sqlite:///db.sqlite3"} {
		c, err := config.Parse([]byte("database: {url: \"" + u + "\"}" + rest))
		require.NoError(t, err, u)
		require.Equal(t, u, c.Database.URL)
	}
	_, err := config.Parse([]byte("database: {url: \"oracle://u:hunter2-secret@h/db\"}" + rest))
	require.ErrorContains(t, err, "database.url: unsupported scheme")
	require.ErrorContains(t, err, "mysql://...")
	require.NotContains(t, err.Error(), "hunter2-secret")
	// The password of a mysql URL is redacted like any other.
	c, err := config.Parse([]byte("database: {url: \"mysql://u:hunter2-secret@h/db\"}" + rest))
	require.NoError(t, err)
	require.Equal(t, "mysql://u:REDACTED@h/db", c.Redacted().Database.URL)
	require.Contains(t, c.Secrets(), "hunter2-secret")
}

// claim_cooldown is 5ms when unset and can be turned off with 0s.
func TestClaimCooldown(t *testing.T) {
	t.Setenv("CONVEYOR_CFG_TEST_PW", "pw")
	c, err := config.Parse([]byte(minimal))
	require.NoError(t, err)
	require.Equal(t, 5*time.Millisecond, c.Relay.ClaimCooldown.D())
	c, err = config.Parse([]byte(minimal + "relay: {claim_cooldown: 0s}\n"))
	require.NoError(t, err)
	require.Equal(t, time.Duration(0), c.Relay.ClaimCooldown.D())
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
	c, err := config.Default()
	require.NoError(t, err)
	require.Equal(t, "sqlite:///db.sqlite3", c.Database.URL)
	n := c.Sinks["default"].Config.(*natsjs.SinkConfig)
	require.True(t, n.Embedded.Enabled)
	require.True(t, n.CreateStream)
	require.Equal(t, "CONVEYOR", n.Stream)
}

func nats(c *config.Config) *natsjs.SinkConfig { return c.Sinks["main"].Config.(*natsjs.SinkConfig) }
