package redisstream_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink/redisstream"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestConfigZeroValueIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, redisstream.Config{}.Validate())
}

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  redisstream.Config
		want string
	}{
		{redisstream.Config{URL: "http://u:hunter2@host:6379"}, "url: "},
		{redisstream.Config{URL: "redis://u:hunter2@host:6379/notanumber"}, "url: "},
		{redisstream.Config{DB: -1}, "db: "},
		{redisstream.Config{TLS: redisstream.TLSConfig{KeyFile: "k.pem"}}, "tls.cert_file: "},
		{redisstream.Config{MaxLen: -1}, "maxlen: "},
		{redisstream.Config{MaxLenExact: true}, "maxlen_exact: "},
		{redisstream.Config{DedupWindow: -time.Second}, "dedup_window: "},
		{redisstream.Config{DedupWindow: time.Microsecond}, "dedup_window: "},
		{redisstream.Config{MaxMessageBytes: -1}, "max_message_bytes: "},
		{redisstream.Config{Streams: []string{""}}, "streams: "},
		{redisstream.Config{PoolSize: -1}, "pool_size: "},
		{redisstream.Config{DialTimeout: -1}, "dial_timeout: "},
		{redisstream.Config{CommandTimeout: -1}, "command_timeout: "},
	} {
		err := tc.cfg.Validate()
		require.ErrorContains(t, err, "redisstream: "+tc.want, "%+v", tc.cfg)
		require.NotContains(t, err.Error(), "hunter2")
	}
}

// decode decodes a sink block the way the config loader does: strictly.
func decode(t *testing.T, src string) (*redisstream.SinkConfig, error) {
	t.Helper()
	c, err := sinktest.DecodeConfig(t, "redis", src)
	sc, _ := c.(*redisstream.SinkConfig)
	return sc, err
}

func TestSinkConfigFromYAML(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("file-s3cret\n"), 0o600))
	c, err := decode(t, `
url: rediss://relay:url-s3cret@redis.internal:6380/2
username: relay
password_file: `+pwFile+`
db: 4
tls: {ca_file: "", server_name: redis.internal}
client_name: relay-eu
maxlen: 100000
maxlen_exact: false
dedup_window: 2m
dedup_prefix: "cv:dd:"
max_message_bytes: 1048576
streams: [orders, invoices]
pool_size: 20
dial_timeout: 3s
command_timeout: 4s
`)
	require.NoError(t, err)
	require.Equal(t, "file-s3cret", c.Password)
	require.Equal(t, 4, c.DB)
	require.EqualValues(t, 100000, c.MaxLen)
	require.Equal(t, 2*time.Minute, c.DedupWindow)
	require.Equal(t, 4*time.Second, c.CommandTimeout)
	require.ElementsMatch(t, []string{"file-s3cret", "url-s3cret"}, c.Secrets())

	r := c.Redacted().(*redisstream.SinkConfig)
	out, err := yaml.Marshal(r)
	require.NoError(t, err)
	require.NotContains(t, string(out), "s3cret")
	require.Contains(t, string(out), "rediss://relay:REDACTED@redis.internal:6380/2")
	require.Equal(t, "file-s3cret", c.Password, "Redacted must not modify the original")
}

func TestSinkConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := decode(t, "{}\n")
	require.NoError(t, err)
	require.Equal(t, redisstream.DefaultURL, c.URL)
	require.Equal(t, redisstream.DefaultClientName, c.ClientName)
	require.Equal(t, redisstream.DefaultDedupPrefix, c.DedupPrefix)
	require.Equal(t, redisstream.DefaultPoolSize, c.PoolSize)
	require.Equal(t, redisstream.DefaultDialTimeout, c.DialTimeout)
	require.Equal(t, redisstream.DefaultCommandTimeout, c.CommandTimeout)
	require.Zero(t, c.MaxLen)
	require.Zero(t, c.DedupWindow)
}

func TestSinkConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := decode(t, "addr: localhost:6379\n")
	require.ErrorContains(t, err, "addr", "unknown keys are refused")

	_, err = decode(t, "password: a\npassword_file: /nonexistent\n")
	require.ErrorContains(t, err, "password and password_file are both set")

	_, err = decode(t, "password_file: /nonexistent/pw\n")
	require.ErrorContains(t, err, "password_file: ")

	_, err = decode(t, "url: 'redis://:p%zz-s3cret@h:6379'\n")
	require.ErrorContains(t, err, "url: ")
	require.NotContains(t, err.Error(), "s3cret")
	require.NotContains(t, err.Error(), "redisstream: ", "errors name the field relative to the block")
}
