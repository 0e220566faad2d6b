package relay

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	b := &Breaker{MinCooldown: time.Second, MaxCooldown: 4 * time.Second, now: func() time.Time { return now }}
	ok, _ := b.Allow()
	require.True(t, ok)
	require.True(t, b.Failure())
	ok, wait := b.Allow()
	require.False(t, ok)
	require.Equal(t, time.Second, wait)
	now = now.Add(time.Second)
	ok, _ = b.Allow()
	require.True(t, ok, "after the cooldown one probe goes through")
	ok, _ = b.Allow()
	require.False(t, ok, "only one probe at a time")
	b.Failure()
	_, wait = b.Allow()
	require.Equal(t, 2*time.Second, wait, "a failed probe doubles the cooldown")
	now = now.Add(2 * time.Second)
	b.Allow()
	b.Failure()
	now = now.Add(4 * time.Second)
	b.Allow()
	b.Failure()
	_, wait = b.Allow()
	require.Equal(t, 4*time.Second, wait, "capped at MaxCooldown")
	now = now.Add(4 * time.Second)
	ok, _ = b.Allow()
	require.True(t, ok)
	require.True(t, b.Success())
	st, _ := b.State()
	require.Equal(t, BreakerClosed, st)
}
