package mqtt

import "github.com/conveyorhq/conveyor/sink"

// secrets returns the strings that must never appear in an error or a log line: the
// configured password and the one inside the URL, raw and URL-decoded.
func (c Config) secrets() []string {
	return sink.AppendSecret(sink.AppendSecret(nil, c.Password), sink.URLPassword(c.URL))
}
