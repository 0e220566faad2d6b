package sink

import (
	"net/url"
	"strings"
)

// Redacted stands in for a secret in printed configs and in errors.
const Redacted = "REDACTED"

// AppendSecret appends s to secrets, and its URL-decoded form when that differs (a
// password taken from a URL may appear either way). An empty s is skipped.
func AppendSecret(secrets []string, s string) []string {
	if s == "" {
		return secrets
	}
	secrets = append(secrets, s)
	if u, err := url.PathUnescape(s); err == nil && u != s {
		secrets = append(secrets, u)
	}
	return secrets
}

// RedactError returns err with every secret in its message replaced by Redacted. The
// result still unwraps to err, for errors.Is and errors.As. An error without a secret
// is returned unchanged.
func RedactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, Redacted)
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// redactedError hides secrets in an error's message while keeping the chain.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
