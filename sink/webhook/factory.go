package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/conveyorhq/conveyor/sink"
)

func init() {
	sink.Register("webhook", func() sink.Config { return &SinkConfig{} })
}

// SinkConfig is the `type: webhook` block of the relay's YAML config: the settings of
// Config plus signing secrets from a file.
type SinkConfig struct {
	Config `yaml:",inline"`
	// SecretFile holds more signing secrets, one per line (blank lines and lines starting
	// with # are skipped); they are added after secrets. For Kubernetes and Docker
	// secrets, and for rotating without editing the config.
	SecretFile string `yaml:"secret_file,omitempty"`

	fileSecrets int // secrets appended from SecretFile (Validate may run twice)
}

var _ sink.Config = (*SinkConfig)(nil)

// Defaults implements sink.Config.
func (c *SinkConfig) Defaults() { c.Config = c.Config.withDefaults() }

// Validate implements sink.Config; it also reads secret_file.
func (c *SinkConfig) Validate() error {
	if c.SecretFile != "" && c.fileSecrets == 0 {
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return fmt.Errorf("secret_file: %w", err)
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			c.SigningSecrets = append(c.SigningSecrets, line)
			n++
		}
		if n == 0 {
			return fmt.Errorf("secret_file: %s holds no secret", c.SecretFile)
		}
		c.fileSecrets = n
	}
	return sink.BlockError(c.Config.Validate(), "webhook", c.secrets())
}

// Secrets implements sink.Config.
func (c *SinkConfig) Secrets() []string { return c.secrets() }

// Redacted implements sink.Config.
func (c *SinkConfig) Redacted() sink.Config {
	out := *c
	out.Config = c.Config.Redacted()
	return &out
}

// Open implements sink.Config.
func (c *SinkConfig) Open(_ context.Context, logger *slog.Logger) (sink.Sink, error) {
	return New(c.Config, logger)
}
