// Package mqtt is the MQTT 5 sink, sink type "mqtt". It publishes each event with QoS 1
// and waits for the broker's PUBACK, following the CloudEvents MQTT binding in binary
// mode: the payload is the event data, the attributes are user properties (id, source,
// type, ...) and datacontenttype is the Content Type property. Extra event headers
// (traceparent, correlation ids) are user properties too.
//
// Only MQTT 5 is supported: MQTT 3.1.1 has neither user properties nor reason codes, so
// it could carry events only in structured mode and could not tell a refused message
// from a delivered one.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
)

// ErrClosed is returned, as a transient error, for a publish after Close.
var ErrClosed = errors.New("mqtt: sink is closed")

// Sink publishes to an MQTT 5 broker. It implements sink.Sink and sink.Checker.
//
// Publish is safe for concurrent use; all calls share one connection and at most
// MaxInFlight messages waiting for their PUBACK. The connection reconnects by itself
// after a loss; while it is down every publish fails as an outage. Close stops new
// publishes, waits for those in flight, then disconnects.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	cm      *autopaho.ConnectionManager
	cancel  context.CancelFunc
	url     string // redacted
	secrets []string
	sem     chan struct{}

	mu          sync.Mutex
	maxPacket   uint32 // the broker's Maximum Packet Size; 0 means no limit given
	connectErr  error  // the last failed connection attempt
	connectedAt time.Time

	gate      sink.Gate
	closeOnce sync.Once
	closeErr  error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New connects to the broker and waits for the first connection at most ConnectTimeout.
// A broker that cannot be reached gives an error classified sink.Transient; refused
// credentials give a plain error that says what to change. A nil logger discards logs.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, sink.RedactError(err, cfg.secrets())
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, log: log, url: sink.RedactPassword(cfg.URL), secrets: cfg.secrets(), sem: make(chan struct{}, cfg.MaxInFlight)}

	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt: url: %s is not a valid URL", s.url)
	}
	user, pass := cfg.Username, cfg.Password
	if u.User != nil {
		if user == "" {
			user = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && pass == "" {
			pass = p
		}
		u.User = nil // the library quotes the URL in its errors
	}
	var tc *tls.Config
	if cfg.usesTLS() {
		if tc, err = tlsConfig(cfg.TLS); err != nil {
			return nil, err
		}
	}
	keepAlive := uint16(cfg.KeepAlive / time.Second) //nolint:gosec // validated <= 65535s
	connected := make(chan struct{}, 1)
	refused := make(chan struct{}, 1) // the broker refused the credentials: no point waiting
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        tc,
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		// No session to resume: a message whose PUBACK did not come before a disconnect
		// fails as an outage and the relay publishes it again.
		SessionExpiryInterval: 0,
		ReconnectBackoff:      backoff,
		ConnectTimeout:        cfg.ConnectTimeout,
		ConnectUsername:       user,
		ConnectPassword:       []byte(pass),
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ack *paho.Connack) {
			s.mu.Lock()
			reconnect := !s.connectedAt.IsZero()
			s.connectedAt = time.Now()
			s.connectErr = nil
			s.maxPacket = 0
			if ack.Properties != nil && ack.Properties.MaximumPacketSize != nil {
				s.maxPacket = *ack.Properties.MaximumPacketSize
			}
			s.mu.Unlock()
			if reconnect {
				log.Info("mqtt: reconnected", "url", s.url)
			}
			select {
			case connected <- struct{}{}:
			default:
			}
		},
		OnConnectionDown: func() bool {
			log.Warn("mqtt: connection lost; reconnecting", "url", s.url)
			return true
		},
		OnConnectError: func(err error) {
			s.mu.Lock()
			s.connectErr = s.redact(err)
			s.mu.Unlock()
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && refusal(ce.ReasonCode) {
				select {
				case refused <- struct{}{}:
				default:
				}
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID:      cfg.ClientID,
			PacketTimeout: cfg.PublishTimeout,
		},
	}
	if user == "" {
		cc.ConnectPassword = nil
	}
	runCtx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(runCtx, cc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt: %w", s.redact(err))
	}
	s.cm, s.cancel = cm, cancel

	wait, stop := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer stop()
	select {
	case <-connected:
	case <-refused:
		err := s.connectError()
		s.shutdown(context.Background())
		return nil, err
	case <-wait.Done():
		err := s.connectError()
		s.shutdown(context.Background())
		return nil, err
	}
	log.Info("mqtt: connected", "config", cfg)
	return s, nil
}

// refusal reports CONNACK reason codes that retrying with the same settings cannot fix.
func refusal(code byte) bool {
	switch code {
	case 0x84, 0x85, 0x86, 0x87, 0x8C:
		return true
	}
	return false
}

// backoff is the delay before reconnect attempt n: none for the first, then doubling
// from 100ms to 2s, so an outage's end is noticed within about two seconds.
func backoff(n int) time.Duration {
	if n == 0 {
		return 0
	}
	d := 100 * time.Millisecond << min(n-1, 5)
	return min(d, 2*time.Second)
}

