package relay_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/store/sqlite"
)

func TestJanitorAppliesRetentionWhileTheRelayRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// In id order, as in life: an old dead row, an old pending one, two old published
	// rows, then a recent published one, where the purge walk ends.
	dead := b.insert(&outbox.Event{Type: "d"})
	_, err := b.db.Exec(`UPDATE conveyor_event SET status = 2, created_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-40 days') WHERE id = ?`, sqlite.HexID(dead[0]))
	require.NoError(t, err)
	pending := b.insert(&outbox.Event{Type: "p", DeliverAt: time.Now().Add(time.Hour)})
	_, err = b.db.Exec(`UPDATE conveyor_event SET created_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-400 days') WHERE id = ?`, sqlite.HexID(pending[0]))
	require.NoError(t, err)
	b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"}, &outbox.Event{Type: "t", Key: "k"})
	b.drain(b.relay())
	_, err = b.db.Exec(`UPDATE conveyor_event SET published_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-2 days'),
       created_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-2 days')
 WHERE id IN (SELECT id FROM conveyor_event WHERE status = 1 ORDER BY id LIMIT 2)`)
	require.NoError(t, err)

	j := &relay.Janitor{Store: b.st, Published: 24 * time.Hour, Interval: time.Hour, BatchSize: 1, Pause: time.Millisecond,
		Actor: "test-relay", Logger: slog.New(slog.DiscardHandler)}
	j.Start(context.Background())
	j.Start(context.Background()) // twice is fine
	require.Eventually(t, func() bool { return b.count("status = 1") == 1 }, 5*time.Second, 10*time.Millisecond)
	j.Stop()
	j.Stop()
	require.Equal(t, 1, b.count("status = 2"), "dead events stay without retention.dead")
	require.Equal(t, 1, b.count("status = 0"), "pending events are never deleted")
	require.Equal(t, 2, b.countAudit("action = 'purge' AND actor = 'test-relay' AND event IS NULL"), "one audit row per batch")

	j2 := &relay.Janitor{Store: b.st, Published: 24 * time.Hour, Dead: 30 * 24 * time.Hour, Actor: "test-relay", Logger: slog.New(slog.DiscardHandler)}
	n, err := j2.RunOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.Equal(t, 0, b.count("status = 2"))
	require.Equal(t, 1, b.count("status = 0"))
}

func TestJanitorOffDoesNothing(t *testing.T) {
	t.Parallel()
	j := &relay.Janitor{}
	j.Start(context.Background())
	j.Stop()
	n, err := j.RunOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
}

func (b *bundle) count(where string) int {
	var n int
	require.NoError(b.t, b.db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE `+where).Scan(&n))
	return n
}

func (b *bundle) countAudit(where string) int {
	var n int
	require.NoError(b.t, b.db.QueryRow(`SELECT count(*) FROM conveyor_audit WHERE `+where).Scan(&n))
	return n
}
