package cloudevents

import (
	"strings"

	"github.com/conveyorhq/conveyor"
)

// httpFraming are headers that describe the HTTP message itself; an event cannot set
// them.
var httpFraming = map[string]bool{
	"connection": true, "content-length": true, "host": true, "keep-alive": true,
	"proxy-connection": true, "te": true, "trailer": true, "transfer-encoding": true,
	"upgrade": true,
}

// httpBinding follows the HTTP protocol binding: "ce-" headers with percent-encoded
// values, and datacontenttype in Content-Type (never also as ce-datacontenttype).
var httpBinding = binding{
	prefix:      "ce-",
	contentType: "Content-Type",
	encode:      encodeHeaderValue,
	decode:      decodeHeaderValue,
	extra: func(name, v string) (string, bool) {
		if !isToken(name) || httpFraming[strings.ToLower(name)] {
			return "", false
		}
		return passValue(v), true
	},
}

// HTTPHeaders returns the HTTP request headers of e in binary content mode, including
// Content-Type; the body is e.Data.
//
// Extra headers pass under their own names, except names that are not RFC 7230 tokens,
// hop-by-hop and framing headers (Content-Length, Host, Transfer-Encoding, ...), and
// names that would read back as a conveyor attribute (ce-id, Content-Type, ...). Values
// HTTP cannot carry unchanged are percent-encoded like attribute values.
func HTTPHeaders(e *conveyor.Event) map[string]string { return httpBinding.headers(e) }

// ParseHTTP reads the attributes of a binary-mode CloudEvent from HTTP headers (pass an
// http.Header directly). Content-Type becomes datacontenttype.
func ParseHTTP(h map[string][]string) (Attributes, error) {
	return httpBinding.parse(eachFirst(h), "")
}
