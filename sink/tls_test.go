package sink_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
)

func TestTLSOptions(t *testing.T) {
	t.Parallel()
	tc, err := sink.TLSOptions{ServerName: "broker.internal", InsecureSkipVerify: true}.Config()
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS12), tc.MinVersion)
	require.Equal(t, "broker.internal", tc.ServerName)
	require.True(t, tc.InsecureSkipVerify)
	require.Nil(t, tc.RootCAs, "the system roots")

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	_, err = sink.TLSOptions{CAFile: notPEM}.Config()
	require.EqualError(t, err, "tls.ca_file "+notPEM+" holds no PEM certificate")
	_, err = sink.TLSOptions{CAFile: notPEM + ".missing"}.Config()
	require.ErrorContains(t, err, "tls.ca_file: open ")
	err = sink.TLSOptions{CertFile: notPEM, KeyFile: notPEM}.LoadFiles(&tls.Config{}) //nolint:gosec // not used to connect
	require.ErrorContains(t, err, "tls.cert_file/key_file: ")
}
