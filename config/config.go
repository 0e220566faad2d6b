// Package config loads the relay's YAML configuration: ${VAR} interpolation, *_file
// secrets, strict keys, defaults filled with cmp.Or, and validation errors that name the
// field. With no file at all, Default() is the embedded setup: SQLite plus an in-process
// NATS JetStream server.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the whole relay configuration.
type Config struct {
	Database Database        `yaml:"database"`
	Relay    Relay           `yaml:"relay"`
	Retry    Retry           `yaml:"retry"`
	Sinks    map[string]Sink `yaml:"sinks"`
	Routes   []Route         `yaml:"routes"`
	Log      Log             `yaml:"log"`
}

// Database says where the outbox table lives.
type Database struct {
	// URL is postgres://user:pass@host:5432/db or sqlite:///relative.sqlite3
	// (sqlite:////absolute). Default sqlite:///db.sqlite3, Django's default file name.
	URL string `yaml:"url"`
	// URLFile reads URL from a file (a Kubernetes or Docker secret).
	URLFile string `yaml:"url_file"`
	// MaxConns caps the connection pool. Default 8.
	MaxConns int `yaml:"max_conns"`
	// Listen uses LISTEN/NOTIFY for wake-ups on PostgreSQL. Default true; set false
	// behind PgBouncer in transaction pooling mode (poll only).
	Listen *bool `yaml:"listen"`
}

