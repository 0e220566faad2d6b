package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

// G8: a run that fails to authenticate must not print the secret anywhere: not in the
// error, not in a log line at debug level. Each case points the relay at a real server
// with a wrong secret and greps everything the process wrote.
func TestFailingAuthLeaksNoSecret(t *testing.T) {
	t.Parallel()
	sqlitePath := testdb.SQLitePath(t)
	withPassword := func(t *testing.T, envURL, secret string) string {
		u, err := url.Parse(testdb.Require(t, envURL))
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), secret)
		return u.String()
	}
	cases := map[string]func(t *testing.T, secret string) string{
		"postgres": func(t *testing.T, secret string) string {
			return fmt.Sprintf("database: {url: %q}\nsinks: {main: {type: nats, embedded: {enabled: true, port: -1}}}\n", withPassword(t, "CONVEYOR_TEST_PG_DSN", secret))
		},
		"nats": func(t *testing.T, secret string) string {
			port := natsWithAuth(t)
			return fmt.Sprintf("sinks: {main: {type: nats, url: \"nats://127.0.0.1:%d\", user: relay, password: %q, connect_timeout: 2s}}\n", port, secret)
		},
		"kafka-sasl": func(t *testing.T, secret string) string {
			brokers := testdb.Require(t, "CONVEYOR_TEST_KAFKA_SASL_BROKERS")
			user := testdb.Require(t, "CONVEYOR_TEST_KAFKA_USER")
			return fmt.Sprintf("sinks: {main: {type: kafka, brokers: [%q], sasl: {mechanism: SCRAM-SHA-512, user: %q, password: %q}, dial_timeout: 2s, request_timeout: 3s}}\n", brokers, user, secret)
		},
		"rabbitmq": func(t *testing.T, secret string) string {
			return fmt.Sprintf("sinks: {main: {type: rabbitmq, url: %q, connect_timeout: 3s}}\n", withPassword(t, "CONVEYOR_TEST_AMQP_URL", secret))
		},
		"redis": func(t *testing.T, secret string) string {
			return fmt.Sprintf("sinks: {main: {type: redis, url: %q}}\n", withPassword(t, "CONVEYOR_TEST_REDIS_URL", secret))
		},
		"mqtt": func(t *testing.T, secret string) string {
			return fmt.Sprintf("sinks: {main: {type: mqtt, url: %q, connect_timeout: 3s}}\n", withPassword(t, "CONVEYOR_TEST_MQTT_URL", secret))
		},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			secret := "wrong-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			body := cfg(t, secret)
			if !strings.Contains(body, "database:") {
				body += fmt.Sprintf("database: {url: \"sqlite:///%s\"}\n", sqlitePath)
			}
			body += "routes: [{sink: main, destination: \"events.{event_type}\"}]\nlog: {level: debug, format: json}\ntelemetry: {listen: \"off\"}\n"
			file := writeConfig(t, body)
			for _, sub := range [][]string{{"check", "--config", file}, {"run", "--config", file}, {"config", "print", "--config", file}} {
				code, out, errOut := cli(t, sub...)
				// Other packages' outage tests stop the shared brokers (sink/amqp stops the
				// RabbitMQ app) while this runs: wait for the broker to be back.
				for i := 0; i < 60 && strings.Contains(errOut, "connection refused"); i++ {
					time.Sleep(time.Second)
					code, out, errOut = cli(t, sub...)
				}
				require.NotContains(t, out+errOut, secret, "%s %v leaked the secret", name, sub)
				if sub[0] != "config" {
					require.Equal(t, 1, code, "%s %v should fail: %s", name, sub, errOut)
					require.Regexp(t, `(?i)auth|credential|password`, lastLine(errOut), "%s %v must fail on authentication", name, sub)
				}
			}
		})
	}

	t.Run("webhook", func(t *testing.T) {
		t.Parallel()
		// The receiver refuses every request; the signing secret must not show up in the
		// dead events' errors or the logs.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no such signature", http.StatusUnauthorized)
		}))
		t.Cleanup(srv.Close)
		path := testdb.SQLitePath(t)
		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
		require.NoError(t, err)
		_, err = outbox.Insert(context.Background(), st.DB(), outbox.SQLite, &outbox.Event{Type: "t", Source: "s", Data: map[string]int{"n": 1}})
		require.NoError(t, err)
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		file := writeConfig(t, fmt.Sprintf(`database: {url: "sqlite:///%s"}
sinks: {main: {type: webhook, secrets: [%q]}}
routes: [{sink: main, destination: %q}]
relay: {poll_interval: 50ms}
log: {level: debug, format: json}
telemetry: {listen: "off"}
`, path, secret, srv.URL+"/{event_type}"))
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb bytes.Buffer
		done := make(chan int)
		go func() { done <- mainContext(ctx, []string{"run", "--config", file}, &out, &errb) }()
		require.Eventually(t, func() bool {
			var n int
			_ = st.DB().QueryRow(`SELECT count(*) FROM conveyor_event WHERE status = 2`).Scan(&n)
			return n == 1
		}, 20*time.Second, 50*time.Millisecond)
		cancel()
		require.Equal(t, 0, <-done)
		var lastErr string
		require.NoError(t, st.DB().QueryRow(`SELECT last_error FROM conveyor_event`).Scan(&lastErr))
		require.Contains(t, lastErr, "401")
		secretBody := strings.TrimPrefix(secret, "whsec_")
		for _, s := range []string{out.String(), errb.String(), lastErr} {
			require.NotContains(t, s, secretBody)
		}
		_ = st.Close()
	})
}

// natsWithAuth starts a nats-server that requires user relay / a password nobody has.
func natsWithAuth(t *testing.T) int {
	t.Helper()
	bin := testdb.Require(t, "CONVEYOR_TEST_NATS_SERVER")
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(conf, []byte("authorization { user: relay, password: \"the-right-one-9f8e\" }\n"), 0o600))
	port := freeTCPPort(t)
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "js"), "-c", conf)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitTCP(t, port)
	return port
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(t *testing.T, port int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 15*time.Second, 20*time.Millisecond)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
