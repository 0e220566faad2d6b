package cloudevents

import "github.com/conveyorhq/conveyor"

// kafkaBinding follows the Kafka protocol binding: "ce_" headers with UTF-8 values as-is,
// and datacontenttype in the content-type header.
var kafkaBinding = binding{
	prefix:      "ce_",
	contentType: "content-type",
}

// KafkaHeaders returns the Kafka record headers of e in binary content mode; the record
// value is e.Data. The record key is the sink's choice (conveyor uses the event's
// ordering key). Extra headers pass unchanged, except names that would read back as a
// conveyor attribute (ce_id, content-type, ...).
func KafkaHeaders(e *conveyor.Event) map[string]string { return kafkaBinding.headers(e) }

// ParseKafka reads the attributes of a binary-mode CloudEvent from Kafka record headers.
// Names match case-insensitively.
func ParseKafka(h map[string]string) (Attributes, error) {
	return kafkaBinding.parse(eachString(h), "")
}
