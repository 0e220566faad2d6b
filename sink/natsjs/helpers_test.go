package natsjs_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/natsjs"
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
	cmd            *exec.Cmd
	exited         chan struct{}
	log            *bytes.Buffer
}

// natsServerBin returns the nats-server binary from CONVEYOR_TEST_NATS_SERVER. Without
// it the test fails in CI and is skipped elsewhere.
func natsServerBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(EnvNATSServer)
	if bin == "" {
		msg := EnvNATSServer + " is not set; install nats-server with " +
			"`GOBIN=$PWD/.cache/bin go install github.com/nats-io/nats-server/v2@v2.15.2` " +
			"and set " + EnvNATSServer + "=$PWD/.cache/bin/nats-server"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// newProcess starts nats-server; conf, when set, is the content of its config file.
func newProcess(t *testing.T, conf string) *processServer {
	t.Helper()
	s := &processServer{bin: natsServerBin(t), dir: t.TempDir(), port: freePort(t)}
	if conf != "" {
		s.conf = filepath.Join(s.dir, "nats.conf")
		require.NoError(t, os.WriteFile(s.conf, []byte(conf), 0o600))
	}
	s.Restart(t)
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("nats-server output:\n%s", s.log)
		}
	})
	return s
}

func (s *processServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *processServer) Restart(t *testing.T) {
	t.Helper()
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", filepath.Join(s.dir, "store")}
	if s.conf != "" {
		args = append(args, "-c", s.conf)
	}
	if s.log == nil {
		s.log = &bytes.Buffer{}
	}
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	require.NoError(t, s.cmd.Start())
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("nats-server exited at startup:\n%s", s.log)
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		require.True(t, time.Now().Before(deadline), "nats-server did not listen on port %d: %v\n%s", s.port, err, s.log)
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server, as a crash would.
func (s *processServer) Stop(*testing.T) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects log output from the connection's callback goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testLogger logs to a buffer, printed when the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sink log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func newSink(t *testing.T, cfg natsjs.Config) *natsjs.Sink {
	t.Helper()
	log, _ := testLogger(t)
	s, err := natsjs.New(t.Context(), cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

func newEvent(t *testing.T) *conveyor.Event {
	t.Helper()
	return &conveyor.Event{
		ID:        uuid.Must(uuid.NewV7()),
		Type:      "order.paid",
		Source:    "/shop",
		Subject:   "order/42",
		Data:      []byte(`{"order_id":42,"total":"19.90"}`),
		CreatedAt: time.Now().Add(-time.Second).Round(time.Microsecond),
		Headers: map[string]string{
			"traceparent":      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"x-correlation-id": "c-" + uuid.NewString(),
		},
	}
}

func messages(events []*conveyor.Event, subject string) []*sink.Message {
	out := make([]*sink.Message, len(events))
	for i, e := range events {
		out[i] = &sink.Message{Event: e, Destination: subject, Route: "test"}
	}
	return out
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

func requireNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "message %d", i)
	}
}
