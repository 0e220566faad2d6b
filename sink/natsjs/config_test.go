package natsjs_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink/natsjs"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, natsjs.Config{}.Validate(), "the zero config is valid")
	require.NoError(t, natsjs.Config{URL: "nats://a:4222, tls://b:4222,c:4222", User: "u", Password: "p"}.Validate())

	for _, tc := range []struct {
		field string
		cfg   natsjs.Config
	}{
		{"url", natsjs.Config{URL: "http://localhost:4222"}},
		{"url", natsjs.Config{URL: "nats://a:4222,,nats://b:4222"}},
		{"url", natsjs.Config{URL: "nats://:4222"}},
		{"user", natsjs.Config{User: "u", Password: "p", Token: "t"}},
		{"user", natsjs.Config{Token: "t", CredsFile: "x.creds"}},
		{"user", natsjs.Config{Password: "p"}},
		{"tls.cert_file", natsjs.Config{TLS: natsjs.TLSConfig{CertFile: "c.pem"}}},
		{"stream", natsjs.Config{Stream: "my.stream"}},
		{"stream", natsjs.Config{Stream: "my stream"}},
		{"subjects", natsjs.Config{Subjects: []string{"events.>", "a..b"}}},
		{"subjects", natsjs.Config{Subjects: []string{"a.>.b"}}},
		{"replicas", natsjs.Config{Replicas: 7}},
		{"replicas", natsjs.Config{Replicas: -1}},
		{"duplicates", natsjs.Config{Duplicates: -time.Second}},
		{"max_in_flight", natsjs.Config{MaxInFlight: -1}},
		{"ack_timeout", natsjs.Config{AckTimeout: -time.Second}},
		{"connect_timeout", natsjs.Config{ConnectTimeout: -time.Second}},
	} {
		err := tc.cfg.Validate()
		require.Error(t, err, "%+v", tc.cfg)
		require.Contains(t, err.Error(), "natsjs: "+tc.field+":", "%+v", tc.cfg)
	}
}

func TestNewRejectsMissingFiles(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	for field, cfg := range map[string]natsjs.Config{
		"creds_file":             {CredsFile: missing},
		"nkey_file":              {NKeyFile: missing},
		"tls.ca_file":            {TLS: natsjs.TLSConfig{CAFile: missing}},
		"tls.cert_file/key_file": {TLS: natsjs.TLSConfig{CertFile: missing, KeyFile: missing}},
	} {
		_, err := natsjs.New(t.Context(), cfg, nil)
		require.ErrorContains(t, err, "natsjs: "+field, field)
	}
}

func TestConfigRedacted(t *testing.T) {
	t.Parallel()
	cfg := natsjs.Config{
		URL:      "nats://alice:s3cret-pw@a:4222,nats://t0ken-abc@b:4222,nats://c:4222",
		User:     "alice",
		Password: "s3cret-field",
		Token:    "t0ken-field",
	}
	r := cfg.Redacted()
	require.Equal(t, "nats://alice:REDACTED@a:4222,nats://REDACTED@b:4222,nats://c:4222", r.URL)
	require.Equal(t, "REDACTED", r.Password)
	require.Equal(t, "REDACTED", r.Token)
	require.Equal(t, "alice", r.User)

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "nats", cfg)
	for _, secret := range []string{"s3cret-pw", "t0ken-abc", "s3cret-field", "t0ken-field"} {
		require.NotContains(t, buf.String(), secret)
		require.NotContains(t, fmt.Sprintf("%+v", r), secret)
	}
	require.Contains(t, buf.String(), "alice:REDACTED@a:4222")
}
