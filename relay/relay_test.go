package relay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSink records deliveries; fail decides an error per message.
type fakeSink struct {
	mu       sync.Mutex
	got      []*sink.Message
	inFlight map[string]int
	fail     func(m *sink.Message) error
	delay    time.Duration
	overlap  bool // a key had two messages in flight
}

func (f *fakeSink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	f.mu.Lock()
	if f.inFlight == nil {
		f.inFlight = map[string]int{}
	}
	for _, m := range msgs {
		if m.Event.Key != "" {
			f.inFlight[m.Event.Key]++
			if f.inFlight[m.Event.Key] > 1 {
				f.overlap = true
			}
		}
	}
	f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	errs := make([]error, len(msgs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range msgs {
		if m.Event.Key != "" {
			f.inFlight[m.Event.Key]--
		}
		if f.fail != nil {
			errs[i] = f.fail(m)
		}
		if errs[i] == nil {
			f.got = append(f.got, m)
		}
	}
	return errs
}

func (f *fakeSink) Close(context.Context) error { return nil }

func (f *fakeSink) delivered() []*sink.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sink.Message(nil), f.got...)
}

type bundle struct {
	t    *testing.T
	db   *sql.DB
	st   *sqlite.Store
	sink *fakeSink
	cfg  relay.Config
}

func setup(t *testing.T) *bundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: testdb.SQLitePath(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &bundle{t: t, db: st.DB(), st: st, sink: &fakeSink{}, cfg: relay.Config{
		ID: "test-relay", BatchSize: 50, PerKey: 5, PollInterval: 20 * time.Millisecond, Lease: 10 * time.Second,
		Routes: []relay.Route{{Name: "all", EventType: "*", Sink: "main", Destination: "events.{event_type}",
			Retry: relay.RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3}}},
	}}
}

func (b *bundle) relay() *relay.Relay {
	r, err := relay.New(b.cfg, b.st, map[string]sink.Sink{"main": b.sink}, relay.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b.t, err)
	return r
}

func (b *bundle) insert(evs ...*outbox.Event) []uuid.UUID {
	for _, e := range evs {
		e.Source = "test"
		if e.Data == nil {
			e.Data = map[string]int{"n": 1}
		}
	}
	ids, err := outbox.Insert(context.Background(), b.db, outbox.SQLite, evs...)
	require.NoError(b.t, err)
	return ids
}

// drain runs cycles until nothing is claimable.
func (b *bundle) drain(r *relay.Relay) {
	for range 200 {
		n, err := r.Cycle(context.Background())
		require.NoError(b.t, err)
		if n == 0 {
			return
		}
	}
	b.t.Fatal("relay did not drain")
}

func (b *bundle) status(id uuid.UUID) (conveyor.Status, int, string) {
	var s conveyor.Status
	var attempts int
	var lastErr sql.NullString
	require.NoError(b.t, b.db.QueryRow(`SELECT status, attempts, last_error FROM conveyor_event WHERE id = ?`,
		sqlite.HexID(id)).Scan(&s, &attempts, &lastErr))
	return s, attempts, lastErr.String
}

func TestPerKeyOrderAcrossWaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var evs []*outbox.Event
	for i := range 30 {
		evs = append(evs, &outbox.Event{Type: "t", Key: fmt.Sprintf("k%d", i%3), Data: map[string]int{"seq": i / 3}})
	}
	evs = append(evs, &outbox.Event{Type: "free"}, &outbox.Event{Type: "free"})
	b.insert(evs...)
	b.drain(b.relay())
	got := b.sink.delivered()
	require.Len(t, got, 32)
	require.False(t, b.sink.overlap, "two events of one key were in flight at once")
	last := map[string]int{}
	for _, m := range got {
		if m.Event.Key == "" {
			require.Equal(t, "events.free", m.Destination)
			continue
		}
		var d struct{ Seq int }
		require.NoError(t, json.Unmarshal(m.Event.Data, &d))
		prev, ok := last[m.Event.Key]
		if ok {
			require.Equal(t, prev+1, d.Seq, "key %s", m.Event.Key)
		} else {
			require.Equal(t, 0, d.Seq)
		}
		last[m.Event.Key] = d.Seq
	}
}