// Relay tunes the claim loop.
type Relay struct {
	// ID names this relay in leases and logs. Default hostname-pid.
	ID string `yaml:"id"`
	// BatchSize is the most events claimed at once. Default 500.
	BatchSize int `yaml:"batch_size"`
	// PerKey is the most consecutive events of one key claimed at once; they are still
	// published one after another. Default 20.
	PerKey int `yaml:"per_key"`
	// Lease is how long a claim holds its rows. Default 30s.
	Lease Duration `yaml:"lease"`
	// PollInterval is the fallback poll period. Default 1s (250ms without LISTEN).
	PollInterval Duration `yaml:"poll_interval"`
	// Workers is the number of concurrent claim-publish-settle loops. Default 2.
	Workers int `yaml:"workers"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM. Default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// NoRoute is what happens to an event no route matches: "dead" (default) or "block".
	NoRoute string `yaml:"no_route"`
}

// Retry is the backoff policy for message-level failures.
type Retry struct {
	// Initial is the first backoff ceiling. Default 1s.
	Initial Duration `yaml:"initial"`
	// Max caps the backoff. Default 5m.
	Max Duration `yaml:"max"`
	// MaxAttempts is the attempts before an event goes dead. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json, text or auto (text on a terminal, json otherwise). Default auto.
	Format string `yaml:"format"`
}

// Route sends matching events to a sink.
type Route struct {
	// Name labels the route in logs and metrics. Default route-N.
	Name string `yaml:"name"`
	// EventType is a glob on the event type ("order.*"). Default "*".
	EventType string `yaml:"event_type"`
	// Source is an optional glob on the event source.
	Source string `yaml:"source"`
	// Sink names an entry of sinks. Required.
	Sink string `yaml:"sink"`
	// Destination is a template: {event_type}, {source}, {key}, {subject},
	// {header.NAME}. Required.
	Destination string `yaml:"destination"`
	// Retry overrides the global retry policy for this route.
	Retry *Retry `yaml:"retry"`
}

// Sink is one broker connection; Type selects which block applies.
type Sink struct {
	// Type is the broker: nats.
	Type string
	NATS *NATS
}

// NATS configures a NATS JetStream sink.
type NATS struct {
	// URL of the server. Default nats://127.0.0.1:4222.
	URL string `yaml:"url"`
	// User and Password authenticate; PasswordFile reads the password from a file.
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Token authenticates with a token; TokenFile reads it from a file.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// CredsFile is a NATS .creds file (JWT + NKey).
	CredsFile string `yaml:"creds_file"`
	TLS       TLS    `yaml:"tls"`
	Stream    Stream `yaml:"stream"`
	// Embedded runs a NATS server inside the relay; URL is then ignored.
	Embedded Embedded `yaml:"embedded"`
	// MaxInFlight bounds unacknowledged async publishes. Default 1024.
	MaxInFlight int `yaml:"max_in_flight"`
	// AckTimeout bounds the wait for a publish ack. Default 5s.
	AckTimeout Duration `yaml:"ack_timeout"`
}

// TLS configures client TLS.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Stream names the JetStream stream that must capture the route subjects.
type Stream struct {
	// Name of the stream. Default CONVEYOR.
	Name string `yaml:"name"`
	// Subjects the stream captures when created. Default ["events.>"].
	Subjects []string `yaml:"subjects"`
	// Create creates the stream at startup when missing. Default false (true embedded).
	Create *bool `yaml:"create"`
}

// Embedded configures the in-process NATS server.
type Embedded struct {
	Enabled bool `yaml:"enabled"`
	// Host to bind. Default 127.0.0.1.
	Host string `yaml:"host"`
	// Port to bind. Default 4222.
	Port int `yaml:"port"`
	// StoreDir holds JetStream data. Default .conveyor/jetstream.
	StoreDir string `yaml:"store_dir"`
}

// Defaults.
const (
	DefaultDatabaseURL = "sqlite:///db.sqlite3"
	DefaultSinkName    = "default"
)

// Default is the zero-config setup used by `conveyor run` with no --config.
func Default() *Config {
	c := &Config{
		Database: Database{URL: DefaultDatabaseURL},
		Sinks: map[string]Sink{DefaultSinkName: {Type: "nats", NATS: &NATS{
			Embedded: Embedded{Enabled: true},
		}}},
		Routes: []Route{{Name: "all", EventType: "*", Sink: DefaultSinkName, Destination: "events.{event_type}"}},
	}
	c.ApplyDefaults()
	return c
}

// Load reads, interpolates and validates a YAML file.
func Load(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	return c, nil
}

// Parse parses YAML bytes, applies defaults and validates.
func Parse(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	if err := interpolate(&root); err != nil {
		return nil, err
	}
	var raw struct {
		Database Database             `yaml:"database"`
		Relay    Relay                `yaml:"relay"`
		Retry    Retry                `yaml:"retry"`
		Sinks    map[string]yaml.Node `yaml:"sinks"`
		Routes   []Route              `yaml:"routes"`
		Log      Log                  `yaml:"log"`
	}
	if err := strictDecode(&root, &raw); err != nil {
		return nil, err
	}
	c := &Config{Database: raw.Database, Relay: raw.Relay, Retry: raw.Retry, Routes: raw.Routes, Log: raw.Log,
		Sinks: map[string]Sink{}}
	for name, node := range raw.Sinks {
		s, err := decodeSink(name, &node)
		if err != nil {
			return nil, err
		}
		c.Sinks[name] = s
	}
	if err := c.readSecretFiles(); err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeSink(name string, node *yaml.Node) (Sink, error) {
	var head struct {
		Type string `yaml:"type"`
	}
	_ = node.Decode(&head)
	switch head.Type {
	case "nats":
		var n struct {
			Type string `yaml:"type"`
			NATS `yaml:",inline"`
		}
		if err := strictDecode(node, &n); err != nil {
			return Sink{}, fmt.Errorf("sinks.%s: %w", name, err)
		}
		return Sink{Type: "nats", NATS: &n.NATS}, nil
	case "":
		return Sink{}, fmt.Errorf("sinks.%s.type: required (one of: nats)", name)
	default:
		return Sink{}, fmt.Errorf("sinks.%s.type: unknown sink type %q (supported: nats)", name, head.Type)
	}
}

// strictDecode decodes a node rejecting unknown keys.
func strictDecode(node *yaml.Node, out any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, errEOF) {
			return nil
		}
		return err
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate replaces ${VAR} and ${VAR:-default} in scalar values. A missing variable
// without a default is an error naming it.
func interpolate(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var missing []string
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := envRef.FindStringSubmatch(m)
			if v, ok := os.LookupEnv(sub[1]); ok && (v != "" || sub[2] == "") {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			missing = append(missing, sub[1])
			return m
		})
		if len(missing) > 0 {
			return fmt.Errorf("line %d: environment variable %s is not set (use ${%s:-default} for a fallback)",
				n.Line, missing[0], missing[0])
		}
		return nil
	}
	for _, c := range n.Content {
		if err := interpolate(c); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) readSecretFiles() error {
	read := func(field string, val *string, file string) error {
		if file == "" {
			return nil
		}
		if *val != "" {
			return fmt.Errorf("%s and %s_file are both set; use one", field, field)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%s_file: %w", field, err)
		}
		*val = strings.TrimRight(string(b), "\r\n")
		return nil
	}
	if err := read("database.url", &c.Database.URL, c.Database.URLFile); err != nil {
		return err
	}
	for name, s := range c.Sinks {
		if s.NATS == nil {
			continue
		}
		p := "sinks." + name
		if err := read(p+".password", &s.NATS.Password, s.NATS.PasswordFile); err != nil {
			return err
		}
		if err := read(p+".token", &s.NATS.Token, s.NATS.TokenFile); err != nil {
			return err
		}
	}
	return nil
}

// ApplyDefaults fills every unset field with its documented default.
func (c *Config) ApplyDefaults() {
	c.Database.URL = cmp.Or(c.Database.URL, DefaultDatabaseURL)
	c.Database.MaxConns = cmp.Or(c.Database.MaxConns, 8)
	if c.Database.Listen == nil {
		t := true
		c.Database.Listen = &t
	}
	r := &c.Relay
	if r.ID == "" {
		host, _ := os.Hostname()
		r.ID = fmt.Sprintf("%s-%d", cmp.Or(host, "relay"), os.Getpid())
	}
	r.BatchSize = cmp.Or(r.BatchSize, 500)
	r.PerKey = cmp.Or(r.PerKey, 20)
	r.Lease = cmp.Or(r.Lease, Duration(30e9))
	r.PollInterval = cmp.Or(r.PollInterval, Duration(1e9))
	r.Workers = cmp.Or(r.Workers, 2)
	r.ShutdownTimeout = cmp.Or(r.ShutdownTimeout, Duration(15e9))
	r.NoRoute = cmp.Or(r.NoRoute, "dead")
	c.Retry.fill(Retry{Initial: Duration(1e9), Max: Duration(300e9), MaxAttempts: 10})
	for i := range c.Routes {
		rt := &c.Routes[i]
		rt.Name = cmp.Or(rt.Name, fmt.Sprintf("route-%d", i))
		rt.EventType = cmp.Or(rt.EventType, "*")
		if rt.Retry == nil {
			rt.Retry = &Retry{}
		}
		rt.Retry.fill(c.Retry)
	}
	for _, s := range c.Sinks {
		if n := s.NATS; n != nil {
			n.URL = cmp.Or(n.URL, "nats://127.0.0.1:4222")
			n.Stream.Name = cmp.Or(n.Stream.Name, "CONVEYOR")
			if len(n.Stream.Subjects) == 0 {
				n.Stream.Subjects = []string{"events.>"}
			}
			if n.Stream.Create == nil {
				create := n.Embedded.Enabled
				n.Stream.Create = &create
			}
			n.Embedded.Host = cmp.Or(n.Embedded.Host, "127.0.0.1")
			n.Embedded.Port = cmp.Or(n.Embedded.Port, 4222)
			n.Embedded.StoreDir = cmp.Or(n.Embedded.StoreDir, ".conveyor/jetstream")
			n.MaxInFlight = cmp.Or(n.MaxInFlight, 1024)
			n.AckTimeout = cmp.Or(n.AckTimeout, Duration(5e9))
		}
	}
	c.Log.Level = cmp.Or(c.Log.Level, "info")
	c.Log.Format = cmp.Or(c.Log.Format, "auto")
}

func (r *Retry) fill(d Retry) {
	r.Initial = cmp.Or(r.Initial, d.Initial)
	r.Max = cmp.Or(r.Max, d.Max)
	r.MaxAttempts = cmp.Or(r.MaxAttempts, d.MaxAttempts)
}

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	u := c.Database.URL
	if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") && !strings.HasPrefix(u, "sqlite:") {
		bad("database.url", "unsupported scheme in %q; use postgres://... or sqlite:///path", Redact(u))
	}
	if c.Relay.BatchSize < 1 || c.Relay.BatchSize > 10000 {
		bad("relay.batch_size", "must be between 1 and 10000, got %d", c.Relay.BatchSize)
	}
	if c.Relay.PerKey < 1 || c.Relay.PerKey > 1000 {
		bad("relay.per_key", "must be between 1 and 1000, got %d", c.Relay.PerKey)
	}
	if c.Relay.Lease.D() < 1e9 {
		bad("relay.lease", "must be at least 1s, got %s", c.Relay.Lease)
	}
	if c.Relay.Workers < 1 || c.Relay.Workers > 64 {
		bad("relay.workers", "must be between 1 and 64, got %d", c.Relay.Workers)
	}
	if c.Relay.NoRoute != "dead" && c.Relay.NoRoute != "block" {
		bad("relay.no_route", "must be dead or block, got %q", c.Relay.NoRoute)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "text":
	default:
		bad("log.format", "must be auto, json or text, got %q", c.Log.Format)
	}
	validateRetry := func(field string, r *Retry) {
		if r.MaxAttempts < 1 {
			bad(field+".max_attempts", "must be at least 1, got %d", r.MaxAttempts)
		}
		if r.Initial.D() <= 0 || r.Max.D() < r.Initial.D() {
			bad(field, "need 0 < initial <= max, got initial=%s max=%s", r.Initial, r.Max)
		}
	}
	validateRetry("retry", &c.Retry)
	if len(c.Sinks) == 0 {
		bad("sinks", "at least one sink is required")
	}
	if len(c.Routes) == 0 {
		bad("routes", "at least one route is required")
	}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if _, ok := c.Sinks[r.Sink]; !ok {
			bad(f+".sink", "unknown sink %q (defined: %s)", r.Sink, strings.Join(sinkNames(c), ", "))
		}
		if r.Destination == "" {
			bad(f+".destination", "required, e.g. \"events.{event_type}\"")
		} else if err := CheckTemplate(r.Destination); err != nil {
			bad(f+".destination", "%v", err)
		}
		if _, err := path.Match(r.EventType, ""); err != nil {
			bad(f+".event_type", "bad glob %q", r.EventType)
		}
		if _, err := path.Match(r.Source, ""); err != nil {
			bad(f+".source", "bad glob %q", r.Source)
		}
		validateRetry(f+".retry", r.Retry)
	}
	for name, s := range c.Sinks {
		if n := s.NATS; n != nil {
			f := "sinks." + name
			if !n.Embedded.Enabled && !strings.HasPrefix(n.URL, "nats://") && !strings.HasPrefix(n.URL, "tls://") {
				bad(f+".url", "must start with nats:// or tls://, got %q", Redact(n.URL))
			}
			if n.Stream.Name == "" || strings.ContainsAny(n.Stream.Name, ".*> ") {
				bad(f+".stream.name", "must be a plain name without . * > or spaces, got %q", n.Stream.Name)
			}
			if n.Embedded.Port < -1 || n.Embedded.Port > 65535 {
				bad(f+".embedded.port", "out of range: %d", n.Embedded.Port)
			}
		}
	}
	return errors.Join(errs...)
}

func sinkNames(c *Config) []string {
	var names []string
	for n := range c.Sinks {
		names = append(names, n)
	}
	return names
}

var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// CheckTemplate validates a destination template's placeholders.
func CheckTemplate(t string) error {
	for _, m := range placeholder.FindAllStringSubmatch(t, -1) {
		switch name := m[1]; {
		case name == "event_type", name == "source", name == "key", name == "subject":
		case strings.HasPrefix(name, "header.") && len(name) > len("header."):
		default:
			return fmt.Errorf("unknown placeholder {%s}; use {event_type}, {source}, {key}, {subject} or {header.NAME}", name)
		}
	}
	return nil
}
