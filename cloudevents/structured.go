package cloudevents

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/conveyorhq/conveyor"
)

// Structured returns e as a structured-mode message in the JSON event format, for
// brokers without headers (MQTT 3.1.1, for instance); set the message's content type to
// StructuredContentType where the protocol has one.
//
// Members are written in a fixed order: specversion, id, source, type, subject, time,
// datacontenttype, the extensions by name, then data. data is e.Data exactly as stored,
// embedded as JSON (not re-encoded, not base64), and omitted when e.Data is empty. Extra
// event headers are not carried. It fails only when e.Data is not valid JSON.
func Structured(e *conveyor.Event) ([]byte, error) {
	data := bytes.TrimSpace(e.Data)
	if len(data) > 0 && !jsonValid(data) {
		return nil, fmt.Errorf("%w: event %s data is not valid JSON", ErrInvalid, e.ID)
	}
	var b bytes.Buffer
	b.Grow(256 + len(data))
	b.WriteByte('{')
	for i, p := range FromEvent(e).list() {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, p[0])
		b.WriteByte(':')
		writeJSONString(&b, p[1])
	}
	if len(data) > 0 {
		b.WriteString(`,"data":`)
		b.Write(data)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// ParseStructured reads a structured-mode message in the JSON event format. It returns
// the attributes and the event data: the "data" member as raw JSON, or the decoded
// "data_base64" member; nil when neither is present. Non-string extension values
// (numbers, booleans) are returned in their JSON text form.
func ParseStructured(msg []byte) (Attributes, []byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(msg, &members); err != nil {
		return Attributes{}, nil, fmt.Errorf("%w: structured message is not a JSON object: %v", ErrInvalid, err)
	}
	pairs := make(map[string]string, len(members))
	var data []byte
	for name, raw := range members {
		switch name {
		case "data":
			if string(raw) != "null" {
				data = raw
			}
			continue
		case "data_base64":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return Attributes{}, nil, fmt.Errorf("%w: data_base64 is not a string", ErrInvalid)
			}
			d, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return Attributes{}, nil, fmt.Errorf("%w: data_base64 is not base64: %v", ErrInvalid, err)
			}
			data = d
			continue
		}
		if string(raw) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			if coreNames[name] || (len(raw) > 0 && (raw[0] == '{' || raw[0] == '[')) {
				return Attributes{}, nil, fmt.Errorf("%w: attribute %s must be a string", ErrInvalid, name)
			}
			s = string(raw) // number or boolean extension
		}
		if s != "" {
			pairs[name] = s
		}
	}
	a, err := fromPairs(pairs)
	if err != nil {
		return Attributes{}, nil, err
	}
	return a, data, nil
}

func jsonValid(b []byte) bool { return json.Valid(bytes.TrimSpace(b)) }
