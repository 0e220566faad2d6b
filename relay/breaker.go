package relay

import (
	"sync"
	"time"
)

// BreakerState is a circuit breaker's state.
type BreakerState int

// Breaker states; the numbers are exported as the circuit state metric.
const (
	BreakerClosed   BreakerState = 0
	BreakerOpen     BreakerState = 1
	BreakerHalfOpen BreakerState = 2
)

func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// Breaker is a per-sink circuit breaker. A transient failure opens it; while open, no
// work goes to the sink. After the cooldown one probe is let through (half-open): success
// closes it, failure opens it again with a doubled cooldown, up to MaxCooldown.
type Breaker struct {
	// MinCooldown is the first open period. Default 1s.
	MinCooldown time.Duration
	// MaxCooldown caps the open period. Default 30s.
	MaxCooldown time.Duration

	mu       sync.Mutex
	state    BreakerState
	until    time.Time
	cooldown time.Duration
	probing  bool
	since    time.Time
	now      func() time.Time
}

func (b *Breaker) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// Allow reports whether work may go to the sink now. When it may not, wait says how
// long until the next probe.
func (b *Breaker) Allow() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return true, 0
	case BreakerOpen:
		now := b.clock()
		if now.Before(b.until) {
			return false, b.until.Sub(now)
		}
		b.state, b.probing = BreakerHalfOpen, true
		return true, 0
	default: // half-open: one probe at a time
		if b.probing {
			return false, b.cooldownOrMin() / 4
		}
		b.probing = true
		return true, 0
	}
}

func (b *Breaker) cooldownOrMin() time.Duration {
	if b.cooldown > 0 {
		return b.cooldown
	}
	return b.min()
}

func (b *Breaker) min() time.Duration {
	if b.MinCooldown > 0 {
		return b.MinCooldown
	}
	return time.Second
}

func (b *Breaker) max() time.Duration {
	if b.MaxCooldown > 0 {
		return b.MaxCooldown
	}
	return 30 * time.Second
}

// Success records a delivered message; it closes the breaker.
func (b *Breaker) Success() (changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed = b.state != BreakerClosed
	b.state, b.cooldown, b.probing = BreakerClosed, 0, false
	return changed
}

// Failure records a destination outage; it opens the breaker.
func (b *Breaker) Failure() (changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed = b.state != BreakerOpen
	switch {
	case b.state == BreakerHalfOpen || b.state == BreakerOpen:
		b.cooldown = min(b.cooldown*2, b.max())
	default:
		b.cooldown = b.min()
		b.since = b.clock()
	}
	if b.cooldown == 0 {
		b.cooldown = b.min()
	}
	b.state, b.probing = BreakerOpen, false
	b.until = b.clock().Add(b.cooldown)
	return changed
}

// State returns the current state and, when not closed, since when.
func (b *Breaker) State() (BreakerState, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.since
}
