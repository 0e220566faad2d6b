package redisstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink/redisstream"
	"github.com/conveyorhq/conveyor/sink/sinktest"
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

// server is a redis-server process owned by one test, which it can kill (as a crash
// would) and restart on the same port and data directory. It writes every command to
// its append-only file before answering, so a kill loses nothing acknowledged.
type server struct {
	bin, dir string
	port     int
	extra    []string
	proc     *testproc.Process
}

func newServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{bin: testdb.Require(t, EnvServer), dir: t.TempDir(), port: testproc.FreePort(t), extra: extra,
		proc: testproc.New(t, "redis-server")}
	s.Start(t)
	return s
}

func (s *server) URL() string { return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", testPassword, s.port) }

func (s *server) Start(t *testing.T) {
	t.Helper()
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--dir", s.dir,
		"--requirepass", testPassword, "--proto-max-bulk-len", strconv.Itoa(maxBulk),
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"}, s.extra...)
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Password: testPassword, MaxRetries: -1, DisableIdentity: true})
	defer rdb.Close()
	s.proc.Start(t, exec.Command(s.bin, args...), 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err()
	})
}

// Stop kills the server, as a crash would.
func (s *server) Stop(*testing.T) { s.proc.Kill() }

// newSink opens a sink and closes it when the test ends.
func newSink(t *testing.T, cfg redisstream.Config) *redisstream.Sink {
	t.Helper()
	return sinktest.Open(t, func(log *slog.Logger) (*redisstream.Sink, error) { return redisstream.New(t.Context(), cfg, log) })
}

// uniqueStream returns a stream name no other test uses.
func uniqueStream(name string) string {
	return "conveyor-test:" + name + ":" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
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
