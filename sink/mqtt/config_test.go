package mqtt_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/mqtt"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, mqtt.Config{}.Validate(), "the zero config is valid")
	require.NoError(t, mqtt.Config{URL: "mqtts://u:p@broker.example.com:8883", ClientID: "relay-1"}.Validate())

	for _, tc := range []struct {
		field string
		cfg   mqtt.Config
	}{
		{"url", mqtt.Config{URL: "http://localhost:1883"}},
		{"url", mqtt.Config{URL: "mqtt://:1883"}},
		{"username", mqtt.Config{Password: "p"}},
		{"client_id", mqtt.Config{ClientID: "a\x00b"}},
		{"tls.cert_file", mqtt.Config{TLS: mqtt.TLSConfig{CertFile: "c.pem"}}},
		{"message_expiry", mqtt.Config{MessageExpiry: -time.Second}},
		{"message_expiry", mqtt.Config{MessageExpiry: 500 * time.Millisecond}},
		{"max_message_bytes", mqtt.Config{MaxMessageBytes: -1}},
		{"max_in_flight", mqtt.Config{MaxInFlight: 70000}},
		{"keep_alive", mqtt.Config{KeepAlive: -time.Second}},
		{"connect_timeout", mqtt.Config{ConnectTimeout: -time.Second}},
		{"publish_timeout", mqtt.Config{PublishTimeout: -time.Second}},
	} {
		err := tc.cfg.Validate()
		require.Error(t, err, tc.field)
		require.ErrorContains(t, err, "mqtt: "+tc.field+":", fmt.Sprintf("%+v", tc.cfg))
	}
}

func TestConfigRedacted(t *testing.T) {
	t.Parallel()
	cfg := mqtt.Config{URL: "mqtts://alice:s3cret-pw@broker:8883", Password: "s3cret-field"}
	r := cfg.Redacted()
	require.Equal(t, "mqtts://alice:REDACTED@broker:8883", r.URL)
	require.Equal(t, "REDACTED", r.Password)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "mqtt", cfg)
	for _, secret := range []string{"s3cret-pw", "s3cret-field"} {
		require.NotContains(t, buf.String(), secret)
		require.NotContains(t, fmt.Sprintf("%+v", r), secret)
	}
}

func TestSinkConfigYAML(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("fr0m-file\n"), 0o600))
	doc := fmt.Sprintf(`
url: mqtts://broker.example.com:8883
username: conveyor
password_file: %s
client_id: relay-a
message_expiry: 24h
publish_timeout: 5s
tls: {ca_file: /etc/ca.pem}
`, pwFile)
	c, err := sinktest.DecodeConfig(t, "mqtt", doc)
	require.NoError(t, err)
	require.NoError(t, c.Validate(), "Validate may run twice")
	sc := c.(*mqtt.SinkConfig)
	require.Equal(t, "fr0m-file", sc.Password)
	require.Equal(t, 24*time.Hour, sc.MessageExpiry)
	require.Equal(t, mqtt.DefaultKeepAlive, sc.KeepAlive)
	require.Equal(t, []string{"fr0m-file"}, c.Secrets())
	require.NotContains(t, fmt.Sprintf("%+v", c.Redacted()), "fr0m-file")

	// Without client_id every relay gets its own.
	a, _ := sink.NewConfig("mqtt")
	b, _ := sink.NewConfig("mqtt")
	a.Defaults()
	b.Defaults()
	ida, idb := a.(*mqtt.SinkConfig).ClientID, b.(*mqtt.SinkConfig).ClientID
	require.True(t, strings.HasPrefix(ida, mqtt.DefaultClientIDPrefix))
	require.NotEqual(t, ida, idb)
}
