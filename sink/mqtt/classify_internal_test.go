package mqtt

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestReasonKind(t *testing.T) {
	t.Parallel()
	for code, want := range map[byte]sink.Kind{
		0x80: sink.KindMessage,   // unspecified error
		0x83: sink.KindMessage,   // implementation specific error
		0x87: sink.KindPermanent, // not authorized
		0x90: sink.KindPermanent, // topic name invalid
		0x91: sink.KindMessage,   // packet identifier in use
		0x95: sink.KindPermanent, // packet too large
		0x97: sink.KindTransient, // quota exceeded
		0x99: sink.KindPermanent, // payload format invalid
	} {
		require.Equal(t, want, reasonKind(code), "0x%02X", code)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	require.Zero(t, backoff(0))
	require.Equal(t, "100ms", backoff(1).String())
	require.Equal(t, "200ms", backoff(2).String())
	require.Equal(t, "2s", backoff(10).String())
	require.Equal(t, "2s", backoff(1000).String())
}
