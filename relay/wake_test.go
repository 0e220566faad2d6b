package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

// notifyingStore is the SQLite store with commit notifications the test sends by hand,
// and a count of claims.
type notifyingStore struct {
	*sqlite.Store
	notify chan struct{}
	claims atomic.Int64
	mu     sync.Mutex
	starts []time.Time
}

func (s *notifyingStore) SupportsListenNotify() bool { return true }

func (s *notifyingStore) Listen(ctx context.Context) (<-chan struct{}, error) {
	out := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.notify:
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (s *notifyingStore) Claim(ctx context.Context, p *store.ClaimParams) ([]*store.Claimed, error) {
	s.claims.Add(1)
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	return s.Store.Claim(ctx, p)
}

// runListening runs a relay on b's store with hand-sent commit notifications until the
// test ends.
func (b *bundle) runListening() *notifyingStore {
	b.t.Helper()
	b.cfg.Listen = true
	b.cfg.PollInterval = time.Hour // nothing here may depend on polling
	ns := &notifyingStore{Store: b.st, notify: make(chan struct{}, 1)}
	r, err := relay.New(b.cfg, ns, map[string]sink.Sink{"main": b.sink}, relay.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	b.t.Cleanup(func() { cancel(); wg.Wait() })
	return ns
}

// With notifications, one wake-up costs about one claim: a partial claim took everything
// committed before it, so the worker goes back to waiting instead of claiming again, and
// the other worker is not woken for nothing. A run cut at per_key is claimed on at once,
// without another notification; polling (an hour here) is not what delivers anything.
func TestListenOneClaimPerWakeup(t *testing.T) {
	b := setup(t)
	b.cfg.Workers = 2
	b.cfg.ClaimCooldown = -1
	ns := b.runListening()

	// The workers' first claims at start find nothing and they wait.
	require.Eventually(t, func() bool { return ns.claims.Load() >= 2 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	idle := ns.claims.Load()

	for i := range 5 {
		b.insert(&outbox.Event{Type: "order.placed", Key: "k1"})
		ns.notify <- struct{}{}
		require.Eventually(t, func() bool { return len(b.sink.delivered()) == i+1 }, 5*time.Second, time.Millisecond)
		time.Sleep(30 * time.Millisecond) // nothing else to do: no further claims
	}
	require.Equal(t, int64(5), ns.claims.Load()-idle, "one claim per notification, none while idle")

	// 12 events of one key with per_key 5: three claims in a row from one notification.
	evs := make([]*outbox.Event, 12)
	for i := range evs {
		evs[i] = &outbox.Event{Type: "order.placed", Key: "k2"}
	}
	b.insert(evs...)
	ns.notify <- struct{}{}
	require.Eventually(t, func() bool { return len(b.sink.delivered()) == 17 }, 5*time.Second, time.Millisecond)
	for i, m := range b.sink.delivered()[5:] {
		require.Equal(t, "k2", m.Event.Key, i)
	}
	require.False(t, b.sink.overlap)
}

// A worker claims at most once per claim_cooldown unless its last claim was full:
// notifications 20ms apart share claims, and every event still arrives.
func TestClaimCooldown(t *testing.T) {
	b := setup(t)
	b.cfg.Workers = 1
	b.cfg.ClaimCooldown = 150 * time.Millisecond
	ns := b.runListening()
	require.Eventually(t, func() bool { return ns.claims.Load() >= 1 }, 5*time.Second, 5*time.Millisecond)

	for i := range 6 {
		b.insert(&outbox.Event{Type: "order.placed", Key: fmt.Sprintf("c%d", i)})
		select {
		case ns.notify <- struct{}{}:
		default: // one already pending covers this commit too
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Eventually(t, func() bool { return len(b.sink.delivered()) == 6 }, 5*time.Second, time.Millisecond)
	ns.mu.Lock()
	starts := append([]time.Time(nil), ns.starts...)
	ns.mu.Unlock()
	require.LessOrEqual(t, len(starts), 4, "6 notifications in 120ms are served by the first claim and at most one per 150ms after it")
	for i := 1; i < len(starts); i++ {
		require.GreaterOrEqual(t, starts[i].Sub(starts[i-1]), 150*time.Millisecond, "claim %d", i)
	}

	// A claim that cut a key at per_key (5 here) is followed at once: 12 events of one
	// key take three claims back to back.
	evs := make([]*outbox.Event, 12)
	for i := range evs {
		evs[i] = &outbox.Event{Type: "order.placed", Key: "k2"}
	}
	b.insert(evs...)
	time.Sleep(200 * time.Millisecond) // past the cooldown
	t0 := time.Now()
	ns.notify <- struct{}{}
	require.Eventually(t, func() bool { return len(b.sink.delivered()) == 18 }, 5*time.Second, time.Millisecond)
	require.Less(t, time.Since(t0), 150*time.Millisecond, "runs cut at per_key are claimed back to back")
}
