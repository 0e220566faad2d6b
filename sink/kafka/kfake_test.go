package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/kafka"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// The tests in this file run against kfake, franz-go's in-process fake cluster: fast,
// and able to make a broker answer with any error code.

func newFake(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func fakeConfig(c *kfake.Cluster) kafka.Config {
	return kafka.Config{Brokers: c.ListenAddrs(), DeliveryTimeout: 2 * time.Second, DialTimeout: time.Second}
}

// answerProduce makes the cluster answer produce requests with code, times times.
func answerProduce(c *kfake.Cluster, code int16, times int) {
	var n atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if int(n.Add(1)) < times {
			c.KeepControl()
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

func TestKeyedEventsShareAPartition(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(6, "orders"))
	s := newSink(t, fakeConfig(c))
	keys := []string{"customer-1", "customer-2", "customer-3"}
	for round := range 5 {
		var evs []*conveyor.Event
		for _, k := range keys { // one event per key per call, as the relay does
			evs = append(evs, sinktest.OrderPaid(k))
		}
		evs = append(evs, sinktest.OrderPaid("")) // unordered
		sinktest.RequireNoErrors(t, sinktest.Publish(t, s, "orders", evs...))
		_ = round
	}
	got := consume(t, c.ListenAddrs(), "orders", 20, 10*time.Second)
	require.Len(t, got, 20)
	partitionOf := map[string]int32{}
	order := map[string][]string{}
	for _, r := range got {
		if r.rec.Key == nil {
			continue
		}
		k := string(r.rec.Key)
		if p, ok := partitionOf[k]; ok {
			require.Equal(t, p, r.rec.Partition, "key %s moved partitions", k)
		}
		partitionOf[k] = r.rec.Partition
		order[k] = append(order[k], r.attrs.ID)
	}
	require.Len(t, partitionOf, 3)
	var unkeyed int
	for _, r := range got {
		if r.rec.Key == nil {
			unkeyed++
		}
	}
	require.Equal(t, 5, unkeyed, "an event without a key has a nil record key")
	for k, ids := range order {
		require.Len(t, ids, 5, k)
		for i := 1; i < len(ids); i++ {
			require.Less(t, ids[i-1], ids[i], "UUIDv7 ids of key %s out of order", k)
		}
	}
}

func TestProduceErrorsAreClassified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  *kerr.Error
		want sink.Kind
		says string
	}{
		{"not enough replicas", kerr.NotEnoughReplicas, sink.KindTransient, "timed out"},
		{"leader not available", kerr.LeaderNotAvailable, sink.KindTransient, "timed out"},
		{"request timed out", kerr.RequestTimedOut, sink.KindTransient, "timed out"},
		{"topic authorization", kerr.TopicAuthorizationFailed, sink.KindPermanent, "grant the client WRITE"},
		{"invalid record", kerr.InvalidRecord, sink.KindPermanent, "refused the record"},
		{"invalid topic", kerr.InvalidTopicException, sink.KindPermanent, "fix the route's destination"},
		{"small record in a too-large batch", kerr.MessageTooLarge, sink.KindMessage, "set batch_max_bytes to at most"},
		{"unknown server error", kerr.UnknownServerError, sink.KindMessage, "UNKNOWN_SERVER_ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFake(t, kfake.SeedTopics(1, "t"))
			s := newSink(t, fakeConfig(c))
			answerProduce(c, tc.err.Code, 1000)
			start := time.Now()
			errs := sinktest.Publish(t, s, "t", sinktest.OrderPaid("k"))
			require.Error(t, errs[0])
			require.Equal(t, tc.want, sink.KindOf(errs[0]), "%v", errs[0])
			require.Contains(t, errs[0].Error(), tc.says)
			require.Less(t, time.Since(start), 10*time.Second, "a failing produce must end within the delivery timeout")
		})
	}
}

func TestTooLargeForTheClientIsPermanent(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(1, "t"))
	cfg := fakeConfig(c)
	cfg.BatchMaxBytes = 64 * 1024
	s := newSink(t, cfg)
	big := sinktest.OrderPaid("")
	big.Data = fmt.Appendf(nil, `{"blob":%q}`, make([]byte, 70*1024))
	errs := sinktest.Publish(t, s, "t", big, sinktest.OrderPaid("a"))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "batch_max_bytes (65536)")
	require.NoError(t, errs[1], "the other message of the call is unaffected")
}

