// Package cloudevents maps a conveyor.Event to CloudEvents 1.0 and back, for every
// protocol binding the relay publishes to.
//
// Binary content mode is the wire format (docs/contract.md): the event's Data is the
// message body, unchanged, and the context attributes travel in the protocol's headers,
// named as each binding says:
//
//	binding      attribute headers          datacontenttype         values
//	NATS         ce-<name>                  ce-datacontenttype      percent-encoded
//	HTTP         ce-<name>                  Content-Type            percent-encoded
//	Kafka        ce_<name>                  content-type            UTF-8, as-is
//	AMQP         cloudEvents:<name>         content-type property   UTF-8, as-is
//	MQTT v5      <name> (user properties)   Content Type property   UTF-8, as-is
//
// The attributes are specversion "1.0", id (the event's UUID in canonical form), source,
// type, subject (when set), time (CreatedAt in UTC, RFC 3339 with nanoseconds and no
// trailing zeros) and datacontenttype "application/json". The event headers
// "traceparent" and "tracestate" (any case) become the distributed-tracing extension
// attributes of the same names.
//
// Every other event header is passed through as an extra header under its own name,
// without a prefix, so consumers see what the publisher wrote. An extra header never
// replaces a header the binding sets itself (such a header is dropped), and header-based
// bindings drop names their protocol cannot carry; see each binding's function.
// Structured mode (Structured) carries the attributes only, not the extra headers.
//
// The Parse functions are the reverse mapping, for consumers and `conveyor tail`.
package cloudevents

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor"
)

const (
	// SpecVersion is the CloudEvents version every event is published as.
	SpecVersion = "1.0"
	// DataContentType is the media type of every event's data: the outbox stores JSON.
	DataContentType = "application/json"
	// StructuredContentType is the media type of a structured-mode message.
	StructuredContentType = "application/cloudevents+json; charset=utf-8"

	// ExtTraceParent and ExtTraceState are the distributed-tracing extension attributes,
	// taken from the event headers of the same names.
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

// Errors returned by the Parse functions.
var (
	// ErrNotCloudEvent means the message carries no specversion attribute at all: it was
	// not published in binary mode, or not by a CloudEvents producer.
	ErrNotCloudEvent = errors.New("cloudevents: message has no specversion attribute; not a binary-mode CloudEvent")
	// ErrInvalid is wrapped by every other parse and validation error.
	ErrInvalid = errors.New("cloudevents: invalid event")
)

// Attributes are the context attributes of one CloudEvent.
type Attributes struct {
	SpecVersion string
	ID          string
	Source      string
	Type        string
	// Subject is optional; empty means absent.
	Subject string
	// Time is optional; the zero time means absent.
	Time            time.Time
	DataContentType string
	// Extensions holds extension attributes by name (traceparent, tracestate, and any
	// other found when parsing). Nil when there are none.
	Extensions map[string]string
}

// coreNames are the attribute names with a field of their own in Attributes, plus the
// structured-mode data members; none of them can be an extension.
var coreNames = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// FromEvent returns the CloudEvents attributes of e.
func FromEvent(e *conveyor.Event) Attributes {
	a := Attributes{
		SpecVersion:     SpecVersion,
		ID:              e.ID.String(),
		Source:          e.Source,
		Type:            e.Type,
		Subject:         e.Subject,
		DataContentType: DataContentType,
	}
	if !e.CreatedAt.IsZero() {
		a.Time = e.CreatedAt.UTC()
	}
	for k, v := range e.Headers {
		switch name := strings.ToLower(k); name {
		case ExtTraceParent, ExtTraceState:
			if v == "" {
				continue
			}
			if a.Extensions == nil {
				a.Extensions = make(map[string]string, 2)
			}
			a.Extensions[name] = v
		}
	}
	return a
}

// extraHeaders returns the event headers that are not attributes, by their own names.
func extraHeaders(e *conveyor.Event) map[string]string {
	var out map[string]string
	for k, v := range e.Headers {
		switch strings.ToLower(k) {
		case ExtTraceParent, ExtTraceState:
			continue
		}
		if out == nil {
			out = make(map[string]string, len(e.Headers))
		}
		out[k] = v
	}
	return out
}

// FormatTime renders t as the time attribute is written: UTC, RFC 3339 with as many
// fractional digits as needed and no trailing zeros.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// list returns the attributes as (name, canonical string value) pairs, in the order
// bindings write them: core attributes first, then extensions sorted by name.
// datacontenttype is included; each binding decides where it goes.
func (a Attributes) list() [][2]string {
	out := make([][2]string, 0, 7+len(a.Extensions))
	add := func(name, v string) {
		if v != "" {
			out = append(out, [2]string{name, v})
		}
	}
	add("specversion", a.SpecVersion)
	add("id", a.ID)
	add("source", a.Source)
	add("type", a.Type)
	add("subject", a.Subject)
	if !a.Time.IsZero() {
		add("time", FormatTime(a.Time))
	}
	add("datacontenttype", a.DataContentType)
	for _, name := range sortedKeys(a.Extensions) {
		if !coreNames[name] {
			add(name, a.Extensions[name])
		}
	}
	return out
}

// set stores one attribute read from a message; name is lower case.
func (a *Attributes) set(name, value string) error {
	switch name {
	case "specversion":
		a.SpecVersion = value
	case "id":
		a.ID = value
	case "source":
		a.Source = value
	case "type":
		a.Type = value
	case "subject":
		a.Subject = value
	case "time":
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return fmt.Errorf("%w: time %q is not an RFC 3339 timestamp", ErrInvalid, value)
		}
		a.Time = t.UTC()
	case "datacontenttype":
		a.DataContentType = value
	case "dataschema", "data", "data_base64":
		// Not produced by conveyor; dataschema is accepted and ignored.
	default:
		if a.Extensions == nil {
			a.Extensions = make(map[string]string)
		}
		a.Extensions[name] = value
	}
	return nil
}

// Validate reports whether a is a valid CloudEvents 1.0 event for conveyor: specversion
// "1.0" and non-empty id, source and type.
func (a Attributes) Validate() error {
	if a.SpecVersion == "" {
		return ErrNotCloudEvent
	}
	if a.SpecVersion != SpecVersion {
		return fmt.Errorf("%w: specversion %q is not supported, want %q", ErrInvalid, a.SpecVersion, SpecVersion)
	}
	for _, r := range []struct{ name, v string }{{"id", a.ID}, {"source", a.Source}, {"type", a.Type}} {
		if r.v == "" {
			return fmt.Errorf("%w: required attribute %s is missing", ErrInvalid, r.name)
		}
	}
	return nil
}

// fromPairs builds and validates attributes from (name, value) pairs already stripped
// of their binding prefix.
func fromPairs(pairs map[string]string) (Attributes, error) {
	var a Attributes
	for _, name := range sortedKeys(pairs) {
		if err := a.set(name, pairs[name]); err != nil {
			return Attributes{}, err
		}
	}
	if err := a.Validate(); err != nil {
		return Attributes{}, err
	}
	return a, nil
}
