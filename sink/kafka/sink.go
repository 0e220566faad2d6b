// Package kafka is the Apache Kafka sink: an idempotent franz-go producer with acks=all
// that writes each event as a CloudEvents binary-mode record, keyed by the event's
// ordering key so that one key's events share a partition and keep their order.
//
// Kafka deduplicates only the producer's own retries (the idempotent producer's
// sequence numbers), not a second record with the same event id: a relay that died
// after the broker acknowledged re-sends the event as a new record. Consumers drop that
// rare duplicate by the ce_id header (G4).
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/conveyorhq/conveyor/sink"
)

// ErrClosed is returned, as a transient error, for a publish after Close.
var ErrClosed = errors.New("kafka: sink is closed")

// Sink produces to Kafka. It implements sink.Sink and sink.Checker.
//
// Publish is safe for concurrent use; all calls share one producer, whose buffer holds
// at most MaxBufferedRecords unacknowledged records. Close stops new publishes, waits
// for those in flight, then closes the client.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	cl      *kgo.Client
	adm     *kadm.Client
	brokers string // for messages
	secrets []string

	topics   sync.Map // topic -> struct{}: known to exist (or created)
	limits   sync.Map // topic -> int: max.message.bytes
	createMu sync.Mutex

	gate      sink.Gate
	closeOnce sync.Once
	closeErr  error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New creates the producer and checks that a broker answers (and that Topics exist, or
// creates them with CreateTopics). A broker that cannot be reached gives an error
// classified sink.Transient; rejected credentials or TLS settings give a plain error
// that says what to change. A nil logger discards logs.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, sink.RedactError(err, cfg.secrets())
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, log: log, brokers: strings.Join(cfg.Brokers, ","), secrets: cfg.secrets()}
	opts, err := s.options()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, sink.RedactError(fmt.Errorf("kafka: %w", err), s.secrets)
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)
	if err := s.Check(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	log.Info("kafka: connected", "config", cfg)
	return s, nil
}

