package amqp_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/amqp"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestUnroutableIsPermanent(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	routed := b.queue(t, "routed")
	s := newSink(t, amqp.Config{})

	// One batch: the unroutable message fails alone, the routable one is confirmed.
	good, lost := event(1), event(2)
	errs := s.Publish(context.Background(), []*sink.Message{
		{Event: good, Destination: routed},
		{Event: lost, Destination: b.exchange + "/nobody.listens"},
	})
	require.NoError(t, errs[0])
	require.Error(t, errs[1])
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[1]), "%v", errs[1])
	require.ErrorContains(t, errs[1], fmt.Sprintf("no queue bound for exchange %q routing key \"nobody.listens\"", b.exchange))
	require.ErrorContains(t, errs[1], lost.ID.String())

	// The default exchange routes by queue name; a missing queue is unroutable too.
	errs = sinktest.Publish(t, s, "/no-such-queue-"+b.exchange, event(3))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.ErrorContains(t, errs[0], `no queue bound for exchange "" (the default exchange)`)

	got := b.receive(t, routed, 1, 10*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, good.ID.String(), got[0].ID)
}

func TestMissingExchangeIsPermanentAndSparesTheBatch(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	dest := b.queue(t, "ok")
	s := newSink(t, amqp.Config{})

	var msgs []*sink.Message
	var evs []*conveyor.Event
	for i := range 10 {
		e := event(i)
		evs = append(evs, e)
		d := dest
		if i == 4 {
			d = "no-such-exchange-" + b.exchange + "/x"
		}
		msgs = append(msgs, &sink.Message{Event: e, Destination: d})
	}
	errs := s.Publish(context.Background(), msgs)
	for i, err := range errs {
		if i == 4 {
			require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
			require.ErrorContains(t, err, "does not exist")
			continue
		}
		// The broker closed the channel over message 4; the others were published
		// again on a new channel.
		require.NoError(t, err, "message %d", i)
	}
	// Messages sent before the bad one may be received twice: the broker closed the
	// channel before confirming them, so they were published again.
	got := b.receive(t, dest, 100, 3*time.Second)
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.ID] = true
	}
	for i, e := range evs {
		require.Equal(t, i != 4, ids[e.ID.String()], "message %d", i)
	}
}

func TestTooLargeLearnsTheLimit(t *testing.T) {
	t.Parallel()
	limit := maxMessage(t)
	if limit == 0 {
		t.Skip(envMaxMessage + " is not set")
	}
	b := newBroker(t)
	dest := b.queue(t, "large")
	s := newSink(t, amqp.Config{})
	big := event(1)
	big.Data = []byte(`"` + strings.Repeat("x", limit) + `"`)
	errs := sinktest.Publish(t, s, dest, big, event(2))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.ErrorContains(t, errs[0], "max_message_size")
	require.NoError(t, errs[1], "a bystander is published again")

	// Now the limit is known: refused locally, without closing the channel.
	errs = sinktest.Publish(t, s, dest, big)
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.ErrorContains(t, errs[0], fmt.Sprintf("larger than the %d bytes", limit))

	// A local limit works without the broker's help.
	s2 := newSink(t, amqp.Config{MaxMessageBytes: 10})
	errs = sinktest.Publish(t, s2, dest, event(3))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
}

