package natsjs

import (
	"net/url"
	"strings"
)

const redacted = "REDACTED"

// redactURL hides the user information of every URL in a comma-separated list: the
// password of user:password@, or the whole of token@. It does not need the URL to parse.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			scheme, rest = "", p
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
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
		parts[i] = prefix + info + rest[at:]
	}
	return strings.Join(parts, ",")
}

// secrets returns the strings that must never appear in an error or a log line: the
// configured password and token and those inside the URLs, raw and URL-decoded.
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
	add(c.Token)
	for _, p := range strings.Split(c.URL, ",") {
		_, rest, ok := strings.Cut(p, "://")
		if !ok {
			rest = p
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		if _, pw, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			add(pw)
		} else {
			add(rest[:at]) // a token
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
