package redisstream

import "github.com/conveyorhq/conveyor/sink"

// secrets returns the strings that must never appear in an error or a log line: the
// configured password and the one inside the URL (or the whole user information when
// it has no colon), raw and URL-decoded.
func (c Config) secrets() []string {
	out := sink.AppendSecret(nil, c.Password)
	return sink.AppendSecret(out, sink.UserinfoSecret(c.URL))
}
