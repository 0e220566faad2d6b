package cloudevents

import (
	"fmt"
	"strings"

	"github.com/conveyorhq/conveyor"
)

// binding describes how one protocol carries a binary-mode event in string headers.
type binding struct {
	// prefix goes before each attribute name; matched case-insensitively when parsing.
	prefix string
	// contentType is the header that carries datacontenttype instead of
	// prefix+"datacontenttype"; empty when the binding has no such header (NATS) or
	// carries it outside the headers (AMQP, MQTT: see dropContentType).
	contentType string
	// dropContentType leaves datacontenttype out of the headers; the caller puts it in
	// the protocol's own content-type field.
	dropContentType bool
	// encode converts an attribute value for the wire; nil means as-is.
	encode func(string) string
	// decode reverses encode; nil means as-is.
	decode func(string) (string, error)
	// extra returns the wire value of an extra header, or false to drop it for a reason
	// of the protocol (a name it cannot carry, a name it reserves). Collisions with
	// attribute headers are handled by the caller.
	extra func(name, value string) (string, bool)
}

// reservedAttr reports whether an extra header named name would be read back as an
// attribute that conveyor controls, so it must not pass through.
func (b binding) reservedAttr(name string) bool {
	lower := strings.ToLower(name)
	if b.contentType != "" && lower == strings.ToLower(b.contentType) {
		return true
	}
	if b.prefix != "" && (lower == ExtTraceParent || lower == ExtTraceState) {
		return true
	}
	if !strings.HasPrefix(lower, strings.ToLower(b.prefix)) {
		return false
	}
	rest := lower[len(b.prefix):]
	return coreNames[rest] || rest == ExtTraceParent || rest == ExtTraceState
}

// headers renders e's attributes and extra headers.
func (b binding) headers(e *conveyor.Event) map[string]string {
	return b.render(FromEvent(e), extraHeaders(e))
}

func (b binding) render(a Attributes, extra map[string]string) map[string]string {
	h := make(map[string]string, 8+len(extra))
	for _, p := range a.list() {
		name, v := p[0], p[1]
		if name == "datacontenttype" {
			if b.dropContentType {
				continue
			}
			if b.contentType != "" {
				h[b.contentType] = v // a media type: already header-safe
				continue
			}
		}
		raw := v
		if b.encode != nil {
			v = b.encode(v)
		}
		h[b.prefix+name] = v
		// Trace context also travels under its W3C names, so a consumer's ordinary
		// OpenTelemetry propagator continues the trace without knowing CloudEvents.
		if b.prefix != "" && (name == ExtTraceParent || name == ExtTraceState) {
			h[name] = raw
		}
	}
	for k, v := range extra {
		if b.reservedAttr(k) {
			continue
		}
		if b.extra != nil {
			var ok bool
			if v, ok = b.extra(k, v); !ok {
				continue
			}
		}
		h[k] = v
	}
	return h
}

// parse reads attributes from headers; get yields every (name, value) pair.
// contentType, when non-empty, is the datacontenttype carried outside the attribute
// headers.
func (b binding) parse(each func(yield func(name, value string) error) error, contentType string) (Attributes, error) {
	pairs := make(map[string]string, 8)
	prefix := strings.ToLower(b.prefix)
	err := each(func(name, value string) error {
		lower := strings.ToLower(name)
		if b.contentType != "" && lower == strings.ToLower(b.contentType) {
			contentType = value
			return nil
		}
		if !strings.HasPrefix(lower, prefix) || len(lower) == len(prefix) {
			return nil
		}
		attr := lower[len(prefix):]
		if b.decode != nil {
			v, err := b.decode(value)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			value = v
		}
		if value == "" {
			return nil // an empty attribute is an absent one
		}
		if _, dup := pairs[attr]; dup {
			return fmt.Errorf("%w: attribute %s appears more than once", ErrInvalid, attr)
		}
		pairs[attr] = value
		return nil
	})
	if err != nil {
		return Attributes{}, err
	}
	if contentType != "" {
		pairs["datacontenttype"] = contentType
	}
	return fromPairs(pairs)
}

// eachString adapts a map of single-valued headers for binding.parse.
func eachString(h map[string]string) func(func(string, string) error) error {
	return func(yield func(string, string) error) error {
		for _, k := range sortedKeys(h) {
			if err := yield(k, h[k]); err != nil {
				return err
			}
		}
		return nil
	}
}

// eachFirst adapts a multi-valued header map (nats.Header, http.Header) for
// binding.parse, using the first value of each name.
func eachFirst(h map[string][]string) func(func(string, string) error) error {
	return func(yield func(string, string) error) error {
		for _, k := range sortedKeys(h) {
			if len(h[k]) == 0 {
				continue
			}
			if err := yield(k, h[k][0]); err != nil {
				return err
			}
		}
		return nil
	}
}
