package mqtt

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/sink"
)

// Defaults for Config.
const (
	DefaultURL            = "mqtt://127.0.0.1:1883"
	DefaultClientIDPrefix = "conveyor-"
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultPublishTimeout = 10 * time.Second
	DefaultMaxInFlight    = 64
)

// Config configures an MQTT 5 sink.
type Config struct {
	// URL is the broker: mqtt://host:1883, mqtts:// (or tls://, ssl://) for TLS, ws:// or
	// wss:// for WebSocket. It may hold user:password@, which is never logged.
	// Default: DefaultURL.
	URL string `yaml:"url"`
	// Username and Password authenticate; they override the URL's. Default: from the URL,
	// else none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// ClientID identifies the connection; two clients with one id disconnect each other,
	// so every relay replica needs its own. Default: "conveyor-" and 8 random hex digits.
	ClientID string `yaml:"client_id"`
	// TLS configures TLS for mqtts://, tls://, ssl:// and wss:// URLs.
	TLS TLSConfig `yaml:"tls"`

	// Retain sets the retain flag on every message. Default: false.
	Retain bool `yaml:"retain"`
	// MessageExpiry sets the Message Expiry Interval (whole seconds): the broker drops
	// the message if no subscriber has taken it by then. Default: 0, never expires.
	MessageExpiry time.Duration `yaml:"message_expiry"`
	// MaxMessageBytes refuses, as a permanent error and without publishing, an event
	// whose data is larger. Default: 0: only the broker's Maximum Packet Size (from its
	// CONNACK) applies, checked before sending.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxInFlight bounds the messages waiting for their PUBACK across all Publish calls;
	// the broker's Receive Maximum lowers it. Default: 64.
	MaxInFlight int `yaml:"max_in_flight"`
	// KeepAlive is the MQTT keep-alive interval. Default: 30s.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// ConnectTimeout bounds each connection attempt, and how long New waits for the
	// first connection. Default: 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PublishTimeout is how long to wait for a message's PUBACK. Default: 10s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// TLSConfig configures TLS to the broker.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs to trust. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables server certificate verification. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	c.URL = cmp.Or(strings.TrimSpace(c.URL), DefaultURL)
	if c.ClientID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.ClientID = DefaultClientIDPrefix + hex.EncodeToString(b[:])
	}
	c.KeepAlive = cmp.Or(c.KeepAlive, DefaultKeepAlive)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, DefaultPublishTimeout)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, DefaultMaxInFlight)
	return c
}

// Validate reports the first invalid field of c, after defaults are applied; the error
// names the field as the YAML config spells it.
func (c Config) Validate() error {
	c = c.withDefaults()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("mqtt: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if err := checkURL(c.URL); err != nil {
		return fail("url", "%v", err)
	}
	if c.Password != "" && c.Username == "" && urlUser(c.URL) == "" {
		return fail("username", "password is set but username is empty")
	}
	if len(c.ClientID) > 65535 || strings.ContainsRune(c.ClientID, 0) {
		return fail("client_id", "must be a UTF-8 string of at most 65535 bytes without NUL")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fail("tls.cert_file", "cert_file and key_file must be set together")
	}
	if c.MessageExpiry < 0 || c.MessageExpiry > (1<<32-1)*time.Second {
		return fail("message_expiry", "must be between 0 and 4294967295s")
	}
	if c.MessageExpiry > 0 && c.MessageExpiry < time.Second {
		return fail("message_expiry", "is counted in whole seconds; use at least 1s")
	}
	if c.MaxMessageBytes < 0 {
		return fail("max_message_bytes", "must not be negative")
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 65535 {
		return fail("max_in_flight", "must be between 1 and 65535, got %d", c.MaxInFlight)
	}
	if c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second {
		return fail("keep_alive", "must be between 0 and 65535s")
	}
	if c.ConnectTimeout < 0 {
		return fail("connect_timeout", "must not be negative")
	}
	if c.PublishTimeout < 0 {
		return fail("publish_timeout", "must not be negative")
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		return fmt.Errorf("%s is not a valid URL", sink.RedactPassword(raw))
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "tls", "ssl", "ws", "wss":
	default:
		return fmt.Errorf("%s: scheme must be mqtt, mqtts, tls, ssl, ws or wss", sink.RedactPassword(raw))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s has no host", sink.RedactPassword(raw))
	}
	return nil
}

func urlUser(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

func (c Config) usesTLS() bool {
	u, err := url.Parse(c.URL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "mqtts", "tls", "ssl", "wss":
		return true
	}
	return false
}

// Redacted returns c with its password replaced, and the URL's hidden, for printing.
func (c Config) Redacted() Config {
	if c.Password != "" {
		c.Password = sink.Redacted
	}
	c.URL = sink.RedactPassword(c.URL)
	return c
}

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("url", r.URL),
		slog.String("client_id", r.ClientID),
		slog.Bool("auth", c.Username != "" || urlUser(c.URL) != ""),
		slog.Bool("tls", c.usesTLS()),
	)
}
