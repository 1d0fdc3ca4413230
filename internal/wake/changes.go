package wake

import (
	"context"
	"sync"
)

// Changes tells waiters that a state changed: C returns a channel that
// Notify closes (and replaces). A waiter takes the channel before it looks
// at the state, so no change falls between the look and the wait. The zero
// value is ready to use.
type Changes struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns the channel the next Notify closes.
func (c *Changes) C() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// Notify wakes every waiter.
func (c *Changes) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// Wait waits until cond holds, looking again after every Notify, or ctx
// ends (then it returns ctx's error).
func (c *Changes) Wait(ctx context.Context, cond func() bool) error {
	for {
		changed := c.C()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
