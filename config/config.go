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
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink"
)

// Config is the whole relay configuration.
type Config struct {
	Database  Database        `yaml:"database"`
	Relay     Relay           `yaml:"relay"`
	Retry     Retry           `yaml:"retry"`
	Sinks     map[string]Sink `yaml:"sinks"`
	Routes    []Route         `yaml:"routes"`
	Log       Log             `yaml:"log"`
	Telemetry Telemetry       `yaml:"telemetry"`
	Retention Retention       `yaml:"retention"`
}

// Database says where the outbox table lives.
type Database struct {
	// URL is postgres://user:pass@host:5432/db, mysql://user:pass@host:3306/db (MySQL 8,
	// MariaDB 10.11+; also mariadb://) or sqlite:///relative.sqlite3 (sqlite:////absolute).
	// Default sqlite:///db.sqlite3, Django's default file name.
	URL string `yaml:"url"`
	// URLFile reads URL from a file (a Kubernetes or Docker secret).
	URLFile string `yaml:"url_file"`
	// MaxConns caps the connection pool. Default 8.
	MaxConns int `yaml:"max_conns"`
	// Listen uses LISTEN/NOTIFY for wake-ups on PostgreSQL. Default true; set false
	// behind PgBouncer in transaction pooling mode (poll only). No effect on MySQL and
	// SQLite, which have no notifications: the relay polls.
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
	// PollInterval is the fallback poll period. Default 1s with LISTEN/NOTIFY, 100ms
	// without (SQLite, or database.listen: false).
	PollInterval Duration `yaml:"poll_interval"`
	// Workers is the number of concurrent claim-publish-settle loops. Default 2.
	Workers int `yaml:"workers"`
	// ClaimCooldown is the least time between two claims of one worker, unless the
	// first was full: wake-ups that come closer together share a claim. Default 5ms;
	// 0s claims on every wake-up.
	ClaimCooldown *Duration `yaml:"claim_cooldown"`
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
	// Headers match event headers by glob: every listed header must match.
	Headers map[string]string `yaml:"headers"`
	// Retry overrides the global retry policy for this route.
	Retry *Retry `yaml:"retry"`
	// OnDead is skip (default: a dead event lets its key move on) or block (it holds its
	// key until an operator retries or discards it).
	OnDead string `yaml:"on_dead"`
	// DeadLetter also publishes dead events to another destination, with the reason in
	// the conveyor-dead-reason header.
	DeadLetter *DeadLetter `yaml:"dead_letter"`
}

// DeadLetter names a sink and a destination template for dead events.
type DeadLetter struct {
	Sink        string `yaml:"sink"`
	Destination string `yaml:"destination"`
}

// Sink is one broker connection: Type selects the sink package, whose registered config
// block holds the rest of the keys (see sink.Register).
type Sink struct {
	Type   string
	Config sink.Config
}

// MarshalYAML prints the block with its type first.
func (s Sink) MarshalYAML() (any, error) {
	var n yaml.Node
	if err := n.Encode(s.Config); err != nil {
		return nil, err
	}
	n.Content = append([]*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "type"}, {Kind: yaml.ScalarNode, Value: s.Type},
	}, n.Content...)
	return &n, nil
}

// Defaults.
const (
	DefaultDatabaseURL = "sqlite:///db.sqlite3"
	DefaultSinkName    = "default"
)

// DefaultYAML is the zero-config setup: Django's default SQLite file and an in-process
// NATS JetStream server.
const DefaultYAML = `
database:
  url: sqlite:///db.sqlite3
sinks:
  default:
    type: nats
    embedded: {enabled: true}
    create_stream: true
routes:
  - {name: all, event_type: "*", sink: default, destination: "events.{event_type}"}
`

// Default is the zero-config setup used by ` + "`conveyor run`" + ` with no --config. It
// needs the nats sink registered (import sink/all).
func Default() (*Config, error) {
	return Parse([]byte(DefaultYAML))
}

// Load reads one YAML file with the process environment's overrides; see LoadFiles.
func Load(file string) (*Config, error) {
	return LoadFiles([]string{file}, nil)
}

// Parse parses YAML bytes, interpolates ${VAR} from the process environment, applies
// defaults and validates. It applies no CONVEYOR_* overrides (LoadFiles does).
func Parse(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	return fromNode(&root, os.LookupEnv, nil)
}

