package sink

import (
	"context"
	"sync"
)

// Gate admits a sink's publishes until it closes, so that the sink's Close can wait for
// those in flight. The zero value is open.
type Gate struct {
	mu     sync.Mutex
	closed bool
	active sync.WaitGroup
}

// Enter admits one publish and reports true, or reports false once the gate is closed.
// An admitted publish calls Leave when it is done.
func (g *Gate) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.active.Add(1)
	return true
}

// Leave ends a publish that Enter admitted.
func (g *Gate) Leave() { g.active.Done() }

// Closed reports whether Close was called.
func (g *Gate) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close stops admitting publishes and waits until the admitted ones have left, or ctx
// ends: then it returns ctx's error.
func (g *Gate) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()

	idle := make(chan struct{})
	go func() { g.active.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
