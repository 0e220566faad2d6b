package cloudevents_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
)

const vectorDir = "../testdata/cloudevents"

type vector struct {
	Event struct {
		ID        uuid.UUID         `json:"id"`
		Type      string            `json:"type"`
		Source    string            `json:"source"`
		Subject   string            `json:"subject"`
		Key       string            `json:"key"`
		CreatedAt time.Time         `json:"created_at"`
		Headers   map[string]string `json:"headers"`
		Data      json.RawMessage   `json:"data"`
	} `json:"event"`
	Attributes map[string]string `json:"attributes"`
	NATS       struct {
		Headers map[string]string `json:"headers"`
	} `json:"nats"`
	HTTP struct {
		Headers map[string]string `json:"headers"`
	} `json:"http"`
	Kafka struct {
		Headers map[string]string `json:"headers"`
	} `json:"kafka"`
	AMQP struct {
		ContentType string            `json:"content_type"`
		Props       map[string]string `json:"application_properties"`
	} `json:"amqp"`
	MQTT struct {
		ContentType string            `json:"content_type"`
		Props       map[string]string `json:"user_properties"`
	} `json:"mqtt"`
	Structured json.RawMessage `json:"structured"`
}

func (v *vector) event() *conveyor.Event {
	return &conveyor.Event{
		ID:        v.Event.ID,
		Type:      v.Event.Type,
		Source:    v.Event.Source,
		Subject:   v.Event.Subject,
		Key:       v.Event.Key,
		CreatedAt: v.Event.CreatedAt,
		Headers:   v.Event.Headers,
		Data:      v.Event.Data,
	}
}

// flat renders attributes as the JSON event format names them.
func flat(a cloudevents.Attributes) map[string]string {
	m := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	put("specversion", a.SpecVersion)
	put("id", a.ID)
	put("source", a.Source)
	put("type", a.Type)
	put("subject", a.Subject)
	if !a.Time.IsZero() {
		put("time", cloudevents.FormatTime(a.Time))
	}
	put("datacontenttype", a.DataContentType)
	for k, v := range a.Extensions {
		put(k, v)
	}
	return m
}

func eventVectors(t *testing.T) map[string]*vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	require.NoError(t, err)
	out := map[string]*vector{}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "parse_") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var v vector
		require.NoError(t, json.Unmarshal(b, &v), f)
		out[filepath.Base(f)] = &v
	}
	require.GreaterOrEqual(t, len(out), 3, "event vectors missing from %s", vectorDir)
	return out
}

func TestVectors(t *testing.T) {
	t.Parallel()
	for name, v := range eventVectors(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := v.event()

			require.Equal(t, v.Attributes, flat(cloudevents.FromEvent(e)), "attributes")
			require.Equal(t, v.NATS.Headers, cloudevents.NATSHeaders(e), "nats")
			require.Equal(t, v.HTTP.Headers, cloudevents.HTTPHeaders(e), "http")
			require.Equal(t, v.Kafka.Headers, cloudevents.KafkaHeaders(e), "kafka")
			ct, props := cloudevents.AMQPProperties(e)
			require.Equal(t, v.AMQP.ContentType, ct, "amqp content-type")
			require.Equal(t, v.AMQP.Props, props, "amqp")
			ct, props = cloudevents.MQTTProperties(e)
			require.Equal(t, v.MQTT.ContentType, ct, "mqtt content type")
			require.Equal(t, v.MQTT.Props, props, "mqtt")

			structured, err := cloudevents.Structured(e)
			require.NoError(t, err)
			require.JSONEq(t, string(v.Structured), string(structured), "structured")
			require.Contains(t, string(structured), `"data":`+strings.TrimSpace(string(v.Event.Data)),
				"structured data must be the stored JSON, byte for byte")
		})
	}
}

// TestVectorsParse reads every binding's output back to the vector's attributes.
func TestVectorsParse(t *testing.T) {
	t.Parallel()
	for name, v := range eventVectors(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Extra headers that look like attributes are dropped when producing, so what
			// comes back is the attributes plus, for MQTT, the extras as extensions.
			multi := func(h map[string]string) map[string][]string {
				m := map[string][]string{}
				for k, v := range h {
					m[k] = []string{v}
				}
				return m
			}
			a, err := cloudevents.ParseNATS(multi(v.NATS.Headers))
			require.NoError(t, err)
			require.Equal(t, v.Attributes, flat(a), "nats")

			hh := http.Header{}
			for k, val := range v.HTTP.Headers {
				hh.Set(k, val)
			}
			a, err = cloudevents.ParseHTTP(hh)
			require.NoError(t, err)
			require.Equal(t, v.Attributes, flat(a), "http")

			a, err = cloudevents.ParseKafka(v.Kafka.Headers)
			require.NoError(t, err)
			require.Equal(t, v.Attributes, flat(a), "kafka")

			props := map[string]any{}
			for k, val := range v.AMQP.Props {
				props[k] = val
			}
			a, err = cloudevents.ParseAMQP(v.AMQP.ContentType, props)
			require.NoError(t, err)
			require.Equal(t, v.Attributes, flat(a), "amqp")

			a, err = cloudevents.ParseMQTT(v.MQTT.ContentType, v.MQTT.Props)
			require.NoError(t, err)
			want := map[string]string{}
			for k, val := range v.MQTT.Props {
				want[strings.ToLower(k)] = val
			}
			want["datacontenttype"] = v.MQTT.ContentType
			require.Equal(t, want, flat(a), "mqtt: every user property is an attribute")

			a, data, err := cloudevents.ParseStructured(v.Structured)
			require.NoError(t, err)
			require.Equal(t, v.Attributes, flat(a), "structured")
			require.JSONEq(t, string(v.Event.Data), string(data))
		})
	}
}

func TestParseNATSVectors(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(vectorDir, "parse_nats.json"))
	require.NoError(t, err)
	var file struct {
		Cases []struct {
			Name       string              `json:"name"`
			Headers    map[string][]string `json:"headers"`
			Attributes map[string]string   `json:"attributes"`
			Error      string              `json:"error"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(b, &file))
	require.NotEmpty(t, file.Cases)
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			a, err := cloudevents.ParseNATS(c.Headers)
			switch c.Error {
			case "":
				require.NoError(t, err)
				require.Equal(t, c.Attributes, flat(a))
			case "not_cloudevent":
				require.ErrorIs(t, err, cloudevents.ErrNotCloudEvent)
			case "invalid":
				require.ErrorIs(t, err, cloudevents.ErrInvalid)
			default:
				t.Fatalf("unknown error kind %q", c.Error)
			}
		})
	}
}