// options translates the config into franz-go options.
func (s *Sink) options() ([]kgo.Opt, error) {
	c := s.cfg
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence (franz-go's default) needs it
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchMaxBytes(int32(c.BatchMaxBytes)),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(c.DeliveryTimeout),
		// Let the delivery timeout and the caller's context fail a record even while a
		// request holding it is unanswered (a broker that died mid-request), so an
		// outage ends a publish in bounded time and opens the relay's circuit. The
		// producer's own retries stay deduplicated; an event the relay re-sends after
		// such a failure may be stored twice, which consumers drop by ce_id (G4).
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ProduceRequestTimeout(c.RequestTimeout),
		kgo.DialTimeout(c.DialTimeout),
		// New topics appear whenever a route renders a new destination; do not make the
		// first record to one wait out the default 5s between metadata refreshes.
		kgo.MetadataMinAge(metadataMinAge),
		kgo.WithLogger(&logger{log: s.log, secrets: s.secrets}),
	}
	switch c.Compression {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	}
	if c.AllowAutoTopicCreation {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	if m := mechanism(c.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if c.TLS.enabled() {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

func mechanism(c SASLConfig) sasl.Mechanism {
	switch c.Mechanism {
	case MechanismPlain:
		return plain.Auth{User: c.User, Pass: c.Password}.AsMechanism()
	case MechanismSCRAMSHA256:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha256Mechanism()
	case MechanismSCRAMSHA512:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	tc, err := sink.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return tc, nil
}

// Check verifies that a broker answers and that every topic in Topics exists, creating
// the missing ones when CreateTopics is set.
func (s *Sink) Check(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 2*s.cfg.DialTimeout+s.cfg.RequestTimeout)
	defer cancel()
	if err := s.cl.Ping(pctx); err != nil {
		return s.connectError(err)
	}
	for _, t := range s.cfg.Topics {
		if s.cfg.CreateTopics != nil {
			if err := s.ensureTopic(ctx, t); err != nil {
				return err
			}
			continue
		}
		exists, err := s.topicExists(ctx, t)
		switch {
		case err != nil:
			return err
		case !exists:
			return fmt.Errorf("kafka: topic %q does not exist on %s; create it (for example `kafka-topics.sh --create --topic %s`) or set create_topics",
				t, s.brokers, t)
		}
	}
	return nil
}

// Publish produces msgs asynchronously and waits for every acknowledgement (acks=all).
// The relay never passes two messages with one ordering key in one call; within a
// partition the idempotent producer keeps the order of records across its retries.
func (s *Sink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if !s.gate.Enter() {
		return slices.Repeat([]error{sink.Transient(ErrClosed)}, len(msgs))
	}
	defer s.gate.Leave()
	errs := make([]error, len(msgs))

	type result struct {
		i   int
		err error
	}
	done := make(chan result, len(msgs)) // buffered: a promise never blocks
	recs := make([]*kgo.Record, len(msgs))
	topicErrs := map[string]error{} // create_topics outcome per topic, for this call
	pending := 0
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			errs[i] = sink.Transient(fmt.Errorf("kafka: produce not started: %w", err))
			continue
		}
		r, err := Record(m)
		if err != nil {
			errs[i] = err
			continue
		}
		if n := recordSize(r) + batchOverhead; n > s.cfg.BatchMaxBytes {
			errs[i] = sink.Permanent(fmt.Errorf("kafka: event %s is about %d bytes, more than batch_max_bytes (%d); shrink the event, or raise batch_max_bytes together with the topic's max.message.bytes: %w",
				m.Event.ID, n, s.cfg.BatchMaxBytes, errTooLarge))
			continue
		}
		if s.cfg.CreateTopics != nil {
			err, seen := topicErrs[r.Topic]
			if !seen {
				// Bounded like a record, so a cluster that is down fails the publish
				// within delivery_timeout, not at the relay's deadline.
				tctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryTimeout)
				err = s.ensureTopic(tctx, r.Topic)
				cancel()
				topicErrs[r.Topic] = err
			}
			if err != nil {
				errs[i] = err
				continue
			}
		}
		recs[i] = r
		pending++
		s.cl.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- result{i, err} })
	}

	verdicts := map[string]error{} // per-topic answers, for this call
	finished := make([]bool, len(msgs))
	for pending > 0 {
		select {
		case res := <-done:
			pending--
			finished[res.i] = true
			if res.err != nil {
				errs[res.i] = s.classify(ctx, msgs[res.i], recs[res.i], res.err, verdicts)
			}
		case <-ctx.Done():
			// The producer fails these records itself once that is safe; the relay
			// must not wait for it.
			for i, r := range recs {
				if r != nil && !finished[i] {
					errs[i] = sink.Transient(fmt.Errorf("kafka: gave up waiting for the acknowledgement of event %s on topic %q: %w",
						msgs[i].Event.ID, r.Topic, ctx.Err()))
				}
			}
			return errs
		}
	}
	return errs
}

// Close stops new publishes, waits for in-flight ones to finish or ctx to end, then
// closes the client (failing whatever is still buffered). Calling it again returns the
// first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.gate.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("kafka: closing with publishes still in flight: %w", err)
		}
		s.cl.Close()
	})
	return s.closeErr
}

// Client returns the underlying franz-go client, for tools that read what the sink
// wrote (`conveyor tail`) with the same connection settings.
func (s *Sink) Client() *kgo.Client { return s.cl }

// logger adapts franz-go's logger to slog, scrubbing secrets from logged errors.
type logger struct {
	log     *slog.Logger
	secrets []string
}

func (l *logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l *logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	for i, v := range keyvals {
		if err, ok := v.(error); ok {
			keyvals[i] = sink.RedactError(err, l.secrets).Error()
		}
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}

// metadataWait bounds how long a created topic may take to show up with leaders.
const metadataWait = 10 * time.Second

// metadataMinAge is the least time between two metadata refreshes of the producer.
const metadataMinAge = 250 * time.Millisecond
