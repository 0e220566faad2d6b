package kafka

import (
	"net/url"
	"strings"
)

const redacted = "REDACTED"

// redactBroker hides user information someone put in a broker address by mistake
// ("user:password@host:9092"); Validate refuses such an address, but its error and the
// printed config must not show the password either.
func redactBroker(b string) string {
	at := strings.LastIndex(b, "@")
	if at < 0 {
		return b
	}
	prefix := ""
	if scheme, _, ok := strings.Cut(b, "://"); ok {
		prefix = scheme + "://"
	}
	return prefix + redacted + b[at:]
}

// secrets returns the strings that must never appear in an error or a log line: the
// SASL password, raw and URL-decoded, and user information inside broker addresses.
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
	add(c.SASL.Password)
	for _, b := range c.Brokers {
		if at := strings.LastIndex(b, "@"); at >= 0 {
			info := b[:at]
			if _, rest, ok := strings.Cut(info, "://"); ok {
				info = rest
			}
			if _, pw, ok := strings.Cut(info, ":"); ok {
				add(pw)
			} else {
				add(info)
			}
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
