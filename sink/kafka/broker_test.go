package kafka_test

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/internal/testlog"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/kafka"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// The tests in this file run against the broker of `scripts/services.sh up kafka`
// (CONVEYOR_TEST_KAFKA_BROKERS and its SASL listener).

func sharedBrokers(t *testing.T) []string {
	t.Helper()
	return strings.Split(testdb.Require(t, EnvBrokers), ",")
}

func TestConsumerReadsRecordsAsWritten(t *testing.T) {
	t.Parallel()
	brokers := sharedBrokers(t)
	s := newSink(t, kafka.Config{Brokers: brokers, CreateTopics: &kafka.CreateTopicsConfig{Partitions: 4}, Compression: "lz4"})
	topic := uniqueTopic("roundtrip")
	var sent []*conveyor.Event
	for round := range 3 {
		evs := []*conveyor.Event{sinktest.OrderPaid("alice"), sinktest.OrderPaid("bob"), sinktest.OrderPaid("carol"), sinktest.OrderPaid("")}
		evs[3].Subject = "" // optional attribute left out
		sinktest.RequireNoErrors(t, sinktest.Publish(t, s, topic, evs...))
		sent = append(sent, evs...)
		_ = round
	}
	got := consume(t, brokers, topic, len(sent), 20*time.Second)
	require.Len(t, got, len(sent))
	byID := map[string]consumed{}
	partitionOf := map[string]int32{}
	for _, c := range got {
		byID[c.attrs.ID] = c
		if k := string(c.rec.Key); k != "" {
			if p, ok := partitionOf[k]; ok {
				require.Equal(t, p, c.rec.Partition, "key %s moved partitions", k)
			}
			partitionOf[k] = c.rec.Partition
		}
	}
	for _, ev := range sent {
		c, ok := byID[ev.ID.String()]
		require.True(t, ok, "event %s received", ev.ID)
		require.Equal(t, ev.Data, c.rec.Value)
		require.Equal(t, ev.Type, c.attrs.Type)
		require.Equal(t, ev.Source, c.attrs.Source)
		require.Equal(t, ev.Subject, c.attrs.Subject)
		require.True(t, ev.CreatedAt.Equal(c.attrs.Time))
		require.Equal(t, "application/json", c.headers["content-type"])
		require.Equal(t, ev.Headers["traceparent"], c.headers["traceparent"])
		require.Equal(t, ev.Headers["traceparent"], c.attrs.Extensions["traceparent"])
		require.Equal(t, ev.Headers["x-correlation-id"], c.headers["x-correlation-id"])
		if ev.Key == "" {
			require.Nil(t, c.rec.Key)
		} else {
			require.Equal(t, ev.Key, string(c.rec.Key))
		}
	}
}

func TestBrokerRefusesTooLargeRecordPermanently(t *testing.T) {
	t.Parallel()
	brokers := sharedBrokers(t)
	// The client would accept 4 MiB batches; the broker's message.max.bytes is 1 MiB.
	s := newSink(t, kafka.Config{Brokers: brokers, BatchMaxBytes: 4 << 20, Compression: "none",
		CreateTopics: &kafka.CreateTopicsConfig{}})
	topic := uniqueTopic("large")
	big := sinktest.OrderPaid("")
	blob := make([]byte, 1<<20)
	_, _ = rand.Read(blob)
	big.Data = fmt.Appendf(nil, `{"blob":"%x"}`, blob) // 2 MiB
	errs := sinktest.Publish(t, s, topic, big)
	require.Error(t, errs[0])
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "max.message.bytes 1048588")
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, topic, sinktest.OrderPaid("")))
}

func TestMissingTopicOnARealBrokerIsPermanent(t *testing.T) {
	t.Parallel()
	s := newSink(t, kafka.Config{Brokers: sharedBrokers(t)})
	errs := sinktest.Publish(t, s, uniqueTopic("absent"), sinktest.OrderPaid("k"))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "does not exist")
}

func TestAllowAutoTopicCreation(t *testing.T) {
	t.Parallel()
	brokers := sharedBrokers(t)
	s := newSink(t, kafka.Config{Brokers: brokers, AllowAutoTopicCreation: true})
	topic := uniqueTopic("auto")
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, topic, sinktest.OrderPaid("k")))
	require.Len(t, consume(t, brokers, topic, 1, 15*time.Second), 1)
}

func TestSASL(t *testing.T) {
	t.Parallel()
	brokers := strings.Split(testdb.Require(t, EnvSASLBrokers), ",")
	user, password := testdb.Require(t, EnvUser), testdb.Require(t, EnvPassword)
	for _, mech := range []string{kafka.MechanismPlain, kafka.MechanismSCRAMSHA256, kafka.MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			s := newSink(t, kafka.Config{Brokers: brokers, CreateTopics: &kafka.CreateTopicsConfig{},
				SASL: kafka.SASLConfig{Mechanism: mech, User: user, Password: password}})
			topic := uniqueTopic("sasl")
			sinktest.RequireNoErrors(t, sinktest.Publish(t, s, topic, sinktest.OrderPaid("k")))
			got := consume(t, brokers, topic, 1, 15*time.Second,
				kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
			require.Len(t, got, 1)
		})
		t.Run(mech+"/wrong password", func(t *testing.T) {
			t.Parallel()
			wrong := "not-the-" + password
			log, buf := testlog.New(t)
			start := time.Now()
			_, err := kafka.New(t.Context(), kafka.Config{Brokers: brokers, DialTimeout: 2 * time.Second,
				SASL: kafka.SASLConfig{Mechanism: mech, User: user, Password: wrong}}, log)
			require.Error(t, err)
			require.Less(t, time.Since(start), 15*time.Second)
			t.Logf("error: %v", err)
			require.Contains(t, err.Error(), "rejected the SASL credentials")
			require.Contains(t, err.Error(), user)
			require.NotEqual(t, sink.KindTransient, sink.KindOf(err), "bad credentials are not an outage: %v", err)
			require.NotContains(t, err.Error(), wrong)
			require.NotContains(t, err.Error(), password)
			require.NotContains(t, buf.String(), password)
		})
	}
}
