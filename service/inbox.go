package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/config"
)

// SourceFunc opens the source of one runner of an Inbox. Start calls it once
// per runner; the runner closes the source when it ends if the source has a
// Close method (Close() or Close() error): a natsjs.Subscriber then hands
// back the messages it pulled ahead.
type SourceFunc func(ctx context.Context) (inbox.Source, error)

// DefaultConcurrency is the default of InboxConfig.Concurrency.
const DefaultConcurrency = 1

// maxConcurrency bounds InboxConfig.Concurrency.
const maxConcurrency = 1024

// InboxConfig says where an Inbox's deliveries come from.
type InboxConfig struct {
	// Source opens one runner's source. Required.
	Source SourceFunc
	// Concurrency is how many runners process the inbox at once, each
	// with a source of its own (a natsjs.Subscriber serves one Run at a
	// time; several subscribers of one durable consumer share its
	// messages). Default 1.
	Concurrency int
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c InboxConfig) WithDefaults() (InboxConfig, error) {
	if c.Source == nil {
		return c, &eos.ConfigError{Field: "service.InboxConfig.Source", Reason: "nil"}
	}
	err := config.Int("service.InboxConfig.Concurrency", &c.Concurrency, DefaultConcurrency, maxConcurrency)
	return c, err
}

// Inbox is one consumer of a Service: its processor's Run, its sources and
// its health. Make it with NewInbox; give it to one Service.
type Inbox struct {
	consumer string
	run      func(ctx context.Context, src inbox.Source) error
	cfg      InboxConfig
	health   *inboxHealth
}

// NewInbox makes the processor of an Inbox, inbox.New(drv, h, cfg) with the
// Service's health hook first in cfg.Hooks, and returns it too, for its
// admin API (DeadLetters, Requeue, …) and ProcessTx.
func NewInbox[TTx any](drv driver.Driver[TTx], h inbox.Handler[TTx], cfg inbox.Config, ic InboxConfig) (*Inbox, *inbox.Processor[TTx], error) {
	return newInbox(cfg, ic, func(cfg inbox.Config) (*inbox.Processor[TTx], error) { return inbox.New(drv, h, cfg) })
}

// NewBatchInbox is NewInbox for a set-based handler: its processor is
// inbox.NewBatch(drv, bh, cfg), with the Service's health hook first in
// cfg.Hooks.
func NewBatchInbox[TTx any](drv driver.Driver[TTx], bh inbox.BatchHandler[TTx], cfg inbox.Config, ic InboxConfig) (*Inbox, *inbox.Processor[TTx], error) {
	return newInbox(cfg, ic, func(cfg inbox.Config) (*inbox.Processor[TTx], error) { return inbox.NewBatch(drv, bh, cfg) })
}

// newInbox checks ic, adds the health hook to cfg and makes the processor
// with newProc.
func newInbox[TTx any](cfg inbox.Config, ic InboxConfig, newProc func(inbox.Config) (*inbox.Processor[TTx], error)) (*Inbox, *inbox.Processor[TTx], error) {
	ic, err := ic.WithDefaults()
	if err != nil {
		return nil, nil, err
	}
	hl := &inboxHealth{consumer: cfg.Consumer}
	cfg.Hooks = append([]inbox.Hook{hl}, cfg.Hooks...)
	p, err := newProc(cfg)
	if err != nil {
		return nil, nil, err
	}
	return &Inbox{consumer: cfg.Consumer, run: p.Run, cfg: ic, health: hl}, p, nil
}

// Consumer returns the inbox's consumer name.
func (ib *Inbox) Consumer() string { return ib.consumer }

// inboxHealth is an Inbox's hook: a store failure while a runner holds a
// batch stalls the inbox until a batch commits. A failure while no runner
// holds one (an admin call, ProcessTx) is recorded as the last error only.
type inboxHealth struct {
	consumer string
	owner    atomic.Pointer[Service] // set by New
	holding  atomic.Int32            // batches fetched and not yet settled

	mu      sync.Mutex
	stalled bool
}

// OnError implements inbox.ErrorHook.
func (h *inboxHealth) OnError(_ context.Context, _, _ string, err error) {
	if h.holding.Load() > 0 {
		h.mu.Lock()
		h.stalled = true
		h.mu.Unlock()
	}
	if s := h.owner.Load(); s != nil {
		s.noteError(err)
	}
}

