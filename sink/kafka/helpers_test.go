package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink/kafka"
	"github.com/conveyorhq/conveyor/sink/sinktest"
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
	proc                    *testproc.Process
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{libs: testdb.Require(t, EnvLibs), dir: t.TempDir(), port: testproc.FreePort(t), proc: testproc.New(t, "kafka broker")}
	controller := testproc.FreePort(t)
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	b.proc.Start(t, b.java("kafka.Kafka", b.props), 90*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.Ping(ctx)
	})
	t.Logf("kafka broker up on %s in %s", b.Addr(), time.Since(t0).Round(time.Millisecond))
}

// Stop kills the broker, as a crash would.
func (b *broker) Stop(*testing.T) { b.proc.Kill() }

// newSink opens a sink and closes it when the test ends.
func newSink(t *testing.T, cfg kafka.Config) *kafka.Sink {
	t.Helper()
	return sinktest.Open(t, func(log *slog.Logger) (*kafka.Sink, error) { return kafka.New(t.Context(), cfg, log) })
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
