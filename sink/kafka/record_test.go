package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/kafka"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestRecordMapping(t *testing.T) {
	t.Parallel()
	ev := sinktest.OrderPaid("customer-7")
	ev.Headers["ce_id"] = "spoofed" // an extra header never replaces an attribute
	r, err := kafka.Record(&sink.Message{Event: ev, Destination: "orders.v1", Route: "r"})
	require.NoError(t, err)
	require.Equal(t, "orders.v1", r.Topic)
	require.Equal(t, []byte("customer-7"), r.Key)
	require.Equal(t, ev.Data, r.Value)
	require.True(t, r.Timestamp.IsZero(), "the producer stamps the record; ce_time carries the event time")

	var names []string
	h := map[string]string{}
	for _, rh := range r.Headers {
		names = append(names, rh.Key)
		h[rh.Key] = string(rh.Value)
	}
	require.IsIncreasing(t, names, "headers are sorted, so records are reproducible")
	require.Equal(t, cloudevents.KafkaHeaders(ev), h)
	require.Equal(t, ev.ID.String(), h["ce_id"])
	require.Equal(t, "1.0", h["ce_specversion"])
	require.Equal(t, "application/json", h["content-type"])
	require.Equal(t, ev.Headers["traceparent"], h["traceparent"], "W3C trace context for ordinary propagators")
	require.Equal(t, ev.Headers["traceparent"], h["ce_traceparent"])
	require.Equal(t, ev.Headers["x-correlation-id"], h["x-correlation-id"])
	require.NotContains(t, h, "Nats-Msg-Id")

	a, err := cloudevents.ParseKafka(h)
	require.NoError(t, err)
	require.Equal(t, ev.ID.String(), a.ID)
	require.Equal(t, ev.Type, a.Type)
	require.True(t, ev.CreatedAt.Equal(a.Time))
}

func TestRecordWithoutKeyHasNilKey(t *testing.T) {
	t.Parallel()
	r, err := kafka.Record(&sink.Message{Event: sinktest.OrderPaid(""), Destination: "t"})
	require.NoError(t, err)
	require.Nil(t, r.Key, "an unordered event spreads over partitions")
}

func TestRecordRefusesBadMessages(t *testing.T) {
	t.Parallel()
	_, err := kafka.Record(&sink.Message{Destination: "t"})
	require.Equal(t, sink.KindPermanent, sink.KindOf(err))
	for _, dest := range []string{"", "a b", "orders/paid", "ü", "..", string(make([]byte, 250))} {
		_, err := kafka.Record(&sink.Message{Event: sinktest.OrderPaid("k"), Destination: dest, Route: "r"})
		require.Error(t, err, "%q", dest)
		require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%q", dest)
	}
}
