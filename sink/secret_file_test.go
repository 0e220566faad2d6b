package sink_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestReadSecretFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(file, []byte("s3cret\r\n"), 0o600))

	var v string
	require.NoError(t, sink.ReadSecretFile("password", &v, ""))
	require.Empty(t, v, "no file, nothing read")
	require.NoError(t, sink.ReadSecretFile("password", &v, file))
	require.Equal(t, "s3cret", v, "the trailing newline is dropped")

	require.EqualError(t, sink.ReadSecretFile("sasl.password", &v, file), "sasl.password and sasl.password_file are both set; use one")
	var w string
	require.ErrorContains(t, sink.ReadSecretFile("token", &w, file+".missing"), "token_file: open ")
}