// connectError explains why the first connection did not come up and classifies it:
// refused credentials or authorization are configuration errors, anything else an
// outage.
func (s *Sink) connectError() error {
	s.mu.Lock()
	err := s.connectErr
	s.mu.Unlock()
	if err == nil {
		err = errors.New("no answer")
	}
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		switch ce.ReasonCode {
		case 0x86, 0x87, 0x8C: // bad user name or password, not authorized, bad authentication method
			return fmt.Errorf("mqtt: %s refused the credentials (reason 0x%02X); check username and password (or password_file) and the broker's ACL: %w",
				s.url, ce.ReasonCode, err)
		case 0x85: // client identifier not valid
			return fmt.Errorf("mqtt: %s refused client_id %q: %w", s.url, s.cfg.ClientID, err)
		case 0x84: // unsupported protocol version
			return fmt.Errorf("mqtt: %s does not speak MQTT 5 (mosquitto 1.6 or later, EMQX, HiveMQ and VerneMQ do): %w", s.url, err)
		}
	}
	return sink.Transient(fmt.Errorf("mqtt: cannot connect to %s within %s (is the broker running and reachable?): %w", s.url, s.cfg.ConnectTimeout, err))
}

func (s *Sink) redact(err error) error { return sink.RedactError(err, s.secrets) }

// Check verifies that the connection is up.
func (s *Sink) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := s.cm.AwaitConnection(ctx); err != nil {
		return s.connectError()
	}
	return nil
}

// Publish publishes msgs with QoS 1, at most MaxInFlight at a time across all calls,
// and waits for each PUBACK.
func (s *Sink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if !s.gate.Enter() {
		return slices.Repeat([]error{sink.Transient(ErrClosed)}, len(msgs))
	}
	defer s.gate.Leave()
	return sink.FanOut(ctx, msgs, s.sem, "mqtt: publish not started", s.publish)
}

// publish sends one message and waits for its PUBACK.
func (s *Sink) publish(ctx context.Context, m *sink.Message) error {
	p, err := s.packet(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	resp, err := s.cm.Publish(ctx, p)
	if err != nil {
		return s.classify(m, resp, err)
	}
	return nil
}

// packet builds the PUBLISH packet for m, checking what the broker would refuse.
func (s *Sink) packet(m *sink.Message) (*paho.Publish, error) {
	if m == nil || m.Event == nil {
		return nil, sink.Permanent(errors.New("mqtt: message has no event"))
	}
	e := m.Event
	if err := checkTopic(m.Destination); err != nil {
		return nil, sink.Permanent(fmt.Errorf("mqtt: event %s: invalid destination for route %q: %w", e.ID, m.Route, err))
	}
	if s.cfg.MaxMessageBytes > 0 && len(e.Data) > s.cfg.MaxMessageBytes {
		return nil, sink.Permanent(fmt.Errorf("mqtt: event %s (%d bytes of data) is larger than max_message_bytes (%d)", e.ID, len(e.Data), s.cfg.MaxMessageBytes))
	}
	contentType, props := cloudevents.MQTTProperties(e)
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	user := make(paho.UserProperties, 0, len(keys))
	for _, k := range keys {
		user = append(user, paho.UserProperty{Key: k, Value: props[k]})
	}
	p := &paho.Publish{
		QoS:     1,
		Retain:  s.cfg.Retain,
		Topic:   m.Destination,
		Payload: e.Data,
		Properties: &paho.PublishProperties{
			ContentType: contentType,
			User:        user,
		},
	}
	if s.cfg.MessageExpiry > 0 {
		secs := uint32(s.cfg.MessageExpiry / time.Second) //nolint:gosec // validated
		p.Properties.MessageExpiry = &secs
	}
	s.mu.Lock()
	limit := s.maxPacket
	s.mu.Unlock()
	if limit > 0 {
		// A packet over the broker's Maximum Packet Size would make it drop the
		// connection (reason 0x95): refuse it here instead.
		var n countWriter
		if _, err := p.Packet().WriteTo(&n); err == nil && n > countWriter(limit) {
			return nil, sink.Permanent(fmt.Errorf("mqtt: event %s makes a %d-byte PUBLISH packet (%d bytes of data), larger than the broker's Maximum Packet Size of %d bytes",
				e.ID, n, len(e.Data), limit))
		}
	}
	return p, nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

// checkTopic validates a topic name to publish to.
func checkTopic(t string) error {
	switch {
	case t == "":
		return errors.New("topic is empty")
	case len(t) > 65535:
		return errors.New("topic is longer than 65535 bytes")
	case !utf8.ValidString(t):
		return fmt.Errorf("topic %q is not valid UTF-8", t)
	}
	for _, r := range t {
		switch r {
		case '+', '#':
			return fmt.Errorf("topic %q has a wildcard; publish to a concrete topic", t)
		case 0:
			return fmt.Errorf("topic %q contains NUL", t)
		}
	}
	return nil
}

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	tc, err := sink.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return tc, nil
}

// shutdown disconnects and stops reconnecting.
func (s *Sink) shutdown(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.cm.Disconnect(dctx); err != nil {
		s.cancel()
		select {
		case <-s.cm.Done():
		case <-time.After(5 * time.Second):
		}
	}
	s.cancel()
}

// Close stops new publishes, waits for in-flight ones to finish or ctx to end, then
// disconnects. Calling it again returns the first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.gate.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("mqtt: closing with publishes still in flight: %w", err)
		}
		s.shutdown(ctx)
	})
	return s.closeErr
}