func TestWrongPasswordIsClearAndRedacted(t *testing.T) {
	t.Parallel()
	u := strings.Replace(brokerURL(t), testPassword, "wr0ng-pa55word", 1)
	_, err := amqp.New(context.Background(), amqp.Config{URL: u}, nil)
	require.Error(t, err)
	require.NotEqual(t, sink.KindTransient, sink.KindOf(err), "bad credentials are not an outage: %v", err)
	require.ErrorContains(t, err, "refused the credentials")
	require.NotContains(t, err.Error(), "wr0ng-pa55word")
	require.Contains(t, err.Error(), "conveyor:REDACTED@")

	// The password field overrides the URL's.
	_, err = amqp.New(context.Background(), amqp.Config{URL: brokerURL(t), Password: "an0ther-wrong"}, nil)
	require.ErrorContains(t, err, "refused the credentials")
	require.NotContains(t, err.Error(), "an0ther-wrong")
	require.NotContains(t, err.Error(), testPassword)

	// Unknown vhost.
	u = strings.TrimSuffix(brokerURL(t), "/conveyor") + "/no-such-vhost"
	_, err = amqp.New(context.Background(), amqp.Config{URL: u}, nil)
	require.ErrorContains(t, err, "vhost")
	require.NotContains(t, err.Error(), testPassword)
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = amqp.New(context.Background(), amqp.Config{URL: "amqp://u:s3cret@" + addr + "/", ConnectTimeout: time.Second}, nil)
	require.Error(t, err)
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestTopologyDeclared(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ex := b.exchange + ".declared"
	q := b.exchange + ".declared.q"
	t.Cleanup(func() {
		b.do(t, func(ch *amqp091.Channel) error {
			_, _ = ch.QueueDelete(q, false, false, false)
			return ch.ExchangeDelete(ex, false, false)
		})
	})
	yes := true
	cfg := amqp.Config{
		Exchange: ex,
		Topology: amqp.Topology{
			Exchanges: []amqp.Exchange{{Name: ex, Durable: &yes}},
			Queues:    []amqp.Queue{{Name: q, Arguments: map[string]any{"x-queue-type": "classic", "x-max-length": 1000}}},
			Bindings:  []amqp.Binding{{Exchange: ex, Queue: q, RoutingKey: "order.#"}},
		},
	}
	s := newSink(t, cfg)
	require.NoError(t, s.Check(context.Background()))
	// "order.paid" has no "/": it is a routing key on the configured exchange.
	e := event(1)
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, "order.paid", e))
	got := b.receiveQueue(t, q, 1, 10*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, e.ID.String(), got[0].ID)

	// Declaring the queue again with other arguments is refused, naming the queue.
	cfg.Topology.Queues[0].Arguments = map[string]any{"x-max-length": 5}
	_, err := amqp.New(context.Background(), amqp.Config{URL: brokerURL(t), Topology: cfg.Topology}, nil)
	require.ErrorContains(t, err, fmt.Sprintf("declare queue %q", q))
	require.NotEqual(t, sink.KindTransient, sink.KindOf(err))

	// Check reports a missing exchange.
	s2 := newSink(t, amqp.Config{Exchange: ex + ".missing"})
	require.ErrorContains(t, s2.Check(context.Background()), "does not exist")
}

// TestReconnectAfterServerClosesConnections is not parallel: it closes every connection
// of the node.
func TestReconnectAfterServerClosesConnections(t *testing.T) {
	b := newBroker(t)
	dest := b.queue(t, "reconnect")
	s := newSink(t, amqp.Config{})
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, dest, event(1)))

	rabbitmqctl(t, "close_all_connections", "conveyor test: reconnect")
	// The first publish may see the closed connection (transient); later ones reconnect.
	deadline := time.Now().Add(15 * time.Second)
	var sent int
	for sent < 3 {
		require.True(t, time.Now().Before(deadline), "sink did not reconnect")
		errs := sinktest.Publish(t, s, dest, event(2))
		if errs[0] != nil {
			require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]), "%v", errs[0])
			time.Sleep(100 * time.Millisecond)
			continue
		}
		sent++
	}
	got := b.receive(t, dest, 4, 10*time.Second)
	require.Len(t, got, 4)
}

func TestClosedSinkRefusesTransient(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	dest := b.queue(t, "closed")
	s := newSink(t, amqp.Config{})
	require.NoError(t, s.Close(context.Background()))
	errs := sinktest.Publish(t, s, dest, event(1))
	require.ErrorIs(t, errs[0], amqp.ErrClosed)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]))
}

func TestInvalidDestinationIsPermanent(t *testing.T) {
	t.Parallel()
	s := newSink(t, amqp.Config{})
	errs := sinktest.Publish(t, s, "", event(1))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	errs = sinktest.Publish(t, s, "x/"+strings.Repeat("k", 256), event(1))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
}
