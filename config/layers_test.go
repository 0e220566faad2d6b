package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/config"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

const base = `
database:
  url: postgres://conveyor:base-pw@db:5432/shop
relay:
  batch_size: 100
  lease: 10s
sinks:
  main:
    type: nats
    url: nats://nats-dev:4222
    subjects: [events.>, audit.>]
routes:
  - {name: all, sink: main, destination: "events.{event_type}"}
`

const production = `
relay:
  batch_size: 1000
sinks:
  main:
    url: nats://nats-prod:4222
    subjects: [events.>]
retention:
  published: 7d
`

func TestLoadFilesDeepMerges(t *testing.T) {
	t.Parallel()
	c, err := config.LoadFiles([]string{write(t, "base.yaml", base), write(t, "prod.yaml", production)}, []string{})
	require.NoError(t, err)
	require.Equal(t, 1000, c.Relay.BatchSize, "the later file wins")
	require.Equal(t, 10*time.Second, c.Relay.Lease.D(), "keys the later file does not name are kept")
	require.Equal(t, "nats://nats-prod:4222", nats(c).URL)
	require.Equal(t, []string{"events.>"}, nats(c).Subjects, "lists replace, they do not append")
	require.Equal(t, "postgres://conveyor:base-pw@db:5432/shop", c.Database.URL)
	require.Equal(t, 7*24*time.Hour, c.Retention.Published.D())
	require.Equal(t, 5*time.Minute, c.Retention.Interval.D())
	require.True(t, c.Retention.Enabled())
}

func TestLoadFilesEnvOverrides(t *testing.T) {
	t.Parallel()
	env := []string{
		"CONVEYOR_SINKS__MAIN__URL=nats://from-env:4222",
		"CONVEYOR_RELAY__BATCH_SIZE=42",
		"CONVEYOR_ROUTES__0__DESTINATION=x.{event_type}",
		"CONVEYOR_DATABASE__URL=postgres://u:${DB_PW}@h/db",
		"CONVEYOR_RETENTION__DEAD=30d",
		"DB_PW=env-secret",
		"CONVEYOR_TEST_PG_DSN=ignored: no double underscore",
	}
	c, err := config.LoadFiles([]string{write(t, "base.yaml", base), write(t, "prod.yaml", production)}, env)
	require.NoError(t, err)
	require.Equal(t, "nats://from-env:4222", nats(c).URL)
	require.Equal(t, 42, c.Relay.BatchSize)
	require.Equal(t, "x.{event_type}", c.Routes[0].Destination)
	require.Equal(t, "postgres://u:env-secret@h/db", c.Database.URL, "overrides are interpolated too")
	require.Equal(t, 30*24*time.Hour, c.Retention.Dead.D())
}

func TestLoadFilesNoFilesIsTheEmbeddedDefault(t *testing.T) {
	t.Parallel()
	c, err := config.LoadFiles(nil, []string{"CONVEYOR_DATABASE__URL=sqlite:///other.sqlite3"})
	require.NoError(t, err)
	require.Equal(t, "sqlite:///other.sqlite3", c.Database.URL)
	require.Contains(t, c.Sinks, "default")
}

func TestUnknownKeysSayWhereAndSuggest(t *testing.T) {
	t.Parallel()
	f := write(t, "prod.yaml", "relay:\n  batchsize: 3\nsinks:\n  main:\n    urll: x\n")
	_, err := config.LoadFiles([]string{write(t, "base.yaml", base), f}, []string{"CONVEYOR_RETENTION__PUBLISHD=1d"})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, `relay.batchsize: unknown key (did you mean "batch_size"?) (`+f+`:2)`)
	require.Contains(t, msg, `sinks.main.urll: unknown key (did you mean "url"?) (`+f+`:5)`)
	require.Contains(t, msg, `retention.publishd: unknown key (did you mean "published"?) (from $CONVEYOR_RETENTION__PUBLISHD)`)

	_, err = config.Parse([]byte("databse:\n  url: x\n"))
	require.ErrorContains(t, err, `databse: unknown key (did you mean "database"?) (line 1)`)
	_, err = config.Parse([]byte("relay:\n  zzzzzzzz: 1\n"))
	require.ErrorContains(t, err, "relay.zzzzzzzz: unknown key")
	require.NotContains(t, err.Error(), "did you mean")
}

