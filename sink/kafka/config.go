package kafka

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/sink"
)

// Defaults for Config.
const (
	DefaultBroker             = "127.0.0.1:9092"
	DefaultClientID           = "conveyor"
	DefaultCompression        = "snappy"
	DefaultLinger             = 5 * time.Millisecond
	DefaultBatchMaxBytes      = 1_000_012 // franz-go's default: below the broker's 1048588
	DefaultMaxBufferedRecords = 10_000
	DefaultDeliveryTimeout    = 10 * time.Second
	DefaultRequestTimeout     = 10 * time.Second
	DefaultDialTimeout        = 5 * time.Second
)

// SASL mechanisms.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Config configures a Kafka sink. The zero value is valid: it produces to a broker on
// 127.0.0.1:9092 without authentication.
//
// The producer is always idempotent with acks=all: the broker drops a retried batch it
// already wrote, and records of one partition keep their order across retries.
type Config struct {
	// Brokers are the seed brokers, host:port. Default: ["127.0.0.1:9092"].
	Brokers []string `yaml:"brokers"`
	// ClientID is the client id the brokers log and quota by. Default: "conveyor".
	ClientID string `yaml:"client_id"`

	// SASL authenticates with a mechanism and a user. Default: none.
	SASL SASLConfig `yaml:"sasl"`
	// TLS configures TLS to the brokers. Default: plaintext.
	TLS TLSConfig `yaml:"tls"`

	// Compression is the batch codec: none, gzip, snappy, lz4 or zstd. Default: snappy
	// (cheap on CPU and good on JSON).
	Compression string `yaml:"compression"`
	// Linger is how long a partition waits for more records before it sends a batch;
	// a few milliseconds buy much larger batches under load. Default: 5ms.
	Linger time.Duration `yaml:"linger"`
	// BatchMaxBytes caps one record batch (before compression). Keep it at or below the
	// broker's message.max.bytes and the topics' max.message.bytes. A single record
	// larger than this is refused as permanent. Default: 1000012.
	BatchMaxBytes int `yaml:"batch_max_bytes"`
	// MaxBufferedRecords bounds the records produced and not yet acknowledged, across
	// all Publish calls; a publish waits for room. Default: 10000.
	MaxBufferedRecords int `yaml:"max_buffered_records"`
	// DeliveryTimeout bounds how long a record may wait for its acknowledgement,
	// retries included, when it is safe to give up (the idempotent producer never
	// abandons a request the broker may have written). During an outage publishes fail
	// after this long and the relay opens its circuit. Default: 10s.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
	// RequestTimeout is the broker-side timeout of one produce request (the time it may
	// wait for the in-sync replicas). Default: 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// DialTimeout bounds each connection attempt. Default: 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`

	// AllowAutoTopicCreation asks the broker to create a missing topic on first use,
	// with the broker's defaults (it must have auto.create.topics.enable=true). Prefer
	// CreateTopics, which chooses the partitions and replication. Default: false.
	AllowAutoTopicCreation bool `yaml:"allow_auto_topic_creation"`
	// CreateTopics, when set, creates each topic the sink is about to produce to (and
	// every topic in Topics) if it is missing. Default: unset (topics must exist).
	CreateTopics *CreateTopicsConfig `yaml:"create_topics"`
	// Topics are checked (created with CreateTopics) at startup and by `conveyor
	// check`. Topics rendered from a route template need not be listed. Default: none.
	Topics []string `yaml:"topics"`
}

// SASLConfig is the `sasl` block.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	// PasswordFile reads Password from a file (Kubernetes and Docker secrets); a
	// trailing newline is dropped.
	PasswordFile string `yaml:"password_file,omitempty"`
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on with the system roots; setting any other field turns it on
	// too. Default: false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs to trust. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the brokers' certificates. Default:
	// each broker's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLSConfig) enabled() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// CreateTopicsConfig is the `create_topics` block: how to create a missing topic.
