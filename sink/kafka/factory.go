package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

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
	if f := c.SASL.PasswordFile; f != "" {
		if c.SASL.Password != "" {
			return errors.New("sasl.password and sasl.password_file are both set; use one")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("sasl.password_file: %w", err)
		}
		c.SASL.Password = strings.TrimRight(string(b), "\r\n")
	}
	if err := c.Config.Validate(); err != nil {
		// Field names here are relative to the sink's block; drop the package prefix.
		return redactErr(errors.New(strings.TrimPrefix(err.Error(), "kafka: ")), c.secrets())
	}
	return nil
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
