package redisstream

import (
	"cmp"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/sink"
)

// Defaults for Config.
const (
	DefaultURL            = "redis://127.0.0.1:6379/0"
	DefaultClientName     = "conveyor"
	DefaultPoolSize       = 10
	DefaultDialTimeout    = 5 * time.Second
	DefaultCommandTimeout = 5 * time.Second
	DefaultDedupPrefix    = "conveyor:dedup:"
	// DefaultMaxMessageBytes is Redis's own default proto-max-bulk-len, used when the
	// server's value cannot be read (CONFIG GET refused) and max_message_bytes is unset.
	DefaultMaxMessageBytes = 512 << 20
)

// Config configures a Redis Streams sink. The zero value is valid: it appends to
// streams on a local Redis without authentication.
type Config struct {
	// URL is redis://[user:password@]host:port[/db], or rediss:// for TLS. Query
	// options of go-redis are accepted (?dial_timeout=3s). The password is never
	// logged. Default: redis://127.0.0.1:6379/0.
	URL string `yaml:"url"`
	// Username and Password authenticate (Redis 6 ACL user, or the requirepass
	// password alone); they override those of the URL. Default: from the URL.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB selects the logical database, overriding the URL's /db. Default: from the URL
	// (0).
	DB int `yaml:"db"`
	// TLS configures TLS; it is used when any field is set or the URL is rediss://.
	TLS TLSConfig `yaml:"tls"`
	// ClientName is the name CLIENT LIST shows for the sink's connections. Default:
	// "conveyor".
	ClientName string `yaml:"client_name"`

	// MaxLen, when positive, trims each stream to about that many entries on every
	// XADD (MAXLEN ~ N: Redis trims whole macro nodes, so a stream may hold a few more).
	// Default: 0 (no trimming).
	MaxLen int64 `yaml:"maxlen"`
	// MaxLenExact trims to exactly MaxLen entries (MAXLEN = N), at a higher cost.
	// Default: false.
	MaxLenExact bool `yaml:"maxlen_exact"`
	// DedupWindow, when positive, makes the sink drop an event whose id it already
	// added to the same stream within the window: each XADD runs in a Lua script that
	// also keeps a key "<dedup_prefix>{<stream>}:<event id>" for the window. Default: 0
	// (off: a re-sent event is added again; consumers drop it by its id field).
	DedupWindow time.Duration `yaml:"dedup_window"`
	// DedupPrefix starts the deduplication keys. Default: "conveyor:dedup:".
	DedupPrefix string `yaml:"dedup_prefix"`
	// MaxMessageBytes is the largest field value (the event data, mostly) the sink
	// sends; a larger event is refused as permanent. Default: the server's
	// proto-max-bulk-len, read at startup, else 512 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Streams are checked at startup and by `conveyor check`: each must be a stream or
	// not exist yet. Streams rendered from a route template need not be listed.
	// Default: none.
	Streams []string `yaml:"streams"`

	// PoolSize is the most connections the sink opens. Default: 10.
	PoolSize int `yaml:"pool_size"`
	// DialTimeout bounds each connection attempt. Default: 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// CommandTimeout bounds reading and writing one pipeline of commands. Default: 5s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
}

// TLSConfig configures TLS to the server.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs to trust. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the server's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	c.URL = cmp.Or(strings.TrimSpace(c.URL), DefaultURL)
	c.ClientName = cmp.Or(c.ClientName, DefaultClientName)
	c.DedupPrefix = cmp.Or(c.DedupPrefix, DefaultDedupPrefix)
	c.PoolSize = cmp.Or(c.PoolSize, DefaultPoolSize)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.CommandTimeout = cmp.Or(c.CommandTimeout, DefaultCommandTimeout)
	return c
}

// Validate reports the first invalid field of c, after defaults are applied; the error
// names the field as the YAML config spells it.
func (c Config) Validate() error {
	c = c.withDefaults()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("redisstream: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if _, err := redis.ParseURL(c.URL); err != nil {
		// ParseURL's errors may quote the whole URL, password included.
		return fail("url", "%s is not a valid redis:// or rediss:// URL: %v", sink.RedactUserinfo(c.URL), sink.RedactError(err, c.secrets()))
	}
	if c.DB < 0 || c.DB > 1<<20 {
		return fail("db", "must be a database number, got %d", c.DB)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fail("tls.cert_file", "cert_file and key_file must be set together")
	}
	if c.MaxLen < 0 {
		return fail("maxlen", "must not be negative")
	}
	if c.MaxLenExact && c.MaxLen == 0 {
		return fail("maxlen_exact", "set maxlen too")
	}
	if c.DedupWindow < 0 {
		return fail("dedup_window", "must not be negative")
	}
	if c.DedupWindow > 0 && c.DedupWindow < time.Millisecond {
		return fail("dedup_window", "must be at least 1ms")
	}
	if c.MaxMessageBytes < 0 {
		return fail("max_message_bytes", "must not be negative")
	}
	for _, s := range c.Streams {
		if s == "" {
			return fail("streams", "a stream name is empty")
		}
	}
	if c.PoolSize < 1 {
		return fail("pool_size", "must be at least 1, got %d", c.PoolSize)
	}
	if c.DialTimeout < 0 {
		return fail("dial_timeout", "must not be negative")
	}
	if c.CommandTimeout < 0 {
		return fail("command_timeout", "must not be negative")
	}
	return nil
}

// Redacted returns c with its password and the password of its URL hidden, for
// printing.
func (c Config) Redacted() Config {
	if c.Password != "" {
		c.Password = sink.Redacted
	}
	c.URL = sink.RedactUserinfo(c.URL)
	return c
}

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("url", r.URL),
		slog.Int("db", r.DB),
		slog.Bool("auth", c.Password != "" || strings.Contains(c.URL, "@")),
		slog.Bool("tls", c.TLS.enabled() || strings.HasPrefix(c.URL, "rediss://")),
		slog.Int64("maxlen", r.MaxLen),
		slog.Duration("dedup_window", r.DedupWindow),
	)
}