func TestTypeErrorsNameTheFieldNotTheValue(t *testing.T) {
	t.Parallel()
	_, err := config.LoadFiles([]string{write(t, "c.yaml", base+"log: {level: [a]}\n")},
		[]string{"CONVEYOR_RELAY__WORKERS=s3cret-value"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "relay.workers: expected a whole number (from $CONVEYOR_RELAY__WORKERS)")
	require.Contains(t, err.Error(), "log.level: expected a single value")
	require.NotContains(t, err.Error(), "s3cret-value")
	_, err = config.LoadFiles([]string{write(t, "c.yaml", base+"retention: {published: soon}\n")}, []string{})
	require.ErrorContains(t, err, `retention.published: invalid duration "soon"`)
}

func TestEnvOverrideErrors(t *testing.T) {
	t.Parallel()
	f := write(t, "base.yaml", base)
	_, err := config.LoadFiles([]string{f}, []string{"CONVEYOR_ROUTES__NAME=x"})
	require.ErrorContains(t, err, "CONVEYOR_ROUTES__NAME: routes is a list of 1 entries; address an entry by its index")
	_, err = config.LoadFiles([]string{f}, []string{"CONVEYOR_RELAY__BATCH_SIZE__X=1"})
	require.ErrorContains(t, err, "relay.batch_size is a single value")
	_, err = config.LoadFiles([]string{f}, []string{"CONVEYOR_RELAY____X=1"})
	require.ErrorContains(t, err, "empty name")
}

func TestRetentionValidation(t *testing.T) {
	t.Parallel()
	_, err := config.LoadFiles([]string{write(t, "c.yaml", base+"retention: {published: -1h, interval: 10ms, batch_size: 0}\n")}, []string{"CONVEYOR_RETENTION__BATCH_SIZE=99999"})
	require.Error(t, err)
	for _, want := range []string{"retention.published: must not be negative", "retention.interval: must be at least 1s", "retention.batch_size: must be between 1 and 10000"} {
		require.ErrorContains(t, err, want)
	}
	c, err := config.LoadFiles([]string{write(t, "c.yaml", base)}, []string{})
	require.NoError(t, err)
	require.False(t, c.Retention.Enabled(), "retention is off by default")
}

func TestSizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"512": 512, "64KiB": 64 << 10, "1MiB": 1 << 20, "1.5 GiB": 3 << 29, "10MB": 10e6, "2kb": 2000} {
		got, err := config.ParseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "MiB", "1XB", "-1", "1e400GiB"} {
		_, err := config.ParseSize(bad)
		require.Error(t, err, bad)
	}
	var s struct {
		Max config.Size `yaml:"max"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("max: 4MiB"), &s))
	require.Equal(t, int64(4<<20), s.Max.Bytes())
	out, err := yaml.Marshal(s)
	require.NoError(t, err)
	require.Equal(t, "max: 4MiB\n", string(out))
}

func TestGenericSecretFile(t *testing.T) {
	t.Parallel()
	natsURL := write(t, "nats", "nats://x:4222\n")
	noURL := "sinks:\n  main: {type: nats}\nroutes:\n  - {sink: main, destination: x}\n"
	c, err := config.LoadFiles([]string{write(t, "c.yaml", noURL)}, []string{"CONVEYOR_SINKS__MAIN__URL_FILE=" + natsURL})
	require.NoError(t, err)
	require.Equal(t, "nats://x:4222", nats(c).URL, "FIELD_file works for any string field")
	_, err = config.LoadFiles([]string{write(t, "c.yaml", base)}, []string{"CONVEYOR_SINKS__MAIN__URL_FILE=" + natsURL})
	require.ErrorContains(t, err, "sinks.main.url: url and url_file are both set; use one")
	_, err = config.LoadFiles([]string{write(t, "c.yaml", noURL)}, []string{"CONVEYOR_SINKS__MAIN__URL_FILE=/nonexistent/x"})
	require.ErrorContains(t, err, "sinks.main.url_file: open /nonexistent/x")
}
