package webhook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/sinktest"
	"github.com/conveyorhq/conveyor/sink/webhook"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, webhook.Config{}.Validate(), "the zero config is valid")
	require.NoError(t, webhook.Config{BaseURL: "https://hooks.example.com/v1", SigningSecrets: []string{secretA, secretB}}.Validate())

	for _, tc := range []struct {
		field string
		cfg   webhook.Config
	}{
		{"base_url", webhook.Config{BaseURL: "hooks.example.com"}},
		{"base_url", webhook.Config{BaseURL: "ftp://hooks.example.com"}},
		{"secrets[1]", webhook.Config{SigningSecrets: []string{secretA, "whsec_not base64!"}}},
		{"secrets[0]", webhook.Config{SigningSecrets: []string{"whsec_c2hvcnQ="}}},
		{"timeout", webhook.Config{Timeout: -time.Second}},
		{"max_concurrency", webhook.Config{MaxConcurrency: -1}},
		{"max_redirects", webhook.Config{MaxRedirects: -1}},
		{"max_body_bytes", webhook.Config{MaxBodyBytes: -1}},
		{"headers", webhook.Config{Headers: map[string]string{"Bad Name": "x"}}},
		{"headers", webhook.Config{Headers: map[string]string{"webhook-signature": "x"}}},
		{"headers", webhook.Config{Headers: map[string]string{"Ce-Id": "x"}}},
		{"headers", webhook.Config{Headers: map[string]string{"Content-Type": "text/plain"}}},
		{"headers", webhook.Config{Headers: map[string]string{"X-A": "a\r\nX-B: b"}}},
		{"tls.cert_file", webhook.Config{TLS: webhook.TLSConfig{KeyFile: "k.pem"}}},
	} {
		err := tc.cfg.Validate()
		require.Error(t, err, tc.field)
		require.ErrorContains(t, err, "webhook: "+tc.field+":", fmt.Sprintf("%+v", tc.cfg))
	}
	// A malformed secret is never quoted.
	err := webhook.Config{SigningSecrets: []string{"whsec_s3cret not base64"}}.Validate()
	require.NotContains(t, err.Error(), "s3cret")
}

func TestSinkConfigYAML(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secrets")
	require.NoError(t, os.WriteFile(secretFile, []byte("# rotated 2024-05\n"+secretB+"\n\n"), 0o600))
	doc := fmt.Sprintf(`
base_url: https://hooks.example.com/
secrets: [%s]
secret_file: %s
timeout: 3s
max_concurrency: 8
headers: {Authorization: "Bearer abc123token", X-Env: prod}
follow_redirects: true
tls: {ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/c.key}
`, secretA, secretFile)
	c, err := sinktest.DecodeConfig(t, "webhook", doc)
	require.NoError(t, err)
	require.NoError(t, c.Validate(), "Validate may run twice")
	sc := c.(*webhook.SinkConfig)
	require.Equal(t, []string{secretA, secretB}, sc.SigningSecrets)
	require.Equal(t, 3*time.Second, sc.Timeout)
	require.Equal(t, webhook.DefaultMaxRedirects, sc.MaxRedirects)
	require.Contains(t, c.Secrets(), secretA)
	require.Contains(t, c.Secrets(), secretB)
	require.Contains(t, c.Secrets(), "Bearer abc123token")
	printed := fmt.Sprintf("%+v", c.Redacted())
	for _, s := range []string{secretA, secretB, "abc123token"} {
		require.NotContains(t, printed, s)
	}
	require.Contains(t, printed, "prod", "ordinary header values are not secrets")

	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n# nothing\n"), 0o600))
	bad, _ := sink.NewConfig("webhook")
	require.NoError(t, yaml.Unmarshal([]byte("secret_file: "+empty), bad))
	require.ErrorContains(t, bad.Validate(), "secret_file:")
	bad2, _ := sink.NewConfig("webhook")
	require.NoError(t, yaml.Unmarshal([]byte("max_concurrency: -2"), bad2))
	require.EqualError(t, bad2.Validate(), "max_concurrency: must be at least 1, got -2")
}

// ExampleSigner shows the signature a receiver recomputes.
func ExampleSigner() {
	s, err := webhook.NewSigner([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}
