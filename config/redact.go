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
		if s.NATS != nil {
			n := *s.NATS
			n.URL = Redact(n.URL)
			if n.Password != "" {
				n.Password = Redacted
			}
			if n.Token != "" {
				n.Token = Redacted
			}
			s.NATS = &n
		}
		out.Sinks[name] = s
	}
	return &out
}

// Secrets lists the secret values in c, for scrubbing logs and errors.
func (c *Config) Secrets() []string {
	var out []string
	if u, err := url.Parse(c.Database.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p)
		}
	}
	for _, s := range c.Sinks {
		if n := s.NATS; n != nil {
			for _, v := range []string{n.Password, n.Token} {
				if v != "" {
					out = append(out, v)
				}
			}
			if u, err := url.Parse(n.URL); err == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && p != "" {
					out = append(out, p)
				}
			}
		}
	}
	return out
}
