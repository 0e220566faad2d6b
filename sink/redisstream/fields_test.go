package redisstream_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink/redisstream"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	ev := sinktest.OrderPaid("customer-7")
	ev.Headers["tracestate"] = "vendor=1"
	ev.Headers["id"] = "spoofed"   // an extra header named like an attribute
	ev.Headers["data"] = "spoofed" // or like the data
	f := redisstream.Fields(ev)
	require.Equal(t, 0, len(f)%2)
	require.Equal(t, []string{"specversion", "1.0"}, f[:2])
	require.Equal(t, []string{"data", string(ev.Data)}, f[len(f)-2:], "data comes last")

	values := map[string]any{}
	for i := 0; i < len(f); i += 2 {
		_, dup := values[f[i]]
		require.False(t, dup, "field %s written twice", f[i])
		values[f[i]] = f[i+1]
	}
	require.Equal(t, "spoofed", values["h:id"], "extra headers never shadow attributes")

	e, err := redisstream.ParseEntry("1-0", values)
	require.NoError(t, err)
	require.Equal(t, ev.ID.String(), e.Attributes.ID)
	require.Equal(t, ev.Type, e.Attributes.Type)
	require.Equal(t, ev.Source, e.Attributes.Source)
	require.Equal(t, ev.Subject, e.Attributes.Subject)
	require.True(t, ev.CreatedAt.Equal(e.Attributes.Time))
	require.Equal(t, "customer-7", e.Key)
	require.Equal(t, ev.Headers["traceparent"], e.Attributes.Extensions["traceparent"])
	require.Equal(t, "vendor=1", e.Attributes.Extensions["tracestate"])
	require.Equal(t, map[string]string{"x-correlation-id": ev.Headers["x-correlation-id"], "id": "spoofed", "data": "spoofed"}, e.Headers)
	require.Equal(t, ev.Data, e.Data)
}

func TestFieldsOmitEmptyOptionalAttributes(t *testing.T) {
	t.Parallel()
	ev := sinktest.OrderPaid("")
	ev.Subject = ""
	ev.Headers = nil
	f := redisstream.Fields(ev)
	for i := 0; i < len(f); i += 2 {
		require.NotContains(t, []string{"subject", "partitionkey", "traceparent"}, f[i])
	}
}

func TestParseEntryRefusesForeignEntries(t *testing.T) {
	t.Parallel()
	_, err := redisstream.ParseEntry("1-0", map[string]any{"foo": "bar"})
	require.ErrorIs(t, err, redisstream.ErrNotEvent)
	_, err = redisstream.ParseEntry("1-0", map[string]any{"specversion": "1.0", "time": "yesterday"})
	require.ErrorContains(t, err, "RFC 3339")
}
