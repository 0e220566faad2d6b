package cloudevents

import "github.com/conveyorhq/conveyor"

// mqttBinding follows the MQTT binding for MQTT 5: attributes are user properties under
// their own names; datacontenttype is the PUBLISH Content Type property.
var mqttBinding = binding{dropContentType: true}

// MQTTProperties returns the Content Type property and the user properties of e in
// binary content mode for MQTT 5; the payload is e.Data. MQTT 3.1.1 has no properties:
// use Structured.
//
// Extra headers pass unchanged, except names equal to a conveyor attribute (id, type,
// traceparent, ...). Since the binding has no prefix, a consumer reads every other user
// property, extra headers included, as an extension attribute.
func MQTTProperties(e *conveyor.Event) (contentType string, userProps map[string]string) {
	return DataContentType, mqttBinding.headers(e)
}

// ParseMQTT reads the attributes of a binary-mode CloudEvent from an MQTT 5 Content Type
// and user properties. Every user property that is not a core attribute becomes an
// extension.
func ParseMQTT(contentType string, userProps map[string]string) (Attributes, error) {
	return mqttBinding.parse(eachString(userProps), contentType)
}
