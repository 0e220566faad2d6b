package redisstream

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
)

// Stream entry field names. Redis has no message headers, so an event becomes one
// flat entry: the CloudEvents attributes under their own names (as in the structured
// JSON format), the extra event headers under HeaderPrefix, and the data last.
const (
	// FieldData holds the event data, the JSON document exactly as stored.
	FieldData = "data"
	// FieldPartitionKey holds the event's ordering key (the CloudEvents partitioning
	// extension), when it has one.
	FieldPartitionKey = "partitionkey"
	// HeaderPrefix starts the field of each extra event header (h:correlation-id), so a
	// header can never shadow an attribute or the data.
	HeaderPrefix = "h:"
)

// Fields returns the stream entry of e as field, value pairs in a fixed order:
// specversion, id, source, type, subject (when set), time, datacontenttype,
// partitionkey (when the event has a key), the extension attributes by name
// (traceparent, tracestate), the extra headers by name as h:<name>, then data.
func Fields(e *conveyor.Event) []string {
	a := cloudevents.FromEvent(e)
	out := make([]string, 0, 2*(10+len(e.Headers)))
	add := func(name, v string) {
		if v != "" {
			out = append(out, name, v)
		}
	}
	add("specversion", a.SpecVersion)
	add("id", a.ID)
	add("source", a.Source)
	add("type", a.Type)
	add("subject", a.Subject)
	if !a.Time.IsZero() {
		add("time", cloudevents.FormatTime(a.Time))
	}
	add("datacontenttype", a.DataContentType)
	add(FieldPartitionKey, e.Key)
	for _, name := range sortedKeys(a.Extensions) {
		add(name, a.Extensions[name])
	}
	var extra []string
	for k := range e.Headers {
		switch strings.ToLower(k) {
		case cloudevents.ExtTraceParent, cloudevents.ExtTraceState:
			continue // attributes above
		}
		extra = append(extra, k)
	}
	slices.Sort(extra)
	for _, k := range extra {
		out = append(out, HeaderPrefix+k, e.Headers[k])
	}
	return append(out, FieldData, string(e.Data))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Entry is a stream entry read back: the reverse of Fields, for consumers, tests and
// tools.
type Entry struct {
	// ID is the stream entry id (1700000000000-0), not the event id.
	ID string
	// Attributes are the CloudEvents attributes; extension attributes (traceparent,
	// tracestate, partitionkey) are in Attributes.Extensions.
	Attributes cloudevents.Attributes
	// Key is the event's ordering key (partitionkey), or "".
	Key string
	// Headers are the extra event headers, without the h: prefix.
	Headers map[string]string
	// Data is the event data.
	Data []byte
}

// ErrNotEvent means a stream entry has no specversion field: it was not written by
// this sink.
var ErrNotEvent = errors.New("redisstream: entry has no specversion field; not an event written by conveyor")

// ParseEntry reads an entry written by Fields. values are the entry's fields as
// go-redis returns them (XMessage.Values).
func ParseEntry(id string, values map[string]any) (Entry, error) {
	e := Entry{ID: id}
	str := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case []byte:
			return string(v)
		}
		return fmt.Sprint(v)
	}
	for name, raw := range values {
		v := str(raw)
		switch {
		case name == FieldData:
			e.Data = []byte(v)
		case strings.HasPrefix(name, HeaderPrefix):
			if e.Headers == nil {
				e.Headers = map[string]string{}
			}
			e.Headers[strings.TrimPrefix(name, HeaderPrefix)] = v
		case name == "specversion":
			e.Attributes.SpecVersion = v
		case name == "id":
			e.Attributes.ID = v
		case name == "source":
			e.Attributes.Source = v
		case name == "type":
			e.Attributes.Type = v
		case name == "subject":
			e.Attributes.Subject = v
		case name == "datacontenttype":
			e.Attributes.DataContentType = v
		case name == "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return Entry{}, fmt.Errorf("redisstream: entry %s: time %q is not an RFC 3339 timestamp", id, v)
			}
			e.Attributes.Time = t
		default:
			if name == FieldPartitionKey {
				e.Key = v
			}
			if e.Attributes.Extensions == nil {
				e.Attributes.Extensions = map[string]string{}
			}
			e.Attributes.Extensions[name] = v
		}
	}
	if e.Attributes.SpecVersion == "" {
		return Entry{}, fmt.Errorf("%w (entry %s)", ErrNotEvent, id)
	}
	return e, nil
}
