package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/conveyorhq/conveyor/sink"
)

func init() {
	sink.Register("nats", func() sink.Config { return &SinkConfig{} })
}

// SinkConfig is the `type: nats` block of the relay's YAML config: the connection
// settings of Config, secrets from files, and an optional embedded server.
type SinkConfig struct {
	Config `yaml:",inline"`
	// PasswordFile and TokenFile read Password and Token from files (Kubernetes and Docker
	// secrets); a trailing newline is dropped.
	PasswordFile string `yaml:"password_file,omitempty"`
	TokenFile    string `yaml:"token_file,omitempty"`
	// Embedded runs a NATS server with JetStream inside the relay and publishes to it;
	// URL is then ignored. For development and the demo.
	Embedded EmbeddedYAML `yaml:"embedded"`
}

// EmbeddedYAML is the `embedded` block.
type EmbeddedYAML struct {
	Enabled bool `yaml:"enabled"`
	// Host to bind. Default 127.0.0.1.
	Host string `yaml:"host,omitempty"`
	// Port to bind; -1 picks a free one. Default 4222.
	Port int `yaml:"port,omitempty"`
	// StoreDir holds JetStream data. Default .conveyor/jetstream.
	StoreDir string `yaml:"store_dir,omitempty"`
}

var _ sink.Config = (*SinkConfig)(nil)

// Defaults implements sink.Config.
func (c *SinkConfig) Defaults() {
	c.Config = c.Config.withDefaults()
}

// Validate implements sink.Config; it also reads the *_file secrets.
func (c *SinkConfig) Validate() error {
	if err := errors.Join(
		sink.ReadSecretFile("password", &c.Password, c.PasswordFile),
		sink.ReadSecretFile("token", &c.Token, c.TokenFile),
	); err != nil {
		return err
	}
	if c.Embedded.Port < -1 || c.Embedded.Port > 65535 {
		return fmt.Errorf("embedded.port: out of range: %d", c.Embedded.Port)
	}
	// No secrets to hide: Config.Validate already redacts the URLs it quotes.
	return sink.BlockError(c.Config.Validate(), "natsjs", nil)
}

// Secrets implements sink.Config.
func (c *SinkConfig) Secrets() []string { return c.secrets() }

// Redacted implements sink.Config.
func (c *SinkConfig) Redacted() sink.Config {
	out := *c
	out.Config = c.Config.Redacted()
	return &out
}

// Open implements sink.Config: it starts the embedded server when enabled, then connects.
func (c *SinkConfig) Open(ctx context.Context, logger *slog.Logger) (sink.Sink, error) {
	cfg := c.Config
	var emb *Embedded
	if c.Embedded.Enabled {
		var err error
		emb, err = StartEmbedded(ctx, EmbeddedConfig{Host: c.Embedded.Host, Port: c.Embedded.Port,
			StoreDir: c.Embedded.StoreDir, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS server: %w", err)
		}
		cfg.URL = emb.ClientURL()
	}
	s, err := New(ctx, cfg, logger)
	if err != nil {
		if emb != nil {
			emb.Shutdown()
		}
		return nil, err
	}
	if emb == nil {
		return s, nil
	}
	return &embeddedSink{Sink: s, emb: emb}, nil
}

// embeddedSink stops the in-process server after the connection closes.
type embeddedSink struct {
	*Sink
	emb *Embedded
}

func (e *embeddedSink) Close(ctx context.Context) error {
	err := e.Sink.Close(ctx)
	e.emb.Shutdown()
	return err
}