type CreateTopicsConfig struct {
	// Partitions of a created topic; -1 takes the broker's num.partitions. Default: -1.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of a created topic; -1 takes the broker's
	// default.replication.factor. Default: -1.
	ReplicationFactor int `yaml:"replication_factor"`
	// Configs are topic configs for a created topic (min.insync.replicas,
	// retention.ms, ...). Default: none.
	Configs map[string]string `yaml:"configs"`
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	var brokers []string
	for _, b := range c.Brokers {
		for _, p := range strings.Split(b, ",") { // "a:9092,b:9092" in one entry, as env vars give it
			if p = strings.TrimSpace(p); p != "" {
				brokers = append(brokers, p)
			}
		}
	}
	if len(brokers) == 0 {
		brokers = []string{DefaultBroker}
	}
	c.Brokers = brokers
	c.ClientID = cmp.Or(c.ClientID, DefaultClientID)
	c.Compression = strings.ToLower(cmp.Or(strings.TrimSpace(c.Compression), DefaultCompression))
	c.SASL.Mechanism = strings.ToUpper(strings.TrimSpace(c.SASL.Mechanism))
	c.Linger = cmp.Or(c.Linger, DefaultLinger)
	c.BatchMaxBytes = cmp.Or(c.BatchMaxBytes, DefaultBatchMaxBytes)
	c.MaxBufferedRecords = cmp.Or(c.MaxBufferedRecords, DefaultMaxBufferedRecords)
	c.DeliveryTimeout = cmp.Or(c.DeliveryTimeout, DefaultDeliveryTimeout)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	if c.CreateTopics != nil {
		ct := *c.CreateTopics
		ct.Partitions = cmp.Or(ct.Partitions, -1)
		ct.ReplicationFactor = cmp.Or(ct.ReplicationFactor, -1)
		c.CreateTopics = &ct
	}
	return c
}

// Validate reports the first invalid field of c, after defaults are applied; the error
// names the field as the YAML config spells it.
func (c Config) Validate() error {
	c = c.withDefaults()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("kafka: %s: %s", field, fmt.Sprintf(format, args...))
	}
	for _, b := range c.Brokers {
		if strings.Contains(b, "://") || strings.Contains(b, "@") {
			return fail("brokers", "%q: give host:port, without a scheme or credentials (use sasl and tls)", redactBroker(b))
		}
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			return fail("brokers", "%q is not host:port", b)
		}
	}
	switch c.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return fail("compression", "%q: must be none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.User != "" || c.SASL.Password != "" {
			return fail("sasl.mechanism", "user or password is set but mechanism is empty; set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.SASL.User == "" {
			return fail("sasl.user", "required with mechanism %s", c.SASL.Mechanism)
		}
		if c.SASL.Password == "" {
			return fail("sasl.password", "required with mechanism %s (or set sasl.password_file)", c.SASL.Mechanism)
		}
	default:
		return fail("sasl.mechanism", "%q: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fail("tls.cert_file", "cert_file and key_file must be set together")
	}
	if c.Linger < 0 {
		return fail("linger", "must not be negative")
	}
	if c.BatchMaxBytes < 1024 || c.BatchMaxBytes > 1<<30 {
		return fail("batch_max_bytes", "must be between 1024 and 1073741824, got %d", c.BatchMaxBytes)
	}
	if c.MaxBufferedRecords < 1 {
		return fail("max_buffered_records", "must be at least 1, got %d", c.MaxBufferedRecords)
	}
	if c.DeliveryTimeout < 0 {
		return fail("delivery_timeout", "must not be negative")
	}
	if c.RequestTimeout < 0 {
		return fail("request_timeout", "must not be negative")
	}
	if c.DialTimeout < 0 {
		return fail("dial_timeout", "must not be negative")
	}
	if ct := c.CreateTopics; ct != nil {
		if ct.Partitions < -1 || ct.Partitions == 0 {
			return fail("create_topics.partitions", "must be at least 1, or -1 for the broker's default; got %d", ct.Partitions)
		}
		if ct.ReplicationFactor < -1 || ct.ReplicationFactor == 0 || ct.ReplicationFactor > 32767 {
			return fail("create_topics.replication_factor", "must be at least 1, or -1 for the broker's default; got %d", ct.ReplicationFactor)
		}
	}
	for _, t := range c.Topics {
		if err := checkTopic(t); err != nil {
			return fail("topics", "%v", err)
		}
	}
	return nil
}

// checkTopic applies Kafka's topic name rules, so a bad route destination fails before
// it reaches the broker.
func checkTopic(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("topic name is empty")
	case t == "." || t == "..":
		return fmt.Errorf("topic name %q is not allowed", t)
	case len(t) > 249:
		return fmt.Errorf("topic name %q is longer than 249 characters", t[:40]+"...")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q has %q; Kafka allows only ASCII letters, digits, '.', '_' and '-'", t, r)
		}
	}
	return nil
}

// Redacted returns c with its password hidden, for printing.
func (c Config) Redacted() Config {
	if c.SASL.Password != "" {
		c.SASL.Password = sink.Redacted
	}
	brokers := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		brokers[i] = redactBroker(b)
	}
	c.Brokers = brokers
	if c.CreateTopics != nil {
		ct := *c.CreateTopics
		c.CreateTopics = &ct
	}
	return c
}

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.Any("brokers", r.Brokers),
		slog.String("client_id", r.ClientID),
		slog.String("sasl", r.SASL.Mechanism),
		slog.Bool("tls", c.TLS.enabled()),
		slog.String("compression", r.Compression),
		slog.Duration("linger", r.Linger),
		slog.Bool("create_topics", r.CreateTopics != nil),
	)
}
