package sink

import (
	"context"
	"fmt"
	"sync"
)

// FanOut runs publish for every message, each on its own goroutine holding a slot of
// sem, and returns their errors in the order of msgs. sem is shared by all of a sink's
// calls, so its capacity bounds the messages in flight. A message that gets no slot
// before ctx ends fails as transient, with notStarted ("mqtt: publish not started")
// and ctx's error.
func FanOut(ctx context.Context, msgs []*Message, sem chan struct{}, notStarted string, publish func(context.Context, *Message) error) []error {
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = Transient(fmt.Errorf("%s: %w", notStarted, ctx.Err()))
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = publish(ctx, m)
		}()
	}
	wg.Wait()
	return errs
}
