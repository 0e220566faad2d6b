package webhook

import (
	"net/url"
	"strings"

	"github.com/conveyorhq/conveyor/sink"
)

// redactURL hides the password of user:password@ in a URL. It does not need the URL to
// parse. Unlike sink.RedactPassword it needs a scheme and looks only in the authority:
// a rendered destination may have an "@" in its path or query.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + "://" + user + ":" + sink.Redacted + rest[at:]
}

// urlSecret returns the password in a URL's user information, if any.
func urlSecret(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}
