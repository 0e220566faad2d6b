package redisstream_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/redisstream"
)

// The test environment, exported by `eval "$(scripts/services.sh env)"` after
// `scripts/services.sh up redis`.
const (
	// EnvURL is the shared server's URL (with the test password).
	EnvURL = "CONVEYOR_TEST_REDIS_URL"
	// EnvServer is the redis-server binary the tests run themselves.
	EnvServer = "CONVEYOR_TEST_REDIS_SERVER"
)

// testPassword is the password of the servers the tests run; distinctive, so tests can
// grep errors and logs for it.
const testPassword = "redis-test-secret-7f3a"

// maxBulk is proto-max-bulk-len of the servers the tests run: the lowest Redis allows.
const maxBulk = 1 << 20

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireEnv returns the variable's value. Without it the test fails in CI and is
// skipped elsewhere.
func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " is not set; run `scripts/services.sh up redis` and `eval \"$(scripts/services.sh env)\"`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

// server is a redis-server process owned by one test, which it can kill (as a crash
// would) and restart on the same port and data directory. It writes every command to
// its append-only file before answering, so a kill loses nothing acknowledged.
type server struct {
	bin, dir string
	port     int
	extra    []string
	cmd      *exec.Cmd
	exited   chan struct{}
	out      *syncBuffer
}

func newServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{bin: requireEnv(t, EnvServer), dir: t.TempDir(), port: freePort(t), extra: extra, out: &syncBuffer{}}
	s.Start(t)
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("redis-server output:\n%s", s.out)
		}
	})
	return s
}

func (s *server) URL() string { return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", testPassword, s.port) }

func (s *server) Start(t *testing.T) {
	t.Helper()
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--dir", s.dir,
		"--requirepass", testPassword, "--proto-max-bulk-len", strconv.Itoa(maxBulk),
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"}, s.extra...)
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)

	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Password: testPassword, MaxRetries: -1, DisableIdentity: true})
	defer rdb.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("redis-server exited at startup:\n%s", s.out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		require.True(t, time.Now().Before(deadline), "redis-server did not answer on port %d: %v\n%s", s.port, err, s.out)
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server, as a crash would.
func (s *server) Stop(*testing.T) {
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

// syncBuffer collects output written from several goroutines.
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

// newSink opens a sink and closes it when the test ends.
func newSink(t *testing.T, cfg redisstream.Config) *redisstream.Sink {
	t.Helper()
	log, _ := testLogger(t)
	s, err := redisstream.New(t.Context(), cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// uniqueStream returns a stream name no other test uses.
func uniqueStream(name string) string {
	return "conveyor-test:" + name + ":" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
}

func newEvent(key string) *conveyor.Event {
	return &conveyor.Event{
		ID:        uuid.Must(uuid.NewV7()),
		Type:      "order.paid",
		Source:    "/shop",
		Subject:   "order/42",
		Key:       key,
		Data:      []byte(`{"order_id":42,"total":"19.90"}`),
		CreatedAt: time.Now().Add(-time.Second).Round(time.Microsecond),
		Headers: map[string]string{
			"traceparent":      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"x-correlation-id": "c-" + uuid.NewString(),
		},
	}
}

func messages(stream string, events ...*conveyor.Event) []*sink.Message {
	out := make([]*sink.Message, len(events))
	for i, e := range events {
		out[i] = &sink.Message{Event: e, Destination: stream, Route: "test"}
	}
	return out
}

func publish(t *testing.T, s sink.Sink, stream string, events ...*conveyor.Event) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := s.Publish(ctx, messages(stream, events...))
	require.Len(t, errs, len(events))
	return errs
}

func requireNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "message %d", i)
	}
}

// client is a plain go-redis client, the kind a consumer uses.
func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	require.NoError(t, err)
	opt.DisableIdentity = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// readStream reads up to n entries of stream from its start, waiting at most timeout.
func readStream(t *testing.T, url, stream string, n int, timeout time.Duration) []redisstream.Entry {
	t.Helper()
	rdb := client(t, url)
	deadline := time.Now().Add(timeout)
	var out []redisstream.Entry
	last := "0-0"
	for len(out) < n {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		res, err := rdb.XRead(t.Context(), &redis.XReadArgs{Streams: []string{stream, last}, Count: int64(n - len(out)),
			Block: min(wait, time.Second)}).Result()
		if err == redis.Nil {
			continue
		}
		require.NoError(t, err)
		for _, xs := range res {
			for _, m := range xs.Messages {
				e, err := redisstream.ParseEntry(m.ID, m.Values)
				require.NoError(t, err)
				out = append(out, e)
				last = m.ID
			}
		}
	}
	return out
}
