package kafka

import (
	"context"
	"log/slog"

	"github.com/conveyorhq/conveyor/sink"
)

func init() {
	sink.Register("kafka", func() sink.Config { return &SinkConfig{} })
}

// SinkConfig is the `type: kafka` block of the relay's YAML config.
type SinkConfig struct {
	Config `yaml:",inline"`
}

var _ sink.Config = (*SinkConfig)(nil)

// Defaults implements sink.Config.
func (c *SinkConfig) Defaults() { c.Config = c.Config.withDefaults() }

// Validate implements sink.Config; it also reads sasl.password_file.
func (c *SinkConfig) Validate() error {
	if err := sink.ReadSecretFile("sasl.password", &c.SASL.Password, c.SASL.PasswordFile); err != nil {
		return err
	}
	return sink.BlockError(c.Config.Validate(), "kafka", c.secrets())
}

// Secrets implements sink.Config.
func (c *SinkConfig) Secrets() []string { return c.secrets() }

// Redacted implements sink.Config.
func (c *SinkConfig) Redacted() sink.Config {
	return &SinkConfig{Config: c.Config.Redacted()}
}

// Open implements sink.Config.
func (c *SinkConfig) Open(ctx context.Context, logger *slog.Logger) (sink.Sink, error) {
	return New(ctx, c.Config, logger)
}