func TestMissingTopicIsPermanent(t *testing.T) {
	t.Parallel()
	c := newFake(t)
	s := newSink(t, fakeConfig(c))
	errs := sinktest.Publish(t, s, "no-such-topic", sinktest.OrderPaid("k"))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), `topic "no-such-topic" does not exist`)
	require.Contains(t, errs[0].Error(), "create_topics")
}

func TestCreateTopics(t *testing.T) {
	t.Parallel()
	c := newFake(t)
	cfg := fakeConfig(c)
	cfg.CreateTopics = &kafka.CreateTopicsConfig{Partitions: 4, ReplicationFactor: 1}
	cfg.Topics = []string{"listed"}
	s := newSink(t, cfg) // creates "listed" at startup
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, "rendered.on.the.fly", sinktest.OrderPaid("k")))
	require.NoError(t, s.Check(t.Context()))

	admin := kgoClient(t, c)
	for _, topic := range []string{"listed", "rendered.on.the.fly"} {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(t.Context(), admin)
		require.NoError(t, err)
		require.Len(t, resp.Topics, 1)
		require.Zero(t, resp.Topics[0].ErrorCode, topic)
		require.Len(t, resp.Topics[0].Partitions, 4, topic)
	}
}

func TestCheckReportsMissingTopic(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(1, "present"))
	cfg := fakeConfig(c)
	cfg.Topics = []string{"present", "absent"}
	_, err := kafka.New(t.Context(), cfg, nil)
	require.ErrorContains(t, err, `topic "absent" does not exist`)
	require.ErrorContains(t, err, "create_topics")
	require.NotEqual(t, sink.KindTransient, sink.KindOf(err))
}

func TestUnreachableBrokerIsTransient(t *testing.T) {
	t.Parallel()
	cfg := kafka.Config{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))}, DialTimeout: 500 * time.Millisecond}
	start := time.Now()
	_, err := kafka.New(t.Context(), cfg, nil)
	require.Error(t, err)
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "cannot reach a Kafka broker")
	require.Less(t, time.Since(start), 15*time.Second)
}

func TestOutageIsTransientWithinTheDeliveryTimeout(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(1, "t"))
	s := newSink(t, fakeConfig(c))
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, "t", sinktest.OrderPaid("k")))
	c.Close()
	start := time.Now()
	errs := sinktest.Publish(t, s, "t", sinktest.OrderPaid("k"), sinktest.OrderPaid("j"))
	for _, err := range errs {
		require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	}
	require.Less(t, time.Since(start), 8*time.Second, "delivery_timeout is 2s")
}

func TestPublishReturnsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(1, "t"))
	cfg := fakeConfig(c)
	cfg.DeliveryTimeout = time.Minute
	s := newSink(t, cfg)
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, "t", sinktest.OrderPaid("k")))
	// The broker swallows produce requests and never answers.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	errs := s.Publish(ctx, sinktest.Messages("t", sinktest.OrderPaid("k")))
	require.Less(t, time.Since(start), 3*time.Second)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]), "%v", errs[0])
	require.True(t, errors.Is(errs[0], context.DeadlineExceeded), "%v", errs[0])
	c.Close() // let the client give up its in-flight request before Close
}

func TestPublishAfterCloseIsTransient(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(1, "t"))
	s, err := kafka.New(t.Context(), fakeConfig(c), nil)
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	require.NoError(t, s.Close(t.Context()))
	errs := s.Publish(t.Context(), sinktest.Messages("t", sinktest.OrderPaid("k")))
	require.ErrorIs(t, errs[0], kafka.ErrClosed)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]))
}

func TestInvalidDestinationIsPermanent(t *testing.T) {
	t.Parallel()
	c := newFake(t, kfake.SeedTopics(1, "t"))
	s := newSink(t, fakeConfig(c))
	errs := sinktest.Publish(t, s, "orders/{bad}", sinktest.OrderPaid("k"))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "invalid destination")
}

func kgoClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func TestOutageWhileCreatingTopicsIsTransientAndBounded(t *testing.T) {
	t.Parallel()
	c := newFake(t)
	cfg := fakeConfig(c)
	cfg.CreateTopics = &kafka.CreateTopicsConfig{}
	s := newSink(t, cfg)
	c.Close()
	start := time.Now()
	errs := sinktest.Publish(t, s, "new-topic", sinktest.OrderPaid("a"), sinktest.OrderPaid("b"), sinktest.OrderPaid("c"))
	for _, err := range errs {
		require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	}
	require.Less(t, time.Since(start), 8*time.Second, "one bounded lookup per topic and call (delivery_timeout 2s)")
}
