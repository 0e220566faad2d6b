package redisstream

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
	if c.PasswordFile != "" {
		if c.Password != "" {
			return errors.New("password and password_file are both set; use one")
		}
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("password_file: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	}
	if err := c.Config.Validate(); err != nil {
		// Field names here are relative to the sink's block; drop the package prefix.
		return redactErr(errors.New(strings.TrimPrefix(err.Error(), "redisstream: ")), c.secrets())
	}
	return nil
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
