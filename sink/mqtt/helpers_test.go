package mqtt_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink/mqtt"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// Environment set by `scripts/services.sh env` (scripts/services.d/mosquitto.sh).
const (
	envURL       = "CONVEYOR_TEST_MQTT_URL"
	envMosquitto = "CONVEYOR_TEST_MOSQUITTO"
	testUser     = "conveyor"
	testPassword = "conveyor-test-secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// broker is a mosquitto process of the test's own, on a free port, that can be stopped
// and started again with its persistent state (so subscribers' sessions survive).
type broker struct {
	bin, dir, conf string
	port           int
	proc           *testproc.Process
}

// newBroker starts mosquitto with password authentication, an ACL that forbids
// "forbidden/#", and extra config lines.
func newBroker(t *testing.T, extra string) *broker {
	t.Helper()
	b := &broker{bin: testdb.Require(t, envMosquitto), dir: t.TempDir(), port: testproc.FreePort(t),
		proc: testproc.New(t, "mosquitto")}

	passwd := filepath.Join(b.dir, "passwd")
	out, err := exec.Command(filepath.Join(filepath.Dir(b.bin), "..", "bin", "mosquitto_passwd"), "-b", "-c", passwd, testUser, testPassword).CombinedOutput()
	if err != nil {
		out, err = exec.Command("mosquitto_passwd", "-b", "-c", passwd, testUser, testPassword).CombinedOutput()
	}
	require.NoError(t, err, "mosquitto_passwd: %s", out)
	acl := filepath.Join(b.dir, "acl")
	require.NoError(t, os.WriteFile(acl, []byte("user "+testUser+"\ntopic deny forbidden/#\ntopic readwrite #\n"), 0o600))
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	require.NoError(t, os.WriteFile(b.conf, []byte(fmt.Sprintf(`user root
listener %d 127.0.0.1
allow_anonymous false
password_file %s
acl_file %s
persistence true
persistence_location %s/
log_dest stderr
log_type error
log_type warning
%s
`, b.port, passwd, acl, b.dir, extra)), 0o600))
	b.Start(t)
	t.Cleanup(func() { b.Stop(t) })
	return b
}

func (b *broker) URL() string {
	return fmt.Sprintf("mqtt://%s:%s@127.0.0.1:%d", testUser, testPassword, b.port)
}

func (b *broker) Start(t *testing.T) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", b.port)
	b.proc.Start(t, exec.Command(b.bin, "-c", b.conf), 10*time.Second, testproc.Listening(addr))
}

// Stop stops mosquitto with SIGTERM, which saves its state; calling it again does
// nothing.
func (b *broker) Stop(*testing.T) { b.proc.Stop(10 * time.Second) }

// consumer subscribes with QoS 1 and a session that outlives disconnects, and collects
// messages by topic.
type consumer struct {
	cm      *autopaho.ConnectionManager
	mu      sync.Mutex
	got     map[string][]sinktest.Received
	raw     map[string][]*paho.Publish
	changed chan struct{}
}

func newConsumer(t *testing.T, rawURL string) *consumer {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	pw, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil
	c := &consumer{got: map[string][]sinktest.Received{}, raw: map[string][]*paho.Publish{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 10, SessionExpiryInterval: 600,
		// Clean start false even at first (the client id is new anyway): mosquitto 2.0 does
		// not save a clean-start session across its restart, whatever its expiry.
		CleanStartOnInitialConnection: false,
		ReconnectBackoff:              func(int) time.Duration { return 100 * time.Millisecond },
		ConnectUsername:               user, ConnectPassword: []byte(pw),
		ClientConfig: paho.ClientConfig{
			ClientID: "sinktest-consumer-" + fmt.Sprint(time.Now().UnixNano()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				c.record(t, pr.Packet)
				return true, nil
			}},
		},
	})
	require.NoError(t, err)
	c.cm = cm
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, cm.AwaitConnection(wctx))
	return c
}

func (c *consumer) record(t *testing.T, p *paho.Publish) {
	props := map[string]string{}
	var contentType string
	if p.Properties != nil {
		contentType = p.Properties.ContentType
		for _, up := range p.Properties.User {
			props[up.Key] = up.Value
		}
	}
	r := sinktest.Received{Data: p.Payload, Headers: map[string]string{}}
	if a, err := cloudevents.ParseMQTT(contentType, props); err == nil {
		r.ID, r.Type, r.Source, r.Subject, r.Time = a.ID, a.Type, a.Source, a.Subject, a.Time
	} else {
		t.Errorf("message on %s is not a binary-mode CloudEvent: %v", p.Topic, err)
	}
	for k, v := range props {
		r.Headers[k] = v
	}
	c.mu.Lock()
	c.got[p.Topic] = append(c.got[p.Topic], r)
	c.raw[p.Topic] = append(c.raw[p.Topic], p)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// subscribe subscribes to topic with QoS 1 and returns it.
func (c *consumer) subscribe(t *testing.T, topic string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	require.NoError(t, err)
	return topic
}

// receive waits for n messages on topic, at most timeout.
func (c *consumer) receive(t *testing.T, topic string, n int, timeout time.Duration) []sinktest.Received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got := c.got[topic]
		changed := c.changed
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-deadline:
			return got
		}
	}
}

func (c *consumer) packets(topic string) []*paho.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw[topic]
}

func newSink(t *testing.T, cfg mqtt.Config) *mqtt.Sink {
	t.Helper()
	s, err := mqtt.New(context.Background(), cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func event(n int) *conveyor.Event { return sinktest.NewEvent("order.paid", "", n) }
