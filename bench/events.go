package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
)

// The benchmark's events: "order.placed" from source "bench", about 1 KB of JSON each,
// keyed round-robin over a set of keys, ids UUIDv7 in order. Every scenario, every peer
// and every broker limit sends these same events.
const (
	eventType   = "order.placed"
	eventSource = "bench"
	natsSubject = "events." + eventType
)

// keyMode says how events are keyed.
type keyMode int

const (
	keysRoundRobin keyMode = iota // key i % keys
	keysHot                       // every event has the key "hot"
	keysNull                      // no key: unordered
)

// keyOf returns the ordering key of event i, "" for none.
func keyOf(mode keyMode, keys, i int) string {
	switch mode {
	case keysHot:
		return "hot"
	case keysNull:
		return ""
	}
	return fmt.Sprintf("k-%05d", i%keys)
}

// filler pads the payload to about 1 KB; it is the same for every event, like the
// free-text fields of a real order.
const filler = "Leave the parcel with the concierge if nobody answers; the side entrance on " +
	"Rue des Lilas is open from 8:00 to 19:00. Gift wrap the second item, no invoice in the box. "

// payload returns event i's JSON data, about 1 KB.
func payload(i int, key string) []byte {
	b := make([]byte, 0, 1100)
	b = append(b, `{"order_id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"customer":"`...)
	b = append(b, key...)
	b = append(b, `","currency":"EUR","total":"`...)
	b = strconv.AppendInt(b, int64(1000+i%9000), 10)
	b = append(b, `.50","lines":[`...)
	for l := range 5 {
		if l > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sku":"SKU-`...)
		b = strconv.AppendInt(b, int64((i+l*7919)%100000), 10)
		b = append(b, `","name":"Stoneware mug, 350 ml, glazed","qty":`...)
		b = strconv.AppendInt(b, int64(1+(i+l)%4), 10)
		b = append(b, `,"unit_price":"12.50"}`...)
	}
	b = append(b, `],"shipping":{"method":"standard","address":"12 Rue des Lilas, 75019 Paris, FR"},"note":"`...)
	b = append(b, filler...)
	b = append(b, filler...)
	b = append(b, `"}`...)
	return b
}

// event builds event i as the relay would read it from the table.
func event(id uuid.UUID, i int, key string) *conveyor.Event {
	return &conveyor.Event{ID: id, Type: eventType, Source: eventSource, Key: key, Data: payload(i, key),
		Headers: map[string]string{}, CreatedAt: time.Now()}
}
