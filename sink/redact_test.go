package sink_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestAppendSecret(t *testing.T) {
	t.Parallel()
	require.Nil(t, sink.AppendSecret(nil, ""))
	require.Equal(t, []string{"plain"}, sink.AppendSecret(nil, "plain"))
	require.Equal(t, []string{"a", "p%40ss", "p@ss"}, sink.AppendSecret([]string{"a"}, "p%40ss"))
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	require.NoError(t, sink.RedactError(nil, []string{"x"}))

	clean := errors.New("nothing to hide")
	require.Same(t, clean, sink.RedactError(clean, []string{"hunter2"}))

	cause := sink.Transient(errors.New("dial amqp://u:hunter2@host: refused"))
	err := sink.RedactError(fmt.Errorf("connect: %w", cause), []string{"hunter2"})
	require.EqualError(t, err, "connect: transient: dial amqp://u:REDACTED@host: refused")
	require.ErrorIs(t, err, cause, "the chain is kept")
	require.Equal(t, sink.KindTransient, sink.KindOf(err))
}

func TestBlockError(t *testing.T) {
	t.Parallel()
	require.NoError(t, sink.BlockError(nil, "amqp", nil))
	err := sink.BlockError(errors.New("amqp: url: amqp://u:s3cret@h: bad\namqp: heartbeat: negative"), "amqp", []string{"s3cret"})
	require.EqualError(t, err, "url: amqp://u:REDACTED@h: bad\nheartbeat: negative")
}
