package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/conveyorhq/conveyor/cloudevents"
)

// broker is one message broker as the benchmark uses it: where a run's messages go,
// how to count them, how the relay is configured for it, and its raw publish limit.
type broker interface {
	name() string
	// prepare empties (or creates) the destination of the next run.
	prepare(ctx context.Context) error
	// count is how many messages the destination holds.
	count(ctx context.Context) (int64, error)
	sink() sinkSpec
	// publish sends n of the benchmark's events with the client library alone, acks
	// and durability as the relay's sink uses them, and waits for every ack.
	publish(ctx context.Context, n int, mode keyMode, keys int) error
	// cleanup frees the destination.
	cleanup(ctx context.Context)
}

// ---- NATS JetStream ---------------------------------------------------------------

type natsBroker struct{ srv *natsServer }

func (b *natsBroker) name() string                             { return "nats" }
func (b *natsBroker) prepare(ctx context.Context) error        { return b.srv.resetStream(ctx) }
func (b *natsBroker) count(ctx context.Context) (int64, error) { return b.srv.count(ctx) }
func (b *natsBroker) cleanup(ctx context.Context)              { _ = b.srv.js.DeleteStream(ctx, streamName) }

func (b *natsBroker) sink() sinkSpec {
	return sinkSpec{name: "nats", block: fmt.Sprintf("    type: nats\n    url: %s\n    stream: %s", b.srv.url, streamName),
		destination: "events.{event_type}"}
}

// publish is the NATS limit: nats.go's async JetStream publish with the sink's window
// (1024 unacknowledged), the event id as Nats-Msg-Id and the same CloudEvents headers.
func (b *natsBroker) publish(ctx context.Context, n int, mode keyMode, keys int) error {
	nc, err := nats.Connect(b.srv.url, nats.Name("bench-limit"))
	if err != nil {
		return err
	}
	defer nc.Close()
	var failed atomic.Int64
	var firstErr atomic.Value
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}))
	if err != nil {
		return err
	}
	for i := range n {
		id, _ := uuid.NewV7()
		ev := event(id, i, keyOf(mode, keys, i))
		h := nats.Header{}
		for k, v := range cloudevents.NATSHeaders(ev) {
			h[k] = []string{v}
		}
		h[jetstream.MsgIDHeader] = []string{id.String()}
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: natsSubject, Header: h, Data: ev.Data},
			jetstream.WithStallWait(5*time.Second)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d publishes failed, first: %v", f, firstErr.Load())
	}
	return nil
}

// ---- Kafka ----------------------------------------------------------------------------

// kafkaPartitions is the partition count of the benchmark's topics: keys spread over them.
const kafkaPartitions = 4

type kafkaBroker struct {
	brokers []string
	adm     *kadm.Client
	cl      *kgo.Client
	topic   string
	seq     int
}

