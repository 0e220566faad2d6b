package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// orderViolations reads the whole stream in order and counts, per key, first deliveries
// whose id is lower than the previous one of the key: the seeded ids follow each key's
// sequence, so any such delivery broke per-key order. The key is the payload's customer.
func orderViolations(ctx context.Context, js jetstream.JetStream, want int) (int, error) {
	c, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	last := map[string]uuid.UUID{}
	seen := map[uuid.UUID]bool{}
	violations, read := 0, 0
	deadline := time.Now().Add(2*time.Minute + time.Duration(want/5000)*time.Second)
	for read < want {
		if time.Now().After(deadline) {
			return violations, fmt.Errorf("read %d of %d messages before timing out", read, want)
		}
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return violations, err
		}
		for m := range batch.Messages() {
			read++
			id, err := uuid.Parse(m.Headers().Get(jetstream.MsgIDHeader))
			if err != nil || seen[id] {
				continue
			}
			seen[id] = true
			key := customer(m.Data())
			if prev, ok := last[key]; ok && bytes.Compare(id[:], prev[:]) < 0 {
				violations++
			}
			last[key] = id
		}
		if err := batch.Error(); err != nil && read < want {
			return violations, err
		}
	}
	return violations, nil
}

// customer extracts the "customer" value from a benchmark payload (as jsonb prints it).
func customer(data []byte) string {
	i := bytes.Index(data, []byte(`"customer"`))
	if i < 0 {
		return ""
	}
	rest := data[i+len(`"customer"`):]
	open := bytes.IndexByte(rest, '"')
	if open < 0 {
		return ""
	}
	rest = rest[open+1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}