// fromNode decodes a parsed document: interpolation, key and type checks, strict decode,
// *_file secrets, defaults, validation.
func fromNode(root *yaml.Node, lookup func(string) (string, bool), org origins) (*Config, error) {
	if err := interpolate(root, lookup); err != nil {
		return nil, err
	}
	var raw struct {
		Database  Database             `yaml:"database"`
		Relay     Relay                `yaml:"relay"`
		Retry     Retry                `yaml:"retry"`
		Sinks     map[string]yaml.Node `yaml:"sinks"`
		Routes    []Route              `yaml:"routes"`
		Log       Log                  `yaml:"log"`
		Telemetry Telemetry            `yaml:"telemetry"`
		Retention Retention            `yaml:"retention"`
	}
	if err := checkKeys(root, reflect.TypeOf(raw), org); err != nil {
		return nil, err
	}
	if err := strictDecode(root, &raw); err != nil {
		return nil, err
	}
	c := &Config{Database: raw.Database, Relay: raw.Relay, Retry: raw.Retry, Routes: raw.Routes, Log: raw.Log, Telemetry: raw.Telemetry,
		Retention: raw.Retention, Sinks: map[string]Sink{}}
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
	if node.Kind != yaml.MappingNode {
		return Sink{}, fmt.Errorf("sinks.%s: expected a mapping with a type key", name)
	}
	typ := ""
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: node.Tag, Line: node.Line, Column: node.Column}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == "type" {
			typ = node.Content[i+1].Value
			continue
		}
		rest.Content = append(rest.Content, node.Content[i], node.Content[i+1])
	}
	supported := strings.Join(sink.Types(), ", ")
	if typ == "" {
		return Sink{}, fmt.Errorf("sinks.%s.type: required (one of: %s)", name, supported)
	}
	cfg, ok := sink.NewConfig(typ)
	if !ok {
		return Sink{}, fmt.Errorf("sinks.%s.type: unknown sink type %q (supported: %s)", name, typ, supported)
	}
	if err := strictDecode(rest, cfg); err != nil {
		return Sink{}, fmt.Errorf("sinks.%s: %w", name, err)
	}
	return Sink{Type: typ, Config: cfg}, nil
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
func interpolate(n *yaml.Node, lookup func(string) (string, bool)) error {
	if n.Kind == yaml.ScalarNode {
		var missing []string
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := envRef.FindStringSubmatch(m)
			if v, ok := lookup(sub[1]); ok && (v != "" || sub[2] == "") {
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
		if err := interpolate(c, lookup); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) readSecretFiles() error {
	return sink.ReadSecretFile("database.url", &c.Database.URL, c.Database.URLFile)
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
	r.Workers = cmp.Or(r.Workers, 2)
	if r.ClaimCooldown == nil {
		d := Duration(5 * time.Millisecond)
		r.ClaimCooldown = &d
	}
	r.ShutdownTimeout = cmp.Or(r.ShutdownTimeout, Duration(15e9))
	r.NoRoute = cmp.Or(r.NoRoute, "dead")
	c.Retry.fill(Retry{Initial: Duration(1e9), Max: Duration(300e9), MaxAttempts: 10})
	for i := range c.Routes {
		rt := &c.Routes[i]
		rt.Name = cmp.Or(rt.Name, fmt.Sprintf("route-%d", i))
		rt.EventType = cmp.Or(rt.EventType, "*")
		rt.OnDead = cmp.Or(rt.OnDead, "skip")
		if rt.Retry == nil {
			rt.Retry = &Retry{}
		}
		rt.Retry.fill(c.Retry)
	}
	for _, s := range c.Sinks {
		s.Config.Defaults()
	}
	c.Telemetry.defaults()
	c.Retention.defaults()
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
	if !slices.ContainsFunc([]string{"postgres://", "postgresql://", "mysql://", "mariadb://", "sqlite:"},
		func(p string) bool { return strings.HasPrefix(u, p) }) {
		bad("database.url", "unsupported scheme in %q; use postgres://..., mysql://... or sqlite:///path", Redact(u))
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
	if cd := c.Relay.ClaimCooldown; cd != nil && (cd.D() < 0 || cd.D() > time.Second) {
		bad("relay.claim_cooldown", "must be between 0s and 1s, got %s", *cd)
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
	c.Telemetry.validate(bad)
	c.Retention.validate(bad)
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
		for h, g := range r.Headers {
			if _, err := path.Match(g, ""); err != nil {
				bad(f+".headers."+h, "bad glob %q", g)
			}
		}
		if r.OnDead != "skip" && r.OnDead != "block" {
			bad(f+".on_dead", "must be skip or block, got %q", r.OnDead)
		}
		if dl := r.DeadLetter; dl != nil {
			if _, ok := c.Sinks[dl.Sink]; !ok {
				bad(f+".dead_letter.sink", "unknown sink %q (defined: %s)", dl.Sink, strings.Join(sinkNames(c), ", "))
			}
			if dl.Destination == "" {
				bad(f+".dead_letter.destination", "required, e.g. \"dead.{event_type}\"")
			} else if err := CheckTemplate(dl.Destination); err != nil {
				bad(f+".dead_letter.destination", "%v", err)
			}
		}
		validateRetry(f+".retry", r.Retry)
	}
	for _, name := range sinkNames(c) {
		if err := c.Sinks[name].Config.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("sinks.%s.%w", name, err))
		}
	}
	return errors.Join(errs...)
}

func sinkNames(c *Config) []string {
	var names []string
	for n := range c.Sinks {
		names = append(names, n)
	}
	slices.Sort(names)
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
