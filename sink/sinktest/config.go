package sinktest

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink"
)

// DecodeConfig decodes src as a block of sink type typ the way the config loader does
// (strictly, then defaults), and returns it with the result of its Validate.
func DecodeConfig(t testing.TB, typ, src string) (sink.Config, error) {
	t.Helper()
	c, ok := sink.NewConfig(typ)
	require.True(t, ok, "type %s is registered", typ)
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, err
	}
	c.Defaults()
	return c, c.Validate()
}
