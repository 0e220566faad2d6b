package kafka_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
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
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/kafka"
)

// The test environment, exported by `eval "$(scripts/services.sh env)"` after
// `scripts/services.sh up kafka`.
const (
	EnvBrokers     = "CONVEYOR_TEST_KAFKA_BROKERS"
	EnvSASLBrokers = "CONVEYOR_TEST_KAFKA_SASL_BROKERS"
	EnvUser        = "CONVEYOR_TEST_KAFKA_USER"
	EnvPassword    = "CONVEYOR_TEST_KAFKA_PASSWORD"
	EnvLibs        = "CONVEYOR_TEST_KAFKA_LIBS"
)

// brokerMaxMessage is message.max.bytes of the brokers below (Kafka's default).
const brokerMaxMessage = 1048588

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireEnv returns the variable's value. Without it the test fails in CI and is
// skipped elsewhere.
func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " is not set; run `scripts/services.sh up kafka` and `eval \"$(scripts/services.sh env)\"`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

// uniqueTopic returns a topic name no other test uses.
func uniqueTopic(name string) string {
	return "conveyor-test-" + name + "-" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
}

// broker is a Kafka broker process owned by one test, run from the jars of
// CONVEYOR_TEST_KAFKA_LIBS, which the test can kill (as a crash would) and restart on
// the same port and log directory.
type broker struct {
	libs, dir, props, log4j string
	port                    int
	cmd                     *exec.Cmd
	exited                  chan struct{}
	out                     *syncBuffer
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{libs: requireEnv(t, EnvLibs), dir: t.TempDir(), port: freePort(t), out: &syncBuffer{}}
	controller := freePort(t)
	b.props = filepath.Join(b.dir, "server.properties")
	b.log4j = filepath.Join(b.dir, "log4j2.properties")
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=%[3]s
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
broker.session.timeout.ms=2000
broker.heartbeat.interval.ms=500
message.max.bytes=%[4]d
num.network.threads=2
num.io.threads=2
background.threads=2
`, b.port, controller, filepath.Join(b.dir, "data"), brokerMaxMessage)
	require.NoError(t, os.WriteFile(b.props, []byte(props), 0o600))
	log4j := "appender.out.type=Console\nappender.out.name=out\nappender.out.layout.type=PatternLayout\n" +
		"appender.out.layout.pattern=[%d] %p %m (%c)%n\nrootLogger.level=WARN\nrootLogger.appenderRef.out.ref=out\n"
	require.NoError(t, os.WriteFile(b.log4j, []byte(log4j), 0o600))

	id := make([]byte, 16)
	_, _ = rand.Read(id)
	format := b.java("kafka.tools.StorageTool", "format", "--config", b.props,
		"--cluster-id", base64.RawURLEncoding.EncodeToString(id))
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("kafka storage format: %v\n%s", err, out)
	}
	b.Start(t)
	t.Cleanup(func() {
		b.Stop(t)
		if t.Failed() {
			t.Logf("kafka broker output:\n%s", b.out)
		}
	})
	return b
}

func (b *broker) java(args ...string) *exec.Cmd {
	base := []string{"-Xmx384m", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + b.log4j, "-cp", filepath.Join(b.libs, "*")}
	cmd := exec.Command("java", append(base, args...)...)
	cmd.Dir = b.dir
	return cmd
}

func (b *broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// Start runs the broker and waits until it answers a metadata request.
func (b *broker) Start(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	b.cmd = b.java("kafka.Kafka", b.props)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	require.NoError(t, b.cmd.Start())
	b.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(b.cmd, b.exited)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-b.exited:
			t.Fatalf("kafka broker exited at startup:\n%s", b.out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cl.Ping(ctx)
		cancel()
		if err == nil {
			t.Logf("kafka broker up on %s in %s", b.Addr(), time.Since(t0).Round(time.Millisecond))
			return
		}
		require.True(t, time.Now().Before(deadline), "kafka broker did not answer on %s: %v\n%s", b.Addr(), err, b.out)
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the broker, as a crash would.
func (b *broker) Stop(*testing.T) {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
	b.cmd = nil
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
func newSink(t *testing.T, cfg kafka.Config) *kafka.Sink {
	t.Helper()
	log, _ := testLogger(t)
	s, err := kafka.New(t.Context(), cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
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

func messages(topic string, events ...*conveyor.Event) []*sink.Message {
	out := make([]*sink.Message, len(events))
	for i, e := range events {
		out[i] = &sink.Message{Event: e, Destination: topic, Route: "test"}
	}
	return out
}

func publish(t *testing.T, s sink.Sink, topic string, events ...*conveyor.Event) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := s.Publish(ctx, messages(topic, events...))
	require.Len(t, errs, len(events))
	return errs
}

func requireNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "message %d", i)
	}
}

// consumed is a record read back with a plain franz-go consumer.
type consumed struct {
	rec     *kgo.Record
	headers map[string]string
	attrs   cloudevents.Attributes
}

// consume reads up to n records of topic from its start, waiting at most timeout.
func consume(t *testing.T, brokers []string, topic string, n int, timeout time.Duration, extra ...kgo.Opt) []consumed {
	t.Helper()
	opts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, extra...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []consumed
	for len(out) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			if ctx.Err() == nil {
				require.NoError(t, fe.Err, "fetch %s/%d", fe.Topic, fe.Partition)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, rh := range r.Headers {
				h[rh.Key] = string(rh.Value)
			}
			a, err := cloudevents.ParseKafka(h)
			require.NoError(t, err)
			out = append(out, consumed{rec: r, headers: h, attrs: a})
		})
	}
	return out
}
