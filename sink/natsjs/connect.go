package natsjs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/conveyorhq/conveyor/sink"
)

// conn is a connection plus what is needed to report on it without leaking secrets.
type conn struct {
	nc      *nats.Conn
	url     string // redacted
	secrets []string
	closed  chan struct{} // closed once the connection is closed for good
}

// connect dials the server. It reconnects forever once connected, but the first
// connection must succeed: a failure is returned, classified sink.Transient when the
// server could not be reached.
func connect(c Config, log *slog.Logger) (*conn, error) {
	cn := &conn{url: redactURL(c.URL), secrets: c.secrets(), closed: make(chan struct{})}
	var closeOnce sync.Once
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		// No reconnect buffer: while disconnected a publish fails at once (and is
		// reported as an outage) instead of sitting in a buffer the relay cannot see.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("natsjs: disconnected; reconnecting", "url", cn.url, "err", sink.RedactError(err, cn.secrets))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("natsjs: reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("natsjs: asynchronous error", "url", cn.url, "err", sink.RedactError(err, cn.secrets))
		}),
		nats.ClosedHandler(func(*nats.Conn) { closeOnce.Do(func() { close(cn.closed) }) }),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.CredsFile != "":
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("natsjs: creds_file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsjs: nkey_file %s: %w", c.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if c.TLS.enabled() {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}

	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, cn.connectError(err)
	}
	cn.nc = nc
	return cn, nil
}

// connectError explains a failed first connection and classifies it: a server that
// cannot be reached is an outage, bad credentials or TLS settings are not.
func (cn *conn) connectError(err error) error {
	err = sink.RedactError(err, cn.secrets)
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired),
		strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
		return fmt.Errorf("natsjs: %s rejected the credentials; check user/password, token, creds_file or nkey_file: %w", cn.url, err)
	case errors.As(err, &certErr), errors.Is(err, nats.ErrSecureConnRequired),
		errors.Is(err, nats.ErrSecureConnWanted), strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("natsjs: TLS to %s failed; check the tls settings: %w", cn.url, err)
	}
	return sink.Transient(fmt.Errorf("natsjs: cannot connect to NATS at %s (is nats-server running and reachable?): %w", cn.url, err))
}

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	tc, err := sink.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		InsecureSkipVerify: t.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("natsjs: %w", err)
	}
	return tc, nil
}

// close drains the connection, or closes it when draining cannot start, and waits
// until it is closed or done is closed.
func (cn *conn) close(done <-chan struct{}) {
	if err := cn.nc.Drain(); err != nil {
		cn.nc.Close()
	}
	select {
	case <-cn.closed:
	case <-done:
		cn.nc.Close()
	}
}
