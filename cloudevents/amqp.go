package cloudevents

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor"
)

// AMQPPrefix is the application-property name prefix of the AMQP binding.
const AMQPPrefix = "cloudEvents:"

// amqpBinding follows the AMQP protocol binding: attributes are application properties
// named "cloudEvents:<name>"; datacontenttype is the message's content-type property.
var amqpBinding = binding{
	prefix:          AMQPPrefix,
	dropContentType: true,
}

// AMQPProperties returns the content-type message property and the application
// properties (for AMQP 0-9-1, the headers table) of e in binary content mode; the body is
// e.Data. Values are the attributes' canonical strings, which the binding allows in
// place of native AMQP types. Extra headers pass unchanged, except names that would read
// back as a conveyor attribute (cloudEvents:id, ...).
func AMQPProperties(e *conveyor.Event) (contentType string, props map[string]string) {
	return DataContentType, amqpBinding.headers(e)
}

// ParseAMQP reads the attributes of a binary-mode CloudEvent from the content-type
// property and the application properties. Names match case-insensitively, and the
// "cloudEvents_" prefix of older producers is accepted too. Values may be strings, byte
// slices, booleans, integers or time.Time (native AMQP timestamps).
func ParseAMQP(contentType string, props map[string]any) (Attributes, error) {
	h := make(map[string]string, len(props))
	for k, v := range props {
		if strings.HasPrefix(strings.ToLower(k), "cloudevents_") {
			k = AMQPPrefix + k[len("cloudevents_"):]
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		case bool:
			s = strconv.FormatBool(v)
		case int64:
			s = strconv.FormatInt(v, 10)
		case int32:
			s = strconv.FormatInt(int64(v), 10)
		case int:
			s = strconv.Itoa(v)
		case time.Time:
			s = FormatTime(v)
		default:
			if strings.HasPrefix(strings.ToLower(k), strings.ToLower(AMQPPrefix)) {
				return Attributes{}, fmt.Errorf("%w: property %s has unsupported type %T", ErrInvalid, k, v)
			}
			continue
		}
		if _, dup := h[k]; dup {
			return Attributes{}, fmt.Errorf("%w: property %s appears more than once", ErrInvalid, k)
		}
		h[k] = s
	}
	return amqpBinding.parse(eachString(h), contentType)
}
