package config

import (
	"net/url"
	"regexp"
)

// Redacted is what secrets print as.
const Redacted = "REDACTED"

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// Redact hides the password in a URL (scheme://user:pass@host) or key=value DSN.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
			return u.String()
		}
		return s
	}
	return dsnPassword.ReplaceAllString(s, "${1}"+Redacted)
}

// Redacted returns a copy safe to print: passwords, tokens and URL credentials hidden.
func (c *Config) Redacted() *Config {
	out := *c
	out.Database.URL = Redact(c.Database.URL)
	out.Sinks = make(map[string]Sink, len(c.Sinks))
	for name, s := range c.Sinks {
		out.Sinks[name] = Sink{Type: s.Type, Config: s.Config.Redacted()}
	}
	return &out
}

// Secrets lists the secret values in c, for scrubbing logs and errors.
func (c *Config) Secrets() []string {
	var out []string
	if p := URLPassword(c.Database.URL); p != "" {
		out = append(out, p)
	}
	for _, s := range c.Sinks {
		out = append(out, s.Config.Secrets()...)
	}
	return out
}

// URLPassword returns the password of a URL with credentials, or "".
func URLPassword(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			return p
		}
	}
	return ""
}