// OnBatchDone implements inbox.BatchDoneHook.
func (h *inboxHealth) OnBatchDone(context.Context, *inbox.BatchResult) {
	h.mu.Lock()
	was := h.stalled
	h.stalled = false
	h.mu.Unlock()
	if s := h.owner.Load(); was && s != nil {
		s.changes.Notify()
	}
}

func (h *inboxHealth) isStalled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stalled
}

// errStopping is what a runner's source returns once the Service stops:
// Run ends with it, after its batch in flight.
var errStopping = errors.New("service: stopping")

// gatedSource is a runner's source behind the Service's gate: while the
// gate is paused Fetch waits, once it is stopping Fetch returns
// errStopping, and a change of the gate interrupts a Fetch waiting for its
// first message (what it already took is returned and processed).
type gatedSource struct {
	src    inbox.Source
	gate   *gate
	health *inboxHealth
	held   []*heldBatch // the batches this runner fetched, for release
}

// release ends the hold of the runner's batches once its Run has ended:
// what it left unsettled is no longer worked on.
func (g *gatedSource) release() {
	for _, b := range g.held {
		b.finish()
	}
	g.held = nil
}

// Fetch implements inbox.Source. The inbox holds a batch it fetched until
// every delivery of it is settled (Run fetches the next one meanwhile):
// the deliveries are wrapped to count that.
func (g *gatedSource) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	for {
		paused, stopping, epoch := g.gate.state()
		if stopping {
			return nil, errStopping
		}
		if paused {
			select {
			case <-epoch.Done():
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		fctx, cancel := context.WithCancel(ctx)
		unhook := context.AfterFunc(epoch, cancel)
		ds, err := g.src.Fetch(fctx, max, maxWait)
		unhook()
		cancel()
		switch {
		case len(ds) > 0:
			b, held := g.health.hold(ds)
			g.held = append(slices.DeleteFunc(g.held, (*heldBatch).finished), b)
			return held, err
		case err == nil:
			return nil, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case epoch.Err() != nil:
			continue // interrupted by Pause or Stop: look at the gate again
		}
		return nil, err
	}
}

// hold counts ds as a batch the inbox holds until each of its deliveries is
// settled, and returns them wrapped to count the settlements.
func (h *inboxHealth) hold(ds []inbox.Delivery) (*heldBatch, []inbox.Delivery) {
	b := &heldBatch{health: h}
	b.left.Store(int32(len(ds)))
	h.holding.Add(1)
	out := make([]inbox.Delivery, len(ds))
	for i, d := range ds {
		out[i] = &heldDelivery{Delivery: d, batch: b}
	}
	return b, out
}

// heldBatch is a batch the inbox holds: left deliveries are unsettled.
type heldBatch struct {
	health *inboxHealth
	left   atomic.Int32
	done   atomic.Bool // the hold ended: all settled, or released
}

// finish ends the hold, once.
func (b *heldBatch) finish() {
	if b.done.CompareAndSwap(false, true) {
		b.health.holding.Add(-1)
	}
}

func (b *heldBatch) finished() bool { return b.done.Load() }

// heldDelivery is a delivery of a held batch. It keeps the transport's
// position visible to the inbox (inbox.Positioner).
type heldDelivery struct {
	inbox.Delivery
	batch   *heldBatch
	settled atomic.Bool
}

func (d *heldDelivery) Ack(ctx context.Context) error {
	defer d.settle()
	return d.Delivery.Ack(ctx)
}

func (d *heldDelivery) Nack(ctx context.Context, delay time.Duration) error {
	defer d.settle()
	return d.Delivery.Nack(ctx, delay)
}

// Position implements inbox.Positioner with the wrapped delivery's.
func (d *heldDelivery) Position() string {
	if p, ok := d.Delivery.(inbox.Positioner); ok {
		return p.Position()
	}
	return ""
}

func (d *heldDelivery) settle() {
	if d.settled.CompareAndSwap(false, true) && d.batch.left.Add(-1) == 0 {
		d.batch.finish()
	}
}

// closeSource closes src if it has a Close method.
func closeSource(src inbox.Source) error {
	switch c := src.(type) {
	case io.Closer:
		return c.Close()
	case interface{ Close() }:
		c.Close()
	}
	return nil
}

// runner is one runner of an Inbox with its source.
type runner struct {
	ib  *Inbox
	n   int
	src inbox.Source
}

func (r runner) String() string { return fmt.Sprintf("consumer %q runner %d", r.ib.consumer, r.n+1) }
