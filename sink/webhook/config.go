package webhook

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/sink"
)

// Defaults for Config.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultMaxConcurrency = 64
	DefaultMaxRedirects   = 5
	DefaultUserAgent      = "conveyor-webhook/1"
)

// Config configures a webhook sink. Each message is POSTed to its destination, the URL
// rendered by the route (or, when relative, joined to BaseURL).
type Config struct {
	// BaseURL is prepended to destinations that are not absolute URLs, so a route can
	// render only a path ("/hooks/{event_type}"). Default: none (destinations must be
	// absolute http:// or https:// URLs).
	BaseURL string `yaml:"base_url"`
	// SigningSecrets (YAML: secrets) sign every request the Standard Webhooks way: one
	// "v1,<signature>" per secret in webhook-signature, so a receiver can rotate to a new secret while the old
	// one still verifies. Each is "whsec_" followed by the base64 of 24 to 64 random
	// bytes (the "whsec_" prefix is optional). Default: none (requests are not signed).
	SigningSecrets []string `yaml:"secrets"`
	// Timeout bounds each request: connect, TLS, sending the body and reading the
	// response headers. Default: 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrency bounds the requests in flight across all Publish calls. Default: 64.
	MaxConcurrency int `yaml:"max_concurrency"`
	// Headers are added to every request. They cannot replace the CloudEvents
	// (ce-*, Content-Type) or webhook-* headers. Values of Authorization and of names
	// containing "token", "secret", "key", "auth" or "signature" are treated as secrets.
	Headers map[string]string `yaml:"headers"`
	// FollowRedirects follows up to MaxRedirects 307/308 redirects (which keep the POST
	// and its body). Default: false: a 3xx is a message-level failure naming the new
	// location, so a moved endpoint is noticed instead of silently followed.
	FollowRedirects bool `yaml:"follow_redirects"`
	// MaxRedirects bounds the redirects followed. Default: 5.
	MaxRedirects int `yaml:"max_redirects"`
	// MaxBodyBytes refuses, as a permanent error and without sending, an event whose
	// data is larger. Default: 0, no limit (the receiver's 413 is permanent too).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// UserAgent is the User-Agent header. Default: "conveyor-webhook/1".
	UserAgent string `yaml:"user_agent"`
	// TLS configures TLS for https:// URLs: private CAs and a client certificate for
	// mutual TLS. Default: the system roots, no client certificate.
	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig configures TLS to the receivers.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs to trust, instead of the system roots.
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
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.MaxConcurrency = cmp.Or(c.MaxConcurrency, DefaultMaxConcurrency)
	c.MaxRedirects = cmp.Or(c.MaxRedirects, DefaultMaxRedirects)
	c.UserAgent = cmp.Or(c.UserAgent, DefaultUserAgent)
	return c
}

// reservedHeaders are set by the sink; static headers cannot replace them.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "transfer-encoding": true,
	"connection": true, "webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
}

// Validate reports the first invalid field of c, after defaults are applied; the error
// names the field as the YAML config spells it.
func (c Config) Validate() error {
	c = c.withDefaults()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("webhook: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if c.BaseURL != "" {
		if err := checkURL(c.BaseURL); err != nil {
			return fail("base_url", "%v", err)
		}
	}
	for i, s := range c.SigningSecrets {
		if _, err := decodeSecret(s); err != nil {
			return fail(fmt.Sprintf("secrets[%d]", i), "%v", err)
		}
	}
	if c.Timeout < 0 {
		return fail("timeout", "must not be negative")
	}
	if c.MaxConcurrency < 1 {
		return fail("max_concurrency", "must be at least 1, got %d", c.MaxConcurrency)
	}
	if c.MaxRedirects < 0 {
		return fail("max_redirects", "must not be negative")
	}
	if c.MaxBodyBytes < 0 {
		return fail("max_body_bytes", "must not be negative")
	}
	for name, v := range c.Headers {
		if !validHeaderName(name) {
			return fail("headers", "%q is not a valid header name", name)
		}
		lower := strings.ToLower(name)
		if reservedHeaders[lower] || strings.HasPrefix(lower, "ce-") {
			return fail("headers", "%s is set by the sink and cannot be configured", name)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fail("headers", "the value of %s contains a line break", name)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fail("tls.cert_file", "cert_file and key_file must be set together")
	}
	return nil
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			return false
		}
	}
	return true
}

// checkURL validates an absolute http(s) URL.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		return fmt.Errorf("%s is not a valid URL", redactURL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s: scheme must be http or https", redactURL(raw))
	}
	if u.Host == "" {
		return fmt.Errorf("%s has no host", redactURL(raw))
	}
	return nil
}

// secretHeader reports whether a static header's value is a credential.
func secretHeader(name string) bool {
	lower := strings.ToLower(name)
	if lower == "authorization" || lower == "proxy-authorization" || lower == "cookie" {
		return true
	}
	for _, w := range []string{"token", "secret", "key", "auth", "signature", "password"} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// secrets lists every secret value in c.
func (c Config) secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, s := range c.SigningSecrets {
		add(s)
		add(strings.TrimPrefix(s, secretPrefix))
	}
	for name, v := range c.Headers {
		if secretHeader(name) {
			add(v)
		}
	}
	if u, err := url.Parse(c.BaseURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	return out
}

// Redacted returns c with its secrets replaced, for printing.
func (c Config) Redacted() Config {
	if len(c.SigningSecrets) > 0 {
		s := make([]string, len(c.SigningSecrets))
		for i := range s {
			s[i] = sink.Redacted
		}
		c.SigningSecrets = s
	}
	if len(c.Headers) > 0 {
		h := make(map[string]string, len(c.Headers))
		for k, v := range c.Headers {
			if secretHeader(k) {
				v = sink.Redacted
			}
			h[k] = v
		}
		c.Headers = h
	}
	c.BaseURL = redactURL(c.BaseURL)
	return c
}

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, http.CanonicalHeaderKey(k))
	}
	return slog.GroupValue(
		slog.String("base_url", r.BaseURL),
		slog.Int("secrets", len(c.SigningSecrets)),
		slog.Duration("timeout", r.Timeout),
		slog.Int("max_concurrency", r.MaxConcurrency),
		slog.Bool("follow_redirects", r.FollowRedirects),
		slog.Any("headers", names),
		slog.Bool("client_cert", c.TLS.CertFile != ""),
	)
}
