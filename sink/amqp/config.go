package amqp

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/sink"
)

// Defaults for Config.
const (
	DefaultURL            = "amqp://guest@127.0.0.1:5672/"
	DefaultName           = "conveyor"
	DefaultConfirmTimeout = 10 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultHeartbeat      = 10 * time.Second
	DefaultExchangeType   = "topic"
)

// Config configures a RabbitMQ (AMQP 0-9-1) sink. The zero value is valid: it publishes
// to a local broker through the default exchange.
type Config struct {
	// URL is the broker URI, amqp://user:password@host:port/vhost, or amqps:// for TLS.
	// Its password is never logged. Default: DefaultURL.
	URL string `yaml:"url"`
	// User and Password override the URL's user information. Default: from the URL.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Name is the connection name the broker shows (management UI, rabbitmqctl
	// list_connections). Default: "conveyor".
	Name string `yaml:"name"`
	// TLS configures TLS; used for amqps:// URLs. Default: system roots.
	TLS TLSConfig `yaml:"tls"`

	// Exchange is where a destination without "/" goes: the destination is then the
	// routing key. Default: "", the broker's default exchange, which routes to the queue
	// named by the routing key.
	Exchange string `yaml:"exchange"`

	// Topology lists exchanges, queues and bindings to declare at startup and after each
	// reconnect. Default: none (everything must exist).
	Topology Topology `yaml:"topology"`

	// MaxMessageBytes refuses, as a permanent error and without publishing, an event
	// whose data is larger. Default: 0, no local check (the broker's max_message_size
	// applies; the sink learns it from the first refusal).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// ConfirmTimeout is how long to wait for the broker's publisher confirm of a
	// message. Default: 10s.
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	// ConnectTimeout bounds the TCP connect, TLS and AMQP handshake. Default: 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Heartbeat is the AMQP heartbeat interval; a dead peer is noticed after about two
	// of them. Default: 10s.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// TLSConfig configures TLS to the broker.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs to trust. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS
	// (and the EXTERNAL mechanism when the broker has it). Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate. Default: the
	// URL's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables server certificate verification. For tests only.
	// Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Topology is what the sink declares at startup. Declaring is idempotent, but an
// entity that exists with other settings makes the broker refuse (PRECONDITION_FAILED),
// and the sink reports which one.
type Topology struct {
	Exchanges []Exchange `yaml:"exchanges"`
	Queues    []Queue    `yaml:"queues"`
	Bindings  []Binding  `yaml:"bindings"`
}

// Exchange is an exchange to declare.
type Exchange struct {
	Name string `yaml:"name"`
	// Type is direct, fanout, topic, headers or a plugin's type. Default: topic.
	Type string `yaml:"type"`
	// Durable exchanges survive a broker restart. Default: true.
	Durable *bool `yaml:"durable"`
	// AutoDelete removes the exchange when its last binding goes. Default: false.
	AutoDelete bool `yaml:"auto_delete"`
	// Arguments are optional x-arguments (alternate-exchange, ...).
	Arguments map[string]any `yaml:"arguments"`
}

// Queue is a queue to declare.
type Queue struct {
	Name string `yaml:"name"`
	// Durable queues survive a broker restart. Default: true.
	Durable *bool `yaml:"durable"`
	// AutoDelete removes the queue when its last consumer goes. Default: false.
	AutoDelete bool `yaml:"auto_delete"`
	// Arguments are optional x-arguments (x-queue-type: quorum, x-max-length, ...).
	Arguments map[string]any `yaml:"arguments"`
}

// Binding binds a queue to an exchange.
type Binding struct {
	Exchange string `yaml:"exchange"`
	Queue    string `yaml:"queue"`
	// RoutingKey is the binding key (topic exchanges accept * and #). Default: "".
	RoutingKey string         `yaml:"routing_key"`
	Arguments  map[string]any `yaml:"arguments"`
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	c.URL = cmp.Or(strings.TrimSpace(c.URL), DefaultURL)
	c.Name = cmp.Or(c.Name, DefaultName)
	c.ConfirmTimeout = cmp.Or(c.ConfirmTimeout, DefaultConfirmTimeout)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	if len(c.Topology.Exchanges) > 0 {
		ex := make([]Exchange, len(c.Topology.Exchanges))
		copy(ex, c.Topology.Exchanges)
		for i := range ex {
			ex[i].Type = cmp.Or(ex[i].Type, DefaultExchangeType)
		}
		c.Topology.Exchanges = ex
	}
	return c
}

// Validate reports the first invalid field of c, after defaults are applied; the error
// names the field as the YAML config spells it.
func (c Config) Validate() error {
	c = c.withDefaults()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("amqp: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if err := checkURL(c.URL); err != nil {
		return fail("url", "%v", err)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fail("tls.cert_file", "cert_file and key_file must be set together")
	}
	if err := checkName(c.Exchange); err != nil {
		return fail("exchange", "%v", err)
	}
	if c.MaxMessageBytes < 0 {
		return fail("max_message_bytes", "must not be negative")
	}
	if c.ConfirmTimeout < 0 {
		return fail("confirm_timeout", "must not be negative")
	}
	if c.ConnectTimeout < 0 {
		return fail("connect_timeout", "must not be negative")
	}
	if c.Heartbeat < 0 {
		return fail("heartbeat", "must not be negative")
	}
	for i, x := range c.Topology.Exchanges {
		field := fmt.Sprintf("topology.exchanges[%d]", i)
		if x.Name == "" {
			return fail(field+".name", "is empty (the default exchange always exists)")
		}
		if strings.HasPrefix(x.Name, "amq.") {
			return fail(field+".name", "%q: names starting with amq. are reserved by the broker", x.Name)
		}
		if err := checkName(x.Name); err != nil {
			return fail(field+".name", "%v", err)
		}
	}
	for i, q := range c.Topology.Queues {
		field := fmt.Sprintf("topology.queues[%d]", i)
		if q.Name == "" {
			return fail(field+".name", "is empty; server-named queues cannot be bound from config")
		}
		if err := checkName(q.Name); err != nil {
			return fail(field+".name", "%v", err)
		}
	}
	for i, b := range c.Topology.Bindings {
		field := fmt.Sprintf("topology.bindings[%d]", i)
		if b.Exchange == "" {
			return fail(field+".exchange", "is empty; the default exchange cannot have bindings")
		}
		if b.Queue == "" {
			return fail(field+".queue", "is empty")
		}
		if len(b.RoutingKey) > 255 {
			return fail(field+".routing_key", "longer than 255 bytes")
		}
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
	case "amqp", "amqps":
	default:
		return fmt.Errorf("%s: scheme must be amqp or amqps", sink.RedactPassword(raw))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s has no host", sink.RedactPassword(raw))
	}
	return nil
}

// checkName validates an exchange or queue name: at most 255 bytes (an AMQP short
// string) and no control characters.
func checkName(name string) error {
	if len(name) > 255 {
		return errors.New("longer than 255 bytes")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", name)
		}
	}
	return nil
}

// Redacted returns c with its password replaced, and the password of its URL hidden,
// for printing.
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
		slog.String("exchange", r.Exchange),
		slog.Int("exchanges", len(r.Topology.Exchanges)),
		slog.Int("queues", len(r.Topology.Queues)),
		slog.Int("bindings", len(r.Topology.Bindings)),
		slog.Bool("tls", strings.HasPrefix(r.URL, "amqps://") || c.TLS.enabled()),
	)
}
