package redisstream

import (
	"net/url"
	"strings"
)

const redacted = "REDACTED"

// redactURL hides the password of redis://user:password@host (or the whole user
// information when it has no colon). It does not need the URL to parse.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		scheme, rest = "", u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	info := redacted
	if hasPassword {
		info = user + ":" + redacted
	}
	prefix := ""
	if ok {
		prefix = scheme + "://"
	}
	return prefix + info + rest[at:]
}

// secrets returns the strings that must never appear in an error or a log line: the
// configured password and the one inside the URL, raw and URL-decoded.
func (c Config) secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
			if u, err := url.PathUnescape(s); err == nil && u != s {
				out = append(out, u)
			}
		}
	}
	add(c.Password)
	_, rest, ok := strings.Cut(c.URL, "://")
	if !ok {
		rest = c.URL
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, pw, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			add(pw)
		} else {
			add(rest[:at])
		}
	}
	return out
}

// redactedError hides secrets in an error's message while keeping the chain for
// errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr returns err with every secret in its message replaced. Errors without a
// secret are returned unchanged.
func redactErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, redacted)
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}
