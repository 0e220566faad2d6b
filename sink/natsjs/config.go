package natsjs

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
	DefaultURL            = "nats://127.0.0.1:4222"
	DefaultName           = "conveyor"
	DefaultStream         = "CONVEYOR"
	DefaultSubject        = "events.>"
	DefaultReplicas       = 1
	DefaultMaxInFlight    = 1024
	DefaultAckTimeout     = 5 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultDuplicates     = 2 * time.Minute
)

// Config configures a JetStream sink. The zero value is valid: it publishes to a local
// nats-server with the default stream, which must exist (or set CreateStream).
type Config struct {
	// URL is the server URL, or a comma-separated list of a cluster's URLs. It may hold
	// user:password@ or token@; they are never logged. Default: DefaultURL.
	URL string `yaml:"url"`
	// Name is the connection name the server shows in its monitoring. Default: "conveyor".
	Name string `yaml:"name"`

	// Credentials: set at most one of user/password, token, creds file or nkey seed file.

	// User and Password authenticate with a username and password. Default: none.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Token authenticates with a token. Default: none.
	Token string `yaml:"token"`
	// CredsFile is a decentralized-auth credentials file (JWT and nkey seed). Default: none.
	CredsFile string `yaml:"creds_file"`
	// NKeyFile is an nkey seed file. Default: none.
	NKeyFile string `yaml:"nkey_file"`

	// TLS configures TLS; it is used when any of its fields is set, or the URL scheme is
	// tls://. Default: none (the server may still require TLS, which then uses the
	// system roots).
	TLS TLSConfig `yaml:"tls"`

	// Stream is the JetStream stream the sink checks at startup (and creates when
	// CreateStream is set). Messages go to whichever stream captures their subject.
	// Default: "CONVEYOR".
	Stream string `yaml:"stream"`
	// Subjects are the stream's subjects, used when creating it. Default: ["events.>"].
	Subjects []string `yaml:"subjects"`
	// CreateStream creates the stream at startup if it is missing, and adds Subjects to
	// an existing stream that lacks them. Default: false (a missing stream is an error).
	CreateStream bool `yaml:"create_stream"`
	// Replicas is the stream's replica count when creating it. Default: 1.
	Replicas int `yaml:"replicas"`
	// Duplicates is the stream's deduplication window when creating it: a message whose
	// Nats-Msg-Id (the event id) was stored within it is acknowledged without being
	// stored again. Default: 2m, the server's default.
	Duplicates time.Duration `yaml:"duplicates"`

	// MaxInFlight bounds the messages published and not yet acknowledged, across all
	// Publish calls. Default: 1024, enough to keep a stream busy over a link with a few
	// milliseconds of round trip while holding little memory (1024 events of 1 KiB is
	// 1 MiB) and little work to redo after an outage.
	MaxInFlight int `yaml:"max_in_flight"`
	// AckTimeout is how long to wait for a message's acknowledgement; when the window is
	// full it is also how long a publish waits for a free slot. Default: 5s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// ConnectTimeout bounds each connection attempt. Default: 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// TLSConfig configures TLS to the server.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs to trust. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS.
	// Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify disables server certificate verification. For tests only.
	// Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	c.URL = cmp.Or(strings.TrimSpace(c.URL), DefaultURL)
	c.Name = cmp.Or(c.Name, DefaultName)
	c.Stream = cmp.Or(c.Stream, DefaultStream)
	if len(c.Subjects) == 0 {
		c.Subjects = []string{DefaultSubject}
	}
	c.Replicas = cmp.Or(c.Replicas, DefaultReplicas)
	c.Duplicates = cmp.Or(c.Duplicates, DefaultDuplicates)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, DefaultMaxInFlight)
	c.AckTimeout = cmp.Or(c.AckTimeout, DefaultAckTimeout)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	return c
}

// Validate reports the first invalid field of c, after defaults are applied; the error
// names the field as the YAML config spells it.
func (c Config) Validate() error {
	c = c.withDefaults()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("natsjs: %s: %s", field, fmt.Sprintf(format, args...))
	}
	for _, u := range strings.Split(c.URL, ",") {
		if err := checkURL(strings.TrimSpace(u)); err != nil {
			return fail("url", "%v", err)
		}
	}
	methods := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.CredsFile != "", c.NKeyFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		return fail("user", "set only one of user/password, token, creds_file and nkey_file")
	}
	if c.Password != "" && c.User == "" {
		return fail("user", "password is set but user is empty")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fail("tls.cert_file", "cert_file and key_file must be set together")
	}
	if err := checkStreamName(c.Stream); err != nil {
		return fail("stream", "%v", err)
	}
	for _, s := range c.Subjects {
		if err := checkSubject(s, true); err != nil {
			return fail("subjects", "%v", err)
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fail("replicas", "must be between 1 and 5, got %d", c.Replicas)
	}
	if c.Duplicates < 0 {
		return fail("duplicates", "must not be negative")
	}
	if c.MaxInFlight < 1 {
		return fail("max_in_flight", "must be at least 1, got %d", c.MaxInFlight)
	}
	if c.AckTimeout < 0 {
		return fail("ack_timeout", "must not be negative")
	}
	if c.ConnectTimeout < 0 {
		return fail("connect_timeout", "must not be negative")
	}
	return nil
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("empty server URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw // nats.go accepts host:port
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		return fmt.Errorf("%s is not a valid URL", redactURL(raw))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%s: scheme must be nats, tls, ws or wss", redactURL(raw))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s has no host", redactURL(raw))
	}
	return nil
}

func checkStreamName(name string) error {
	if strings.ContainsAny(name, " \t\r\n.*>/\\") {
		return fmt.Errorf("%q must not contain whitespace, '.', '*', '>', '/' or '\\'", name)
	}
	return nil
}

// checkSubject validates a NATS subject; wildcards are allowed only when wild is set
// (stream subjects and filters), never in a subject published to.
func checkSubject(s string, wild bool) error {
	if s == "" {
		return errors.New("subject is empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("subject %q contains whitespace", s)
	}
	tokens := strings.Split(s, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token", s)
		case tok == "*" || tok == ">":
			if !wild {
				return fmt.Errorf("subject %q has a wildcard; publish to a concrete subject", s)
			}
			if tok == ">" && i != len(tokens)-1 {
				return fmt.Errorf("subject %q: '>' must be the last token", s)
			}
		}
	}
	return nil
}

// Redacted returns c with its password and token replaced, and the user information
// of its URL hidden, for printing.
func (c Config) Redacted() Config {
	if c.Password != "" {
		c.Password = sink.Redacted
	}
	if c.Token != "" {
		c.Token = sink.Redacted
	}
	c.URL = redactURL(c.URL)
	return c
}

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("url", r.URL),
		slog.String("stream", r.Stream),
		slog.Any("subjects", r.Subjects),
		slog.Bool("create_stream", r.CreateStream),
		slog.Bool("auth", c.User != "" || c.Token != "" || c.CredsFile != "" || c.NKeyFile != ""),
		slog.Bool("tls", c.TLS.enabled()),
	)
}
