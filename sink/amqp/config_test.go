package amqp_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/amqp"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, amqp.Config{}.Validate(), "the zero config is valid")
	require.NoError(t, amqp.Config{URL: "amqps://u:p@rabbit.example.com:5671/prod", Exchange: "events"}.Validate())

	for _, tc := range []struct {
		field string
		cfg   amqp.Config
	}{
		{"url", amqp.Config{URL: "http://localhost:5672"}},
		{"url", amqp.Config{URL: "amqp://:5672/"}},
		{"tls.cert_file", amqp.Config{TLS: amqp.TLSConfig{CertFile: "c.pem"}}},
		{"exchange", amqp.Config{Exchange: "bad\nname"}},
		{"max_message_bytes", amqp.Config{MaxMessageBytes: -1}},
		{"confirm_timeout", amqp.Config{ConfirmTimeout: -time.Second}},
		{"connect_timeout", amqp.Config{ConnectTimeout: -time.Second}},
		{"heartbeat", amqp.Config{Heartbeat: -time.Second}},
		{"topology.exchanges[0].name", amqp.Config{Topology: amqp.Topology{Exchanges: []amqp.Exchange{{}}}}},
		{"topology.exchanges[0].name", amqp.Config{Topology: amqp.Topology{Exchanges: []amqp.Exchange{{Name: "amq.mine"}}}}},
		{"topology.queues[0].name", amqp.Config{Topology: amqp.Topology{Queues: []amqp.Queue{{}}}}},
		{"topology.bindings[0].exchange", amqp.Config{Topology: amqp.Topology{Bindings: []amqp.Binding{{Queue: "q"}}}}},
		{"topology.bindings[0].queue", amqp.Config{Topology: amqp.Topology{Bindings: []amqp.Binding{{Exchange: "x"}}}}},
	} {
		err := tc.cfg.Validate()
		require.Error(t, err, tc.field)
		require.ErrorContains(t, err, "amqp: "+tc.field+":", fmt.Sprintf("%+v", tc.cfg))
	}
}

func TestConfigRedacted(t *testing.T) {
	t.Parallel()
	cfg := amqp.Config{URL: "amqp://alice:s3cret-pw@rabbit:5672/prod", Password: "s3cret-field"}
	r := cfg.Redacted()
	require.Equal(t, "amqp://alice:REDACTED@rabbit:5672/prod", r.URL)
	require.Equal(t, "REDACTED", r.Password)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "amqp", cfg)
	for _, secret := range []string{"s3cret-pw", "s3cret-field"} {
		require.NotContains(t, buf.String(), secret)
		require.NotContains(t, fmt.Sprintf("%+v", r), secret)
	}
	require.Contains(t, buf.String(), "alice:REDACTED@rabbit")
	// A URL that does not parse is still redacted in the error.
	err := amqp.Config{URL: "amqp://bob:p%zz-secret@host/"}.Validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "p%zz-secret")
}

func TestSinkConfigYAML(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("fr0m-file\n"), 0o600))
	doc := fmt.Sprintf(`
url: amqps://conveyor@rabbit.example.com:5671/prod
password_file: %s
exchange: events
max_message_bytes: 1048576
confirm_timeout: 3s
tls: {ca_file: /etc/ca.pem, server_name: rabbit.internal}
topology:
  exchanges: [{name: events, type: topic}]
  queues: [{name: billing, arguments: {x-queue-type: quorum}}]
  bindings: [{exchange: events, queue: billing, routing_key: "invoice.#"}]
`, pwFile)
	c, err := sinktest.DecodeConfig(t, "rabbitmq", doc)
	require.NoError(t, err)
	require.NoError(t, c.Validate(), "Validate may run twice")
	sc := c.(*amqp.SinkConfig)
	require.Equal(t, "fr0m-file", sc.Password)
	require.Equal(t, 3*time.Second, sc.ConfirmTimeout)
	require.Equal(t, amqp.DefaultHeartbeat, sc.Heartbeat)
	require.Equal(t, "topic", sc.Topology.Exchanges[0].Type)
	require.Equal(t, []string{"fr0m-file"}, c.Secrets())
	require.NotContains(t, fmt.Sprintf("%+v", c.Redacted()), "fr0m-file")

	bad, _ := sink.NewConfig("rabbitmq")
	require.NoError(t, yaml.Unmarshal([]byte("max_message_bytes: -5"), bad))
	require.EqualError(t, bad.Validate(), "max_message_bytes: must not be negative")
}