func newKafkaBroker(brokers []string) (*kafkaBroker, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	return &kafkaBroker{brokers: brokers, cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (b *kafkaBroker) name() string { return "kafka" }

// prepare creates a fresh topic: Kafka deletes topics asynchronously, so a name is never
// reused within a run.
func (b *kafkaBroker) prepare(ctx context.Context) error {
	b.cleanup(ctx)
	b.seq++
	b.topic = fmt.Sprintf("bench-%d-%d", os.Getpid(), b.seq)
	res, err := b.adm.CreateTopic(ctx, kafkaPartitions, 1, nil, b.topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", b.topic, err)
	}
	if res.Err != nil {
		return fmt.Errorf("create topic %s: %w", b.topic, res.Err)
	}
	return nil
}

func (b *kafkaBroker) count(ctx context.Context) (int64, error) {
	offs, err := b.adm.ListEndOffsets(ctx, b.topic)
	if err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

func (b *kafkaBroker) cleanup(ctx context.Context) {
	if b.topic != "" {
		_, _ = b.adm.DeleteTopics(ctx, b.topic)
		b.topic = ""
	}
}

func (b *kafkaBroker) sink() sinkSpec {
	return sinkSpec{name: "kafka", block: "    type: kafka\n    brokers: [\"${CONVEYOR_TEST_KAFKA_BROKERS}\"]", destination: b.topic}
}

// publish is the Kafka limit: franz-go with the sink's producer settings (acks=all,
// idempotent, 5 ms linger, snappy, 10k buffered records), keyed records with the
// CloudEvents headers.
func (b *kafkaBroker) publish(ctx context.Context, n int, mode keyMode, keys int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchCompression(kgo.SnappyCompression()),
		kgo.MaxBufferedRecords(10_000), kgo.ProducerBatchMaxBytes(1_000_012))
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range n {
		id, _ := uuid.NewV7()
		key := keyOf(mode, keys, i)
		ev := event(id, i, key)
		var headers []kgo.RecordHeader
		for k, v := range cloudevents.KafkaHeaders(ev) {
			headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		r := &kgo.Record{Topic: b.topic, Value: ev.Data, Headers: headers}
		if key != "" {
			r.Key = []byte(key)
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d records failed, first: %v", f, firstErr.Load())
	}
	return nil
}

// ---- RabbitMQ -------------------------------------------------------------------------

type rabbitBroker struct {
	url   string
	conn  *amqp091.Connection
	queue string
	seq   int
}

func newRabbitBroker(url string) (*rabbitBroker, error) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return nil, err
	}
	return &rabbitBroker{url: url, conn: conn}, nil
}

func (b *rabbitBroker) name() string { return "rabbitmq" }

func (b *rabbitBroker) channel() (*amqp091.Channel, error) {
	if b.conn.IsClosed() {
		conn, err := amqp091.Dial(b.url)
		if err != nil {
			return nil, err
		}
		b.conn = conn
	}
	return b.conn.Channel()
}

// prepare declares a fresh quorum queue; messages go to it through the default exchange.
// Quorum queues are RabbitMQ's durable, replicated queue type, the one it recommends for
// data that must not be lost (classic mirrored queues are deprecated), and on this machine
// also the fastest durable one: 31k persistent 1 KB messages/s with confirms against 20k
// for a version-2 classic queue and 12k for a version-1 classic queue, the 3.10 default.
func (b *rabbitBroker) prepare(ctx context.Context) error {
	b.cleanup(ctx)
	b.seq++
	b.queue = fmt.Sprintf("bench-%d-%d", os.Getpid(), b.seq)
	ch, err := b.channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(b.queue, true, false, false, false, amqp091.Table{"x-queue-type": "quorum"})
	return err
}

func (b *rabbitBroker) count(ctx context.Context) (int64, error) {
	ch, err := b.channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(b.queue, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return int64(q.Messages), nil
}

func (b *rabbitBroker) cleanup(context.Context) {
	if b.queue == "" {
		return
	}
	if ch, err := b.channel(); err == nil {
		_, _ = ch.QueueDelete(b.queue, false, false, false)
		_ = ch.Close()
	}
	b.queue = ""
}

func (b *rabbitBroker) sink() sinkSpec {
	return sinkSpec{name: "rabbitmq", block: "    type: rabbitmq\n    url: ${CONVEYOR_TEST_AMQP_URL}", destination: "/" + b.queue}
}

// publish is the RabbitMQ limit: amqp091 with publisher confirms, persistent and
// mandatory messages carrying the CloudEvents properties, 1024 unconfirmed at a time.
func (b *rabbitBroker) publish(ctx context.Context, n int, mode keyMode, keys int) error {
	ch, err := b.channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	returned := ch.NotifyReturn(make(chan amqp091.Return, 1))
	const window = 1024
	ring := make([]*amqp091.DeferredConfirmation, 0, window)
	nacks := 0
	wait := func(dc *amqp091.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			nacks++
		}
		return nil
	}
	for i := range n {
		id, _ := uuid.NewV7()
		ev := event(id, i, keyOf(mode, keys, i))
		contentType, props := cloudevents.AMQPProperties(ev)
		headers := make(amqp091.Table, len(props))
		for k, v := range props {
			headers[k] = v
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", b.queue, true, false, amqp091.Publishing{
			Headers: headers, ContentType: contentType, DeliveryMode: amqp091.Persistent, MessageId: id.String(),
			Timestamp: ev.CreatedAt.UTC(), Type: ev.Type, AppId: ev.Source, Body: ev.Data})
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		if len(ring) == window {
			if err := wait(ring[0]); err != nil {
				return err
			}
			ring = ring[1:]
		}
		ring = append(ring, dc)
	}
	for _, dc := range ring {
		if err := wait(dc); err != nil {
			return err
		}
	}
	select {
	case r := <-returned:
		return fmt.Errorf("message returned unroutable: %s", r.ReplyText)
	default:
	}
	if nacks > 0 {
		return errors.New("broker nacked messages")
	}
	return nil
}
