package kafka

import (
	"strings"

	"github.com/conveyorhq/conveyor/sink"
)

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
	return prefix + sink.Redacted + b[at:]
}

// secrets returns the strings that must never appear in an error or a log line: the
// SASL password, raw and URL-decoded, and user information inside broker addresses.
func (c Config) secrets() []string {
	out := sink.AppendSecret(nil, c.SASL.Password)
	for _, b := range c.Brokers {
		if at := strings.LastIndex(b, "@"); at >= 0 {
			info := b[:at]
			if _, rest, ok := strings.Cut(info, "://"); ok {
				info = rest
			}
			if _, pw, ok := strings.Cut(info, ":"); ok {
				out = sink.AppendSecret(out, pw)
			} else {
				out = sink.AppendSecret(out, info)
			}
		}
	}
	return out
}
