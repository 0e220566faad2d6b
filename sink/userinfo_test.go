package sink_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestUserinfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, password, userinfo, secret string
	}{
		{"amqp://u:p%40ss@host:5672/vh", "amqp://u:REDACTED@host:5672/vh", "amqp://u:REDACTED@host:5672/vh", "p%40ss"},
		{"redis://tok3n@host:6379", "redis://tok3n@host:6379", "redis://REDACTED@host:6379", "tok3n"},
		{"u:pw@host:4222", "u:REDACTED@host:4222", "u:REDACTED@host:4222", "pw"},
		{"nats://host:4222", "nats://host:4222", "nats://host:4222", ""},
		{"mqtt://a:b@c@host", "mqtt://a:REDACTED@host", "mqtt://a:REDACTED@host", "b@c"}, // the last "@" ends it
		{"://bad url with spaces:x@y", "://bad url with spaces:REDACTED@y", "://bad url with spaces:REDACTED@y", "x"},
	} {
		require.Equal(t, tc.password, sink.RedactPassword(tc.raw), tc.raw)
		require.Equal(t, tc.userinfo, sink.RedactUserinfo(tc.raw), tc.raw)
		require.Equal(t, tc.secret, sink.UserinfoSecret(tc.raw), tc.raw)
	}
	require.Equal(t, "", sink.URLPassword("redis://tok3n@host"))
	require.Equal(t, "", sink.URLPassword("u:pw@host"), "no scheme, no URL")
	require.Equal(t, "pw", sink.URLPassword("amqp://u:pw@host"))
}
