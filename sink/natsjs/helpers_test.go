package natsjs_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// EnvNATSServer names the nats-server binary the standalone-server tests run.
const EnvNATSServer = "CONVEYOR_TEST_NATS_SERVER"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a NATS server a test can stop and start again on the same port and
// store directory.
type testServer interface {
	URL() string
	Stop(t *testing.T)
	Restart(t *testing.T)
}

// eachServer runs fn against the embedded server and a standalone nats-server process.
func eachServer(t *testing.T, fn func(t *testing.T, srv testServer)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		fn(t, newEmbedded(t))
	})
	t.Run("nats-server", func(t *testing.T) {
		t.Parallel()
		fn(t, newProcess(t, ""))
	})
}

type embeddedServer struct {
	e    *natsjs.Embedded
	port int
	dir  string
}

func newEmbedded(t *testing.T) *embeddedServer {
	t.Helper()
	s := &embeddedServer{port: -1, dir: t.TempDir()}
	s.Restart(t)
	u := s.e.ClientURL()
	port, err := strconv.Atoi(u[strings.LastIndex(u, ":")+1:])
	require.NoError(t, err)
	s.port = port
	t.Cleanup(func() { s.e.Shutdown() })
	return s
}

func (s *embeddedServer) URL() string { return s.e.ClientURL() }

func (s *embeddedServer) Stop(*testing.T) { s.e.Shutdown() }

func (s *embeddedServer) Restart(t *testing.T) {
	t.Helper()
	e, err := natsjs.StartEmbedded(t.Context(), natsjs.EmbeddedConfig{
		Port: s.port, StoreDir: s.dir, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	s.e = e
}

// processServer is a nats-server binary run with -js on a free port.
type processServer struct {
	bin, dir, conf string
	port           int
	proc           *testproc.Process
}

// newProcess starts nats-server; conf, when set, is the content of its config file.
func newProcess(t *testing.T, conf string) *processServer {
	t.Helper()
	s := &processServer{bin: testdb.Require(t, EnvNATSServer), dir: t.TempDir(), port: testproc.FreePort(t),
		proc: testproc.New(t, "nats-server")}
	if conf != "" {
		s.conf = filepath.Join(s.dir, "nats.conf")
		require.NoError(t, os.WriteFile(s.conf, []byte(conf), 0o600))
	}
	s.Restart(t)
	return s
}

func (s *processServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *processServer) Restart(t *testing.T) {
	t.Helper()
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", filepath.Join(s.dir, "store")}
	if s.conf != "" {
		args = append(args, "-c", s.conf)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.proc.Start(t, exec.Command(s.bin, args...), 15*time.Second, testproc.Listening(addr))
}

// Stop kills the server, as a crash would.
func (s *processServer) Stop(*testing.T) { s.proc.Kill() }

// newSink opens a sink and closes it when the test ends.
func newSink(t *testing.T, cfg natsjs.Config) *natsjs.Sink {
	t.Helper()
	return sinktest.Open(t, func(log *slog.Logger) (*natsjs.Sink, error) { return natsjs.New(t.Context(), cfg, log) })
}

// jsClient is a plain JetStream client, the kind a consumer uses.
func jsClient(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// readStream fetches want messages from the start of stream with an ordered consumer.
func readStream(t *testing.T, url, stream string, want int) []jetstream.Msg {
	t.Helper()
	js := jsClient(t, url)
	cons, err := js.OrderedConsumer(t.Context(), stream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []jetstream.Msg
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			out = append(out, m)
		}
	}
	require.Len(t, out, want)
	return out
}

func streamMsgs(t *testing.T, url, stream string) uint64 {
	t.Helper()
	str, err := jsClient(t, url).Stream(t.Context(), stream)
	require.NoError(t, err)
	info, err := str.Info(t.Context())
	require.NoError(t, err)
	return info.State.Msgs
}