func TestMessageFailureRetriesThenDies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.fail = func(m *sink.Message) error {
		if m.Event.Type == "bad" {
			return errors.New("nack")
		}
		return nil
	}
	ids := b.insert(&outbox.Event{Type: "bad", Key: "k"}, &outbox.Event{Type: "good", Key: "k"})
	r := b.relay()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, err := r.Cycle(context.Background())
		require.NoError(t, err)
		if s, _, _ := b.status(ids[1]); s == conveyor.StatusPublished {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s, attempts, lastErr := b.status(ids[0])
	require.Equal(t, conveyor.StatusDead, s)
	require.Equal(t, 3, attempts)
	require.Contains(t, lastErr, "nack")
	require.Contains(t, lastErr, "gave up after 3 attempts")
	s, attempts, _ = b.status(ids[1])
	require.Equal(t, conveyor.StatusPublished, s, "on_dead skip lets the key move on")
	require.Equal(t, 1, attempts)
}

func TestTransientFailureUsesNoAttemptAndOpensCircuit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var down sync.Mutex
	broken := true
	b.sink.fail = func(*sink.Message) error {
		down.Lock()
		defer down.Unlock()
		if broken {
			return sink.Transient(errors.New("connection refused"))
		}
		return nil
	}
	ids := b.insert(&outbox.Event{Type: "t", Key: "k"}, &outbox.Event{Type: "t", Key: "k"})
	r := b.relay()
	for range 3 {
		_, err := r.Cycle(context.Background())
		require.NoError(t, err)
	}
	st, _ := r.Breaker("main").State()
	require.Equal(t, relay.BreakerOpen, st)
	s, attempts, lastErr := b.status(ids[0])
	require.Equal(t, conveyor.StatusPending, s)
	require.Equal(t, 0, attempts, "an outage must not use attempts")
	require.Contains(t, lastErr, "connection refused")
	down.Lock()
	broken = false
	down.Unlock()
	require.Eventually(t, func() bool {
		_, err := r.Cycle(context.Background())
		require.NoError(t, err)
		s, _, _ := b.status(ids[1])
		return s == conveyor.StatusPublished
	}, 10*time.Second, 50*time.Millisecond)
	st, _ = r.Breaker("main").State()
	require.Equal(t, relay.BreakerClosed, st)
}

func TestPermanentFailureIsDeadAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.fail = func(*sink.Message) error { return sink.Permanent(errors.New("message too large")) }
	ids := b.insert(&outbox.Event{Type: "t"})
	_, err := b.relay().Cycle(context.Background())
	require.NoError(t, err)
	s, attempts, lastErr := b.status(ids[0])
	require.Equal(t, conveyor.StatusDead, s)
	require.Equal(t, 1, attempts)
	require.Contains(t, lastErr, "too large")
}

func TestPoisonEventEndsDead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insert(&outbox.Event{Type: "t"})
	// Simulate three crashed deliveries: attempts started, never finished.
	_, err := b.db.Exec(`UPDATE conveyor_event SET attempts = 3 WHERE id = ?`, sqlite.HexID(ids[0]))
	require.NoError(t, err)
	_, err = b.relay().Cycle(context.Background())
	require.NoError(t, err)
	s, _, lastErr := b.status(ids[0])
	require.Equal(t, conveyor.StatusDead, s)
	require.Contains(t, lastErr, "poison")
	require.Empty(t, b.sink.delivered())
}

func TestNoRoute(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"dead", "block"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.cfg.NoRoute = mode
			b.cfg.Routes[0].EventType = "order.*"
			ids := b.insert(&outbox.Event{Type: "invoice.issued"})
			_, err := b.relay().Cycle(context.Background())
			require.NoError(t, err)
			s, attempts, lastErr := b.status(ids[0])
			require.Contains(t, lastErr, "no route")
			if mode == "dead" {
				require.Equal(t, conveyor.StatusDead, s)
			} else {
				require.Equal(t, conveyor.StatusPending, s)
				require.Equal(t, 0, attempts)
			}
		})
	}
}

func TestBadRowsAreDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"}, &outbox.Event{Type: "t"}, &outbox.Event{Type: "ok"})
	// SQLite's JSON CHECK constraint refuses invalid JSON, so only rows that bypassed it can
	// hold it; headers that are not an object and an empty type are reachable.
	_, err := b.db.Exec(`UPDATE conveyor_event SET event_type = '' WHERE id = ?`, sqlite.HexID(ids[0]))
	require.NoError(t, err)
	_, err = b.db.Exec(`UPDATE conveyor_event SET headers = '[1,2]' WHERE id = ?`, sqlite.HexID(ids[1]))
	require.NoError(t, err)
	_, err = b.db.Exec(`UPDATE conveyor_event SET status = 7 WHERE id = ?`, sqlite.HexID(ids[2]))
	require.NoError(t, err)
	b.drain(b.relay())
	s, _, e := b.status(ids[0])
	require.Equal(t, conveyor.StatusDead, s)
	require.Contains(t, e, "event_type is empty")
	s, _, e = b.status(ids[1])
	require.Equal(t, conveyor.StatusDead, s)
	require.Contains(t, e, "headers is not a JSON object")
	s, _, _ = b.status(ids[3])
	require.Equal(t, conveyor.StatusPublished, s)
	// An unknown status is never claimed or changed.
	s, _, _ = b.status(ids[2])
	require.Equal(t, conveyor.Status(7), s)
}

func TestRunDrainsOnShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.delay = 300 * time.Millisecond
	ids := b.insert(&outbox.Event{Type: "t"})
	r := b.relay()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // the publish is in flight now
	cancel()
	require.NoError(t, <-done)
	s, _, _ := b.status(ids[0])
	require.Equal(t, conveyor.StatusPublished, s, "an in-flight publish finishes and settles on shutdown")
}

func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()
	p := relay.RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, MaxAttempts: 5}
	for range 100 {
		require.LessOrEqual(t, p.Delay(1, 0), 100*time.Millisecond)
		require.LessOrEqual(t, p.Delay(10, 0), time.Second)
		require.GreaterOrEqual(t, p.Delay(2, 500*time.Millisecond), 500*time.Millisecond)
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	ev := &conveyor.Event{Type: "order.placed", Source: "shop", Key: "c-1", Subject: "o-9", Headers: map[string]string{"tenant": "acme"}}
	require.Equal(t, "acme.order.placed.c-1.o-9.shop", relay.Render("{header.tenant}.{event_type}.{key}.{subject}.{source}", ev))
}

func TestOnDeadBlockHoldsKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.Routes[0].OnDead = "block"
	b.sink.fail = func(m *sink.Message) error {
		if m.Event.Type == "bad" {
			return sink.Permanent(errors.New("rejected"))
		}
		return nil
	}
	ids := b.insert(&outbox.Event{Type: "bad", Key: "k"}, &outbox.Event{Type: "good", Key: "k"}, &outbox.Event{Type: "good", Key: "other"})
	b.drain(b.relay())
	s, _, _ := b.status(ids[0])
	require.Equal(t, conveyor.StatusDead, s)
	s, attempts, _ := b.status(ids[1])
	require.Equal(t, conveyor.StatusPending, s, "the key stays blocked behind its dead event")
	require.Equal(t, 0, attempts)
	s, _, _ = b.status(ids[2])
	require.Equal(t, conveyor.StatusPublished, s, "other keys are not affected")
}

func TestDeadLetterDestination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dlq := &fakeSink{}
	b.cfg.Routes[0].DeadLetter = &relay.DeadLetter{Sink: "dlq", Destination: "dead.{event_type}"}
	b.sink.fail = func(*sink.Message) error { return sink.Permanent(errors.New("too large")) }
	ids := b.insert(&outbox.Event{Type: "order.placed", Key: "k", Headers: map[string]string{"tenant": "acme"}})
	r, err := relay.New(b.cfg, b.st, map[string]sink.Sink{"main": b.sink, "dlq": dlq}, relay.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	b.drain(r)
	s, _, _ := b.status(ids[0])
	require.Equal(t, conveyor.StatusDead, s)
	got := dlq.delivered()
	require.Len(t, got, 1)
	require.Equal(t, "dead.order.placed", got[0].Destination)
	require.Equal(t, ids[0], got[0].Event.ID, "the dead letter keeps the event id")
	require.Contains(t, got[0].Event.Headers[relay.HeaderDeadReason], "too large")
	require.Equal(t, "1", got[0].Event.Headers[relay.HeaderDeadAttempts])
	require.Equal(t, "acme", got[0].Event.Headers["tenant"])
}

func TestRouteMatchesHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := &fakeSink{}
	b.cfg.Routes = append([]relay.Route{{Name: "acme", EventType: "order.*", Headers: map[string]string{"tenant": "acme*"},
		Sink: "other", Destination: "acme.{event_type}"}}, b.cfg.Routes...)
	b.insert(&outbox.Event{Type: "order.placed", Headers: map[string]string{"tenant": "acme-eu"}},
		&outbox.Event{Type: "order.placed", Headers: map[string]string{"tenant": "globex"}},
		&outbox.Event{Type: "order.placed"})
	r, err := relay.New(b.cfg, b.st, map[string]sink.Sink{"main": b.sink, "other": other}, relay.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	b.drain(r)
	require.Len(t, other.delivered(), 1)
	require.Equal(t, "acme.order.placed", other.delivered()[0].Destination)
	require.Len(t, b.sink.delivered(), 2)
}
