package sinktest

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
)

var seq struct {
	sync.Mutex
	n int
}

// NewEvent returns an event with every attribute set.
func NewEvent(typ, key string, n int) *conveyor.Event {
	seq.Lock()
	seq.n++
	seq.Unlock()
	return &conveyor.Event{
		ID: uuid.Must(uuid.NewV7()), Type: typ, Source: "sinktest", Key: key, Subject: fmt.Sprintf("s-%d", n),
		Data:      []byte(fmt.Sprintf(`{"n":%d,"text":"héllo \"quoted\""}`, n)),
		Headers:   map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "correlation-id": "corr-1"},
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

// OrderPaid returns an order.paid event of the shop example with ordering key key: a
// JSON body, a traceparent and an x-correlation-id header unique to the event.
func OrderPaid(key string) *conveyor.Event {
	return &conveyor.Event{
		ID:        uuid.Must(uuid.NewV7()),
		Type:      "order.paid",
		Source:    "/shop",
		Subject:   "order/42",
		Key:       key,
		Data:      []byte(`{"order_id":42,"total":"19.90"}`),
		CreatedAt: time.Now().Add(-time.Second).Round(time.Microsecond),
		Headers: map[string]string{
			"traceparent":      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"x-correlation-id": "c-" + uuid.NewString(),
		},
	}
}
