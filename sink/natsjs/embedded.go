package natsjs

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults for EmbeddedConfig.
const (
	DefaultEmbeddedHost     = "127.0.0.1"
	DefaultEmbeddedPort     = 4222
	DefaultEmbeddedStoreDir = ".conveyor/jetstream"
)

// EmbeddedConfig configures the in-process NATS server.
type EmbeddedConfig struct {
	// Host is the interface to listen on. Default: 127.0.0.1, so it is not reachable
	// from other machines.
	Host string
	// Port is the client port; -1 picks a free one. Default: 4222.
	Port int
	// StoreDir is where JetStream keeps its streams, so they survive a restart.
	// Default: ".conveyor/jetstream", relative to the working directory.
	StoreDir string
	// Logger receives the server's log: notices at debug level, warnings and errors as
	// such. Default: slog.Default().
	Logger *slog.Logger
}

// Embedded is a NATS server with JetStream running inside this process: what the relay
// publishes to when it has no config, and what `make demo` uses.
type Embedded struct {
	srv  *server.Server
	once sync.Once
}

// startTimeout bounds the wait for the server to listen, on top of ctx.
const startTimeout = 30 * time.Second

// StartEmbedded starts an in-process NATS server with JetStream enabled and waits until
// it accepts connections.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	cfg.Host = cmp.Or(cfg.Host, DefaultEmbeddedHost)
	cfg.Port = cmp.Or(cfg.Port, DefaultEmbeddedPort)
	cfg.StoreDir = cmp.Or(cfg.StoreDir, DefaultEmbeddedStoreDir)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("natsjs: embedded store_dir %s: %w", cfg.StoreDir, err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "conveyor-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: embedded server: %w", err)
	}
	logger := &serverLogger{log: cfg.Logger, fatal: make(chan string, 1)}
	srv.SetLoggerV2(logger, false, false, false)
	go srv.Start()

	e := &Embedded{srv: srv}
	deadline := time.Now().Add(startTimeout)
	for !srv.ReadyForConnections(20 * time.Millisecond) {
		var reason string
		select {
		case msg := <-logger.fatal:
			reason = msg
		case <-ctx.Done():
			reason = ctx.Err().Error()
		default:
			if time.Now().After(deadline) {
				reason = "timed out after " + startTimeout.String()
			}
		}
		if reason != "" {
			e.Shutdown()
			return nil, fmt.Errorf("natsjs: embedded NATS server on %s:%d did not start: %s", cfg.Host, cfg.Port, reason)
		}
	}
	if !srv.JetStreamEnabled() {
		e.Shutdown()
		return nil, fmt.Errorf("natsjs: embedded NATS server started without JetStream (store_dir %s)", dir)
	}
	cfg.Logger.Info("natsjs: embedded NATS server started", "url", srv.ClientURL(), "store_dir", dir)
	return e, nil
}

// ClientURL is the URL clients connect to, such as nats://127.0.0.1:4222.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits until it has; calling it again does nothing.
func (e *Embedded) Shutdown() {
	e.once.Do(func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	})
}

// serverLogger adapts nats-server's logger to slog. A fatal error is reported to
// StartEmbedded instead of exiting the process.
type serverLogger struct {
	log   *slog.Logger
	fatal chan string
}

func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats-server: " + fmt.Sprintf(format, v...))
}

func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn("nats-server: " + fmt.Sprintf(format, v...))
}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error("nats-server: " + fmt.Sprintf(format, v...))
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error("nats-server: " + msg)
	select {
	case l.fatal <- msg:
	default:
	}
}

func (l *serverLogger) Debugf(format string, v ...any) {}
func (l *serverLogger) Tracef(format string, v ...any) {}
