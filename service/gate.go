package service

import (
	"context"
	"sync"
)

// gate tells the runners of a Service whether to fetch. Every change ends
// the current epoch (a context), which wakes the runners waiting while
// paused and interrupts the fetches waiting for a first message.
type gate struct {
	mu       sync.Mutex
	paused   bool
	stopping bool
	epoch    context.Context
	end      context.CancelFunc
}

func newGate() *gate {
	g := &gate{}
	g.epoch, g.end = context.WithCancel(context.Background())
	return g
}

func (g *gate) state() (paused, stopping bool, epoch context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused, g.stopping, g.epoch
}

// set changes the gate and reports whether anything changed.
func (g *gate) set(change func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	paused, stopping := g.paused, g.stopping
	change()
	if paused == g.paused && stopping == g.stopping {
		return false
	}
	g.end()
	g.epoch, g.end = context.WithCancel(context.Background())
	return true
}

func (g *gate) pause(p bool) bool { return g.set(func() { g.paused = p }) }
func (g *gate) stop() bool        { return g.set(func() { g.stopping = true }) }
