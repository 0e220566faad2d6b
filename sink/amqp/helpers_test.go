package amqp_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/sink/amqp"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// Environment set by `scripts/services.sh env` (scripts/services.d/rabbitmq.sh).
const (
	envURL        = "CONVEYOR_TEST_AMQP_URL"
	envCtl        = "CONVEYOR_TEST_RABBITMQCTL"
	envMaxMessage = "CONVEYOR_TEST_AMQP_MAX_MESSAGE"
	testPassword  = "conveyor-test-secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func brokerURL(t *testing.T) string {
	t.Helper()
	return testdb.Require(t, envURL)
}

// rabbitmqctl runs the private node's rabbitmqctl.
func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	ctl := testdb.Require(t, envCtl)
	out, err := exec.Command(ctl, append([]string{"-q"}, args...)...).CombinedOutput()
	require.NoError(t, err, "rabbitmqctl %v: %s", args, out)
}

func maxMessage(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(os.Getenv(envMaxMessage))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

func newSink(t *testing.T, cfg amqp.Config) *amqp.Sink {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = brokerURL(t)
	}
	s, err := amqp.New(context.Background(), cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// broker is a test's own exchange with a queue per destination, declared over an admin
// connection and deleted when the test ends.
type broker struct {
	url      string
	exchange string
	conn     *amqp091.Connection
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{url: brokerURL(t), exchange: "t." + uuid.NewString()[:8]}
	conn, err := amqp091.Dial(b.url)
	require.NoError(t, err)
	b.conn = conn
	b.do(t, func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclare(b.exchange, "topic", true, false, false, false, nil)
	})
	t.Cleanup(func() {
		if conn, err := amqp091.Dial(b.url); err == nil { // the admin connection may have been closed by a test
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(b.exchange, false, false)
			}
			_ = conn.Close()
		}
		_ = b.conn.Close()
	})
	return b
}

// do runs fn on a fresh channel of a fresh connection (tests may close connections).
func (b *broker) do(t *testing.T, fn func(ch *amqp091.Channel) error) {
	t.Helper()
	conn, err := amqp091.Dial(b.url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, fn(ch))
}

// queue declares a durable queue bound to the exchange with key and returns the
// destination "exchange/key". Queues expire 10 minutes after last use.
func (b *broker) queue(t *testing.T, key string) string {
	t.Helper()
	q := b.exchange + "." + key
	b.do(t, func(ch *amqp091.Channel) error {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-expires": int32(600000)}); err != nil {
			return err
		}
		return ch.QueueBind(q, key, b.exchange, false, nil)
	})
	t.Cleanup(func() {
		if conn, err := amqp091.Dial(b.url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			_ = conn.Close()
		}
	})
	return b.exchange + "/" + key
}

// receive consumes up to n messages from the queue behind dest, waiting at most timeout,
// and checks the AMQP properties of each against its CloudEvents headers.
func (b *broker) receive(t *testing.T, dest string, n int, timeout time.Duration) []sinktest.Received {
	t.Helper()
	_, key, _ := strings.Cut(dest, "/")
	return b.receiveQueue(t, b.exchange+"."+key, n, timeout)
}

// receiveQueue consumes up to n messages from queue q.
func (b *broker) receiveQueue(t *testing.T, q string, n int, timeout time.Duration) []sinktest.Received {
	t.Helper()
	conn, err := amqp091.Dial(b.url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.Qos(500, 0, false))
	deliveries, err := ch.Consume(q, "", false, true, false, false, nil)
	require.NoError(t, err)
	var out []sinktest.Received
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case d := <-deliveries:
			out = append(out, toReceived(t, d))
			require.NoError(t, d.Ack(false))
		case <-deadline:
			return out
		}
	}
	return out
}

func toReceived(t *testing.T, d amqp091.Delivery) sinktest.Received {
	t.Helper()
	a, err := cloudevents.ParseAMQP(d.ContentType, d.Headers)
	require.NoError(t, err)
	require.Equal(t, "application/json", d.ContentType)
	require.Equal(t, a.ID, d.MessageId, "message_id is the event id")
	require.Equal(t, a.Type, d.Type, "type is the event type")
	require.Equal(t, a.Source, d.AppId, "app_id is the source")
	require.Equal(t, amqp091.Persistent, d.DeliveryMode)
	require.Equal(t, a.Time.Unix(), d.Timestamp.Unix(), "timestamp is the event time, in seconds")
	h := map[string]string{}
	for k, v := range d.Headers {
		if !strings.HasPrefix(k, cloudevents.AMQPPrefix) {
			h[k] = fmt.Sprint(v)
		}
	}
	return sinktest.Received{ID: a.ID, Type: a.Type, Source: a.Source, Subject: a.Subject, Time: a.Time, Headers: h, Data: d.Body}
}

func event(n int) *conveyor.Event { return sinktest.NewEvent("order.paid", "", n) }
