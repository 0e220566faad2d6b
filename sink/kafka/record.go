package kafka

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
)

// Record returns the Kafka record of m, in CloudEvents binary content mode:
//
//   - topic: m.Destination, the route's rendered destination;
//   - key: the event's ordering key (nil when it has none), so the default partitioner
//     sends every event of one key to one partition, where order holds;
//   - value: the event data, unchanged;
//   - headers: cloudevents.KafkaHeaders (ce_specversion, ce_id, ce_source, ce_type,
//     ce_subject, ce_time, content-type, ce_traceparent and traceparent, ...) and the
//     event's extra headers by their own names, sorted by name.
//
// The record's timestamp is left to the producer (the time of the produce), so topic
// retention counts from when the relay wrote it; the event's own time is ce_time.
func Record(m *sink.Message) (*kgo.Record, error) {
	if m == nil || m.Event == nil {
		return nil, sink.Permanent(errors.New("kafka: message has no event"))
	}
	if err := checkTopic(m.Destination); err != nil {
		return nil, sink.Permanent(fmt.Errorf("kafka: event %s: invalid destination for route %q: %w", m.Event.ID, m.Route, err))
	}
	h := cloudevents.KafkaHeaders(m.Event)
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	headers := make([]kgo.RecordHeader, len(names))
	for i, k := range names {
		headers[i] = kgo.RecordHeader{Key: k, Value: []byte(h[k])}
	}
	r := &kgo.Record{Topic: m.Destination, Value: m.Event.Data, Headers: headers}
	if m.Event.Key != "" {
		r.Key = []byte(m.Event.Key)
	}
	return r, nil
}

// recordSize approximates the bytes r takes in a record batch, enough to tell a record
// that alone exceeds a size limit from one that was only in a batch that did.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + 21 // length, attributes, deltas, varint lengths
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// batchOverhead is the fixed size of a record batch header (v2).
const batchOverhead = 61
