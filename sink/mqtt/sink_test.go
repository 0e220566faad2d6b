package mqtt_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/mqtt"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// sharedURL is the private mosquitto of scripts/services.sh (max_packet_size 1 MiB).
func sharedURL(t *testing.T) string {
	t.Helper()
	return testdb.Require(t, envURL)
}

func TestWireMappingOnSharedBroker(t *testing.T) {
	t.Parallel()
	u := sharedURL(t)
	c := newConsumer(t, u)
	topic := c.subscribe(t, "conveyor/test/"+uuid.NewString()[:8]+"/order.paid")
	s := newSink(t, mqtt.Config{URL: u, MessageExpiry: time.Hour})
	require.NoError(t, s.Check(context.Background()))
	e := event(1)
	require.NoError(t, sinktest.Publish(t, s, topic, e)[0])
	got := c.receive(t, topic, 1, 10*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, e.ID.String(), got[0].ID)
	require.Equal(t, "order.paid", got[0].Type)
	require.Equal(t, e.Headers["traceparent"], got[0].Headers["traceparent"])
	require.Equal(t, "corr-1", got[0].Headers["correlation-id"])
	require.Equal(t, e.Data, got[0].Data)
	p := c.packets(topic)[0]
	require.Equal(t, byte(1), p.QoS)
	require.False(t, p.Retain)
	require.Equal(t, "application/json", p.Properties.ContentType)
	require.NotNil(t, p.Properties.MessageExpiry)
	require.InDelta(t, 3600, *p.Properties.MessageExpiry, 5)
	require.Equal(t, "1.0", p.Properties.User.Get("specversion"))
	require.Equal(t, e.ID.String(), p.Properties.User.Get("id"))
	require.Equal(t, "sinktest", p.Properties.User.Get("source"))
}

func TestWrongPasswordIsClearAndRedacted(t *testing.T) {
	t.Parallel()
	u := strings.Replace(sharedURL(t), testPassword, "wr0ng-pa55word", 1)
	_, err := mqtt.New(context.Background(), mqtt.Config{URL: u, ConnectTimeout: 3 * time.Second}, nil)
	require.Error(t, err)
	require.NotEqual(t, sink.KindTransient, sink.KindOf(err), "bad credentials are not an outage: %v", err)
	require.ErrorContains(t, err, "refused the credentials")
	require.NotContains(t, err.Error(), "wr0ng-pa55word")
	require.Contains(t, err.Error(), "conveyor:REDACTED@")

	// The password field overrides the URL's.
	_, err = mqtt.New(context.Background(), mqtt.Config{URL: sharedURL(t), Password: "an0ther-wrong", ConnectTimeout: 3 * time.Second}, nil)
	require.ErrorContains(t, err, "refused the credentials")
	require.NotContains(t, err.Error(), "an0ther-wrong")
	require.NotContains(t, err.Error(), testPassword)
}

func TestUnreachableIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = mqtt.New(context.Background(), mqtt.Config{URL: "mqtt://u:s3cret@" + addr, ConnectTimeout: 500 * time.Millisecond}, nil)
	require.Error(t, err)
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestRefusalsAndOutage(t *testing.T) {
	t.Parallel()
	b := newBroker(t, "max_packet_size 4096")
	s := newSink(t, mqtt.Config{URL: b.URL(), PublishTimeout: 2 * time.Second})

	// The ACL forbids it: PUBACK 0x87, permanent.
	err := sinktest.Publish(t, s, "forbidden/orders", event(1))[0]
	require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "0x87")

	// Over the broker's Maximum Packet Size: refused before sending, permanent, and the
	// connection stays up.
	big := event(2)
	big.Data = []byte(`"` + strings.Repeat("x", 5000) + `"`)
	err = sinktest.Publish(t, s, "ok/big", big)[0]
	require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "Maximum Packet Size of 4096")
	require.NoError(t, sinktest.Publish(t, s, "ok/small", event(3))[0])

	// Wildcards and empty topics are not topics to publish to.
	for _, topic := range []string{"", "a/+/b", "a/#"} {
		err = sinktest.Publish(t, s, topic, event(4))[0]
		require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%q: %v", topic, err)
	}

	// A local limit applies without the broker.
	small := newSink(t, mqtt.Config{URL: b.URL(), MaxMessageBytes: 10})
	err = sinktest.Publish(t, small, "ok/x", event(5))[0]
	require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)

	// While the broker is down publishes fail at once as outages; afterwards the sink
	// reconnects by itself.
	b.Stop(t)
	start := time.Now()
	err = sinktest.Publish(t, s, "ok/down", event(6))[0]
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.Less(t, time.Since(start), 3*time.Second)
	b.Start(t)
	require.Eventually(t, func() bool { return sinktest.Publish(t, s, "ok/up", event(7))[0] == nil }, 15*time.Second, 100*time.Millisecond)
}

func TestClosedSinkRefusesTransient(t *testing.T) {
	t.Parallel()
	s := newSink(t, mqtt.Config{URL: sharedURL(t)})
	require.NoError(t, s.Close(context.Background()))
	require.NoError(t, s.Close(context.Background()))
	err := sinktest.Publish(t, s, "conveyor/closed", event(1))[0]
	require.ErrorIs(t, err, mqtt.ErrClosed)
	require.Equal(t, sink.KindTransient, sink.KindOf(err))
}
