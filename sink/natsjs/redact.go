package natsjs

import (
	"strings"

	"github.com/conveyorhq/conveyor/sink"
)

// redactURL hides the user information of every URL in a comma-separated list: the
// password of user:password@, or the whole of token@. It does not need the URLs to
// parse.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = sink.RedactUserinfo(p)
	}
	return strings.Join(parts, ",")
}

// secrets returns the strings that must never appear in an error or a log line: the
// configured password and token and those inside the URLs, raw and URL-decoded.
func (c Config) secrets() []string {
	out := sink.AppendSecret(nil, c.Password)
	out = sink.AppendSecret(out, c.Token)
	for _, p := range strings.Split(c.URL, ",") {
		out = sink.AppendSecret(out, sink.UserinfoSecret(p))
	}
	return out
}
