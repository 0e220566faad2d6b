package cloudevents

import (
	"strings"

	"github.com/conveyorhq/conveyor"
)

// natsBinding follows the NATS protocol binding (1.0.3): every attribute, datacontenttype
// included, is a "ce-" header with a percent-encoded value.
var natsBinding = binding{
	prefix: "ce-",
	encode: encodeHeaderValue,
	decode: decodeHeaderValue,
	extra: func(name, v string) (string, bool) {
		// Nats-* headers steer JetStream (Nats-Msg-Id, Nats-Rollup, Nats-TTL,
		// Nats-Expected-*): only the sink sets them, never an event's payload.
		if !isToken(name) || strings.HasPrefix(strings.ToLower(name), "nats-") {
			return "", false
		}
		return passValue(v), true
	},
}

// NATSHeaders returns the NATS message headers of e in binary content mode; the body is
// e.Data. Keys are the exact header names to set (nats.Header is case-sensitive).
//
// Extra headers pass under their own names, except: names that are not RFC 7230 tokens
// (the client rejects them), names starting with "Nats-" (reserved for JetStream
// controls), and names that would read back as a conveyor attribute (ce-id, ...).
// Values the protocol cannot carry unchanged (control characters, non-ASCII, leading or
// trailing space) are percent-encoded like attribute values.
func NATSHeaders(e *conveyor.Event) map[string]string { return natsBinding.headers(e) }

// ParseNATS reads the attributes of a binary-mode CloudEvent from NATS message headers
// (pass a nats.Header directly). Header names match case-insensitively; values are
// percent-decoded. It returns ErrNotCloudEvent when there is no ce-specversion header.
func ParseNATS(h map[string][]string) (Attributes, error) {
	return natsBinding.parse(eachFirst(h), "")
}
