package kafka_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink/kafka"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestConfigZeroValueIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, kafka.Config{}.Validate())
}

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  kafka.Config
		want string
	}{
		{kafka.Config{Brokers: []string{"localhost"}}, "brokers: "},
		{kafka.Config{Brokers: []string{"kafka://u:hunter2@host:9092"}}, "brokers: "},
		{kafka.Config{Compression: "brotli"}, "compression: "},
		{kafka.Config{SASL: kafka.SASLConfig{Mechanism: "GSSAPI", User: "u", Password: "p"}}, "sasl.mechanism: "},
		{kafka.Config{SASL: kafka.SASLConfig{User: "u", Password: "p"}}, "sasl.mechanism: "},
		{kafka.Config{SASL: kafka.SASLConfig{Mechanism: "PLAIN", Password: "p"}}, "sasl.user: "},
		{kafka.Config{SASL: kafka.SASLConfig{Mechanism: "scram-sha-512", User: "u"}}, "sasl.password: "},
		{kafka.Config{TLS: kafka.TLSConfig{CertFile: "c.pem"}}, "tls.cert_file: "},
		{kafka.Config{Linger: -time.Second}, "linger: "},
		{kafka.Config{BatchMaxBytes: 10}, "batch_max_bytes: "},
		{kafka.Config{MaxBufferedRecords: -1}, "max_buffered_records: "},
		{kafka.Config{DeliveryTimeout: -1}, "delivery_timeout: "},
		{kafka.Config{RequestTimeout: -1}, "request_timeout: "},
		{kafka.Config{DialTimeout: -1}, "dial_timeout: "},
		{kafka.Config{CreateTopics: &kafka.CreateTopicsConfig{Partitions: -5}}, "create_topics.partitions: "},
		{kafka.Config{CreateTopics: &kafka.CreateTopicsConfig{ReplicationFactor: -2}}, "create_topics.replication_factor: "},
		{kafka.Config{Topics: []string{"a topic"}}, "topics: "},
	} {
		err := tc.cfg.Validate()
		require.ErrorContains(t, err, "kafka: "+tc.want, "%+v", tc.cfg)
		require.NotContains(t, err.Error(), "hunter2")
	}
}

// decode decodes a sink block the way the config loader does: strictly.
func decode(t *testing.T, src string) (*kafka.SinkConfig, error) {
	t.Helper()
	c, err := sinktest.DecodeConfig(t, "kafka", src)
	sc, _ := c.(*kafka.SinkConfig)
	return sc, err
}

func TestSinkConfigFromYAML(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600))
	c, err := decode(t, `
brokers: ["k1:9092", "k2:9092,k3:9092"]
client_id: relay-eu
sasl: {mechanism: SCRAM-SHA-512, user: conveyor, password_file: `+pwFile+`}
tls: {enabled: true, server_name: kafka.internal}
compression: zstd
linger: 20ms
batch_max_bytes: 500000
max_buffered_records: 2000
delivery_timeout: 30s
request_timeout: 15s
dial_timeout: 3s
allow_auto_topic_creation: false
create_topics: {partitions: 12, replication_factor: 3, configs: {min.insync.replicas: "2"}}
topics: [orders, invoices]
`)
	require.NoError(t, err)
	require.Equal(t, []string{"k1:9092", "k2:9092", "k3:9092"}, c.Brokers)
	require.Equal(t, "s3cret-pw", c.SASL.Password)
	require.Equal(t, "zstd", c.Compression)
	require.Equal(t, 20*time.Millisecond, c.Linger)
	require.Equal(t, 30*time.Second, c.DeliveryTimeout)
	require.Equal(t, 12, c.CreateTopics.Partitions)
	require.Equal(t, "2", c.CreateTopics.Configs["min.insync.replicas"])
	require.Equal(t, []string{"s3cret-pw"}, c.Secrets())

	r := c.Redacted().(*kafka.SinkConfig)
	require.Equal(t, "REDACTED", r.SASL.Password)
	require.Equal(t, "s3cret-pw", c.SASL.Password, "Redacted must not modify the original")
	out, err := yaml.Marshal(r)
	require.NoError(t, err)
	require.NotContains(t, string(out), "s3cret-pw")
}

func TestSinkConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := decode(t, "create_topics: {}\n")
	require.NoError(t, err)
	require.Equal(t, []string{kafka.DefaultBroker}, c.Brokers)
	require.Equal(t, kafka.DefaultClientID, c.ClientID)
	require.Equal(t, kafka.DefaultCompression, c.Compression)
	require.Equal(t, kafka.DefaultLinger, c.Linger)
	require.Equal(t, kafka.DefaultBatchMaxBytes, c.BatchMaxBytes)
	require.Equal(t, kafka.DefaultMaxBufferedRecords, c.MaxBufferedRecords)
	require.Equal(t, kafka.DefaultDeliveryTimeout, c.DeliveryTimeout)
	require.Equal(t, -1, c.CreateTopics.Partitions)
	require.Equal(t, -1, c.CreateTopics.ReplicationFactor)
}

func TestSinkConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := decode(t, "bootstrap_servers: [x]\n")
	require.ErrorContains(t, err, "bootstrap_servers", "unknown keys are refused")

	_, err = decode(t, "sasl: {mechanism: PLAIN, user: u, password: a, password_file: /nonexistent}\n")
	require.ErrorContains(t, err, "sasl.password and sasl.password_file are both set")

	_, err = decode(t, "sasl: {mechanism: PLAIN, user: u, password_file: /nonexistent/pw}\n")
	require.ErrorContains(t, err, "sasl.password_file: ")

	_, err = decode(t, "compression: brotli\n")
	require.EqualError(t, err, `compression: "brotli": must be none, gzip, snappy, lz4 or zstd`,
		"errors name the field relative to the block, without the package prefix")
}
