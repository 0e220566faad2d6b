package cloudevents

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
)

// headerBlob turns "name: value" lines into a header map, the shape fuzzers mutate best.
func headerBlob(s string) map[string][]string {
	h := map[string][]string{}
	for _, line := range strings.Split(s, "\n") {
		name, value, _ := strings.Cut(line, ":")
		h[name] = append(h[name], strings.TrimPrefix(value, " "))
	}
	return h
}

func FuzzParseNATS(f *testing.F) {
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t")
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-source: %2Fs%20x\nce-type: t\nce-subject: \"a\\\"b\"\nce-time: 2024-05-01T12:34:56.1Z")
	f.Add("CE-SPECVERSION: 1.0\nce-id: %C0%A0\nce-source: %\nce-type: t\nce-traceparent: 00-x")
	f.Add("ce-: x\nce-specversion: 0.3")
	f.Fuzz(func(t *testing.T, blob string) {
		h := headerBlob(blob)
		a, err := ParseNATS(h)
		if err != nil {
			require.Equal(t, Attributes{}, a)
			return
		}
		require.NoError(t, a.Validate())
		// Whatever parses renders back to headers that parse to the same attributes.
		again, err := ParseNATS(multi(natsBinding.render(a, nil)))
		require.NoError(t, err)
		require.Equal(t, a, again)

		// HTTP reads the same headers the same way, apart from Content-Type.
		if _, hasCT := http.Header(h)["Content-Type"]; !hasCT {
			ha, err := ParseHTTP(h)
			if err == nil {
				require.Equal(t, a.ID, ha.ID)
			}
		}
	})
}

func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"", "plain", "Euro € 😀", "%", "%zz", "%C0%A0", `"quoted \" value"`, "a\r\nb", "\x00\x7f\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := encodeHeaderValue(s)
		for i := 0; i < len(enc); i++ {
			require.False(t, enc[i] <= ' ' || enc[i] >= 0x7F || enc[i] == '"', "encoded value %q has a byte headers cannot carry", enc)
		}
		dec, err := decodeHeaderValue(enc)
		if utf8.ValidString(s) {
			require.NoError(t, err)
			require.Equal(t, s, dec)
		} else {
			require.Error(t, err)
		}
		// Decoding arbitrary input never panics, and what decodes re-encodes stably.
		if d, err := decodeHeaderValue(s); err == nil {
			d2, err := decodeHeaderValue(encodeHeaderValue(d))
			require.NoError(t, err)
			require.Equal(t, d, d2)
		}
	})
}

// FuzzRoundTrip maps an event through every binding and reads it back.
func FuzzRoundTrip(f *testing.F) {
	f.Add("/shop", "order.paid", "", "", int64(1714566896123456000), []byte(`{"a":1}`))
	f.Add("/shop/eu west", "t", "Euro € 😀", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", int64(0), []byte(`"x"`))
	f.Add("%2F", "\"q\"", " lead", "a\tb", int64(-1), []byte(`[1, 2]`))
	f.Fuzz(func(t *testing.T, source, typ, subject, traceparent string, nanos int64, data []byte) {
		for _, s := range []string{source, typ, subject, traceparent} {
			if !utf8.ValidString(s) {
				t.Skip("attribute values are UTF-8 strings")
			}
		}
		if source == "" || typ == "" {
			t.Skip("source and type are required")
		}
		created := time.Unix(0, nanos).UTC()
		e := &conveyor.Event{
			ID: uuid.New(), Source: source, Type: typ, Subject: subject, CreatedAt: created,
			Headers: map[string]string{"traceparent": traceparent, "x-extra": subject}, Data: data,
		}
		want := FromEvent(e)

		a, err := ParseNATS(multi(NATSHeaders(e)))
		require.NoError(t, err)
		require.Equal(t, want, a, "nats")

		a, err = ParseHTTP(multi(HTTPHeaders(e)))
		require.NoError(t, err)
		require.Equal(t, want, a, "http")

		a, err = ParseKafka(KafkaHeaders(e))
		require.NoError(t, err)
		require.Equal(t, want, a, "kafka")

		ct, props := AMQPProperties(e)
		anyProps := map[string]any{}
		for k, v := range props {
			anyProps[k] = v
		}
		a, err = ParseAMQP(ct, anyProps)
		require.NoError(t, err)
		require.Equal(t, want, a, "amqp")

		msg, err := Structured(e)
		if len(strings.TrimSpace(string(data))) > 0 && !jsonValid(data) {
			require.ErrorIs(t, err, ErrInvalid)
			return
		}
		require.NoError(t, err)
		a, got, err := ParseStructured(msg)
		require.NoError(t, err)
		require.Equal(t, want, a, "structured")
		if len(strings.TrimSpace(string(data))) > 0 && strings.TrimSpace(string(data)) != "null" {
			require.Equal(t, strings.TrimSpace(string(data)), string(got))
		}
	})
}

func FuzzParseStructured(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"eA==","n":1,"b":true}`))
	f.Add([]byte(`{"specversion":1}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, _, err := ParseStructured(msg)
		if err == nil {
			require.NoError(t, a.Validate())
		}
	})
}

func multi(h map[string]string) map[string][]string {
	m := make(map[string][]string, len(h))
	for k, v := range h {
		m[k] = []string{v}
	}
	return m
}
