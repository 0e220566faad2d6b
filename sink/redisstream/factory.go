package redisstream

import (
	"context"
	"log/slog"

	"github.com/conveyorhq/conveyor/sink"
)

func init() {
	sink.Register("redis", func() sink.Config { return &SinkConfig{} })
}

// SinkConfig is the `type: redis` block of the relay's YAML config: the settings of
// Config and the password from a file.
type SinkConfig struct {
	Config `yaml:",inline"`
	// PasswordFile reads Password from a file (Kubernetes and Docker secrets); a
	// trailing newline is dropped.
	PasswordFile string `yaml:"password_file,omitempty"`
}

var _ sink.Config = (*SinkConfig)(nil)

// Defaults implements sink.Config.
func (c *SinkConfig) Defaults() { c.Config = c.Config.withDefaults() }

// Validate implements sink.Config; it also reads password_file.
func (c *SinkConfig) Validate() error {
	if err := sink.ReadSecretFile("password", &c.Password, c.PasswordFile); err != nil {
		return err
	}
	return sink.BlockError(c.Config.Validate(), "redisstream", c.secrets())
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
func (c *SinkConfig) Open(ctx context.Context, logger *slog.Logger) (sink.Sink, error) {
	return New(ctx, c.Config, logger)
}
