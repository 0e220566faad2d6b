package relay

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy is exponential backoff with full jitter for message-level failures.
type RetryPolicy struct {
	// Initial is the ceiling of the first delay. Default 1s.
	Initial time.Duration
	// Max caps the ceiling. Default 5m.
	Max time.Duration
	// MaxAttempts is how many attempts an event gets before it goes dead. Default 10.
	MaxAttempts int
}

// Delay returns the wait before the next attempt after attempt number attempts failed:
// uniform in [0, min(Max, Initial*2^(attempts-1))], and never less than floor (a
// broker's Retry-After).
func (p RetryPolicy) Delay(attempts int, floor time.Duration) time.Duration {
	ceiling := p.Initial
	for i := 1; i < attempts && ceiling < p.Max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.Max)
	d := time.Duration(0)
	if ceiling > 0 {
		d = time.Duration(rand.Int64N(int64(ceiling) + 1))
	}
	return max(d, floor)
}
