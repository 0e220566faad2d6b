package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink/sinktest"
	"github.com/conveyorhq/conveyor/sink/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Two Standard Webhooks secrets, for rotation tests (32 random bytes each).
const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD3Q4iFrSHGnc="
)

// verify is an independent Standard Webhooks verifier, written from the spec rather
// than from the sink: it accepts the request if any v1 signature in the header matches
// HMAC-SHA256(base64decode(secret without "whsec_"), id + "." + timestamp + "." + body),
// and the timestamp is within 5 minutes.
func verify(secret string, h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return err
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp outside the tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, part := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(part, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

type recorded struct {
	header http.Header
	body   []byte
}

// receiver is a webhook receiver on a fixed loopback port that can be stopped and
// started again. It checks every request's signature against its secret, refuses
// bodies over maxBody with 413, and records the rest by path.
type receiver struct {
	secret  string
	maxBody int

	mu      sync.Mutex
	got     map[string][]recorded
	changed chan struct{}
	respond func(w http.ResponseWriter, r *http.Request) bool // optional; true when it answered

	addr string
	srv  *http.Server
}

func newReceiver(t *testing.T, secret string, maxBody int) *receiver {
	t.Helper()
	rc := &receiver{secret: secret, maxBody: maxBody, got: map[string][]recorded{}, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rc.addr = ln.Addr().String()
	rc.serve(ln)
	t.Cleanup(func() { rc.Stop(t) })
	return rc
}

func (rc *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	rc.mu.Lock()
	rc.srv = srv
	rc.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (rc *receiver) URL(path string) string { return "http://" + rc.addr + path }

func (rc *receiver) Stop(*testing.T) {
	rc.mu.Lock()
	srv := rc.srv
	rc.mu.Unlock()
	_ = srv.Close()
}

func (rc *receiver) Start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	require.Eventually(t, func() bool {
		var err error
		ln, err = net.Listen("tcp", rc.addr)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "listen again on %s", rc.addr)
	rc.serve(ln)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit := int64(64 << 20)
	if rc.maxBody > 0 {
		limit = int64(rc.maxBody) + 1
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if rc.maxBody > 0 && len(body) > rc.maxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if rc.secret != "" {
		if err := verify(rc.secret, r.Header, body); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
	}
	rc.mu.Lock()
	respond := rc.respond
	rc.mu.Unlock()
	if respond != nil && respond(w, r) {
		return
	}
	rc.mu.Lock()
	rc.got[r.URL.Path] = append(rc.got[r.URL.Path], recorded{header: r.Header.Clone(), body: body})
	close(rc.changed)
	rc.changed = make(chan struct{})
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// requests returns the requests recorded on path.
func (rc *receiver) requests(path string) []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got[path]
}

// receive waits for n requests on dest's path, at most timeout.
func (rc *receiver) receive(t *testing.T, dest string, n int, timeout time.Duration) []sinktest.Received {
	t.Helper()
	u, err := url.Parse(dest)
	require.NoError(t, err)
	deadline := time.After(timeout)
	for {
		rc.mu.Lock()
		got := rc.got[u.Path]
		changed := rc.changed
		rc.mu.Unlock()
		if len(got) >= n {
			return toReceived(t, got)
		}
		select {
		case <-changed:
		case <-deadline:
			return toReceived(t, got)
		}
	}
}

func toReceived(t *testing.T, got []recorded) []sinktest.Received {
	t.Helper()
	out := make([]sinktest.Received, 0, len(got))
	for _, g := range got {
		a, err := cloudevents.ParseHTTP(g.header)
		require.NoError(t, err)
		require.Equal(t, a.ID, g.header.Get("webhook-id"), "webhook-id is the event id")
		require.Equal(t, "application/json", g.header.Get("Content-Type"))
		h := map[string]string{}
		for k, v := range g.header {
			if lower := strings.ToLower(k); !strings.HasPrefix(lower, "ce-") {
				h[lower] = v[0]
			}
		}
		out = append(out, sinktest.Received{ID: a.ID, Type: a.Type, Source: a.Source, Subject: a.Subject,
			Time: a.Time, Headers: h, Data: g.body})
	}
	return out
}

func newSink(t *testing.T, cfg webhook.Config) *webhook.Sink {
	t.Helper()
	s, err := webhook.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func event(n int) *conveyor.Event { return sinktest.NewEvent("order.paid", "", n) }
