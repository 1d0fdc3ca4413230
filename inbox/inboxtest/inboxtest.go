package inboxtest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/wake"
)

// Delivery is an in-memory [inbox.Delivery] that records how it was
// settled. It is safe for concurrent use.
type Delivery struct {
	msg      eos.Message
	position string
	num      int
	src      *Source // nil unless made by a Source

	mu        sync.Mutex
	acks      int
	nacks     int
	nackDelay time.Duration
	done      chan struct{} // made by Done, closed at the first settlement
}

var (
	_ inbox.Delivery        = (*Delivery)(nil)
	_ inbox.Positioner      = (*Delivery)(nil)
	_ inbox.DeliveryCounter = (*Delivery)(nil)
)

// NewDelivery returns a first delivery of m, on no Source.
func NewDelivery(m eos.Message) *Delivery { return &Delivery{msg: m, num: 1} }

// WithPosition sets the transport position the delivery reports (see
// [inbox.Positioner]; "" reports none) and returns d. Set it before the
// delivery is handed to a processor.
func (d *Delivery) WithPosition(pos string) *Delivery {
	d.position = pos
	return d
}

// Message implements inbox.Delivery.
func (d *Delivery) Message() eos.Message { return d.msg }

// Position implements inbox.Positioner: the position given to WithPosition,
// or, for a delivery made by a Source, the same position on every delivery
// of one message.
func (d *Delivery) Position() string { return d.position }

// Ack implements inbox.Delivery: it records the ack.
func (d *Delivery) Ack(context.Context) error {
	d.settle(func() { d.acks++ })
	return nil
}

// Nack implements inbox.Delivery: it records the nack and its delay and,
// for a delivery made by a Source, queues the message again there at once.
func (d *Delivery) Nack(_ context.Context, delay time.Duration) error {
	if d.src != nil && !d.Settled() {
		d.src.redeliver(d) // queued before this one counts as settled
	}
	d.settle(func() { d.nacks++; d.nackDelay = delay })
	return nil
}

func (d *Delivery) settle(record func()) {
	d.mu.Lock()
	first := d.acks+d.nacks == 0
	record()
	if first && d.done != nil {
		close(d.done)
	}
	d.mu.Unlock()
	if d.src != nil {
		d.src.settled(first)
	}
}

// Acks returns how many times the delivery was acked.
func (d *Delivery) Acks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.acks
}

// Nacks returns how many times the delivery was nacked.
func (d *Delivery) Nacks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nacks
}

// NackDelay returns the delay of the last nack (zero if none).
func (d *Delivery) NackDelay() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nackDelay
}

// Settled reports whether the delivery was acked or nacked.
func (d *Delivery) Settled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.acks+d.nacks > 0
}

// Done returns a channel closed when the delivery is first acked or nacked.
func (d *Delivery) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		d.done = make(chan struct{})
		if d.acks+d.nacks > 0 {
			close(d.done)
		}
	}
	return d.done
}

// Num is which delivery of its message this is: 1 for the first, 2 for the
// redelivery after a nack, and so on.
func (d *Delivery) Num() int { return d.num }

// DeliveryCount implements inbox.DeliveryCounter: Num.
func (d *Delivery) DeliveryCount() int { return d.num }

// Deliveries is a list of deliveries, in the order they were made.
type Deliveries []*Delivery

// NewDeliveries returns a first delivery of each of msgs, on no Source.
func NewDeliveries(msgs ...eos.Message) Deliveries {
	ds := make(Deliveries, len(msgs))
	for i, m := range msgs {
		ds[i] = NewDelivery(m)
	}
	return ds
}

// Inbox returns ds as the processor takes them ([inbox.Processor.Process]).
func (ds Deliveries) Inbox() []inbox.Delivery {
	out := make([]inbox.Delivery, len(ds))
	for i, d := range ds {
		out[i] = d
	}
	return out
}

// Source is an in-memory [inbox.Source]. [Source.Deliver] queues messages;
// Fetch hands them out in order; a nacked delivery is queued again at once,
// at the end, as the next delivery of its message. It is safe for concurrent
// use: several Runs may fetch from one Source.
type Source struct {
	mu      sync.Mutex
	queue   Deliveries
	handed  Deliveries // every delivery Fetch returned, in order
	seq     int        // messages given to Deliver so far
	inUse   int        // deliveries handed out and not yet settled
	closed  bool
	changes wake.Changes
}

var _ inbox.Source = (*Source)(nil)

// NewSource returns an empty, open Source.
func NewSource() *Source { return &Source{} }

// Deliver queues a first delivery of each of msgs and returns them. Each
// message gets a position of its own ("inboxtest:1", "inboxtest:2", …),
// which its redeliveries keep.
func (s *Source) Deliver(msgs ...eos.Message) Deliveries {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := make(Deliveries, len(msgs))
	for i, m := range msgs {
		s.seq++
		ds[i] = &Delivery{msg: m, position: "inboxtest:" + strconv.Itoa(s.seq), num: 1, src: s}
	}
	s.queue = append(s.queue, ds...)
	s.changes.Notify()
	return ds
}

// settled notes a settlement of one of the Source's deliveries (first: its
// first).
func (s *Source) settled(first bool) {
	s.mu.Lock()
	if first {
		s.inUse--
	}
	s.mu.Unlock()
	s.changes.Notify()
}

func (s *Source) redeliver(d *Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, &Delivery{msg: d.msg, position: d.position, num: d.num + 1, src: s})
	s.changes.Notify()
}

// Fetch implements inbox.Source: it waits until a delivery is queued, the
// Source is closed or ctx ends, then returns up to max queued deliveries at
// once (maxWait is ignored: what is queued is all there is). Once the
// Source is closed and its queue is empty, it returns inbox.ErrSourceClosed.
func (s *Source) Fetch(ctx context.Context, max int, _ time.Duration) ([]inbox.Delivery, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			n := len(s.queue)
			if max > 0 {
				n = min(n, max)
			}
			out := s.queue[:n:n]
			s.queue = s.queue[n:]
			s.handed = append(s.handed, out...)
			s.inUse += n
			s.changes.Notify()
			s.mu.Unlock()
			return out.Inbox(), nil
		}
		if s.closed && s.inUse == 0 { // nothing in use can still be nacked back
			s.mu.Unlock()
			return nil, inbox.ErrSourceClosed
		}
		changed := s.changes.C() // before the lock is released: no change falls between
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the Source: Fetch hands out what is still queued (redeliveries
// included) and, once every delivery it handed out is settled and nothing
// is queued, returns inbox.ErrSourceClosed, so that Run over a closed Source
// ends once every message is settled for good (a Fetch ahead of the batch
// in flight waits for its settlements).
func (s *Source) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.changes.Notify()
}

// Closed reports whether Close was called.
func (s *Source) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Handed returns every delivery Fetch returned so far, in order.
func (s *Source) Handed() Deliveries {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(Deliveries(nil), s.handed...)
}

// Queued returns how many deliveries wait to be fetched.
func (s *Source) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Unsettled returns the deliveries Fetch returned that are neither acked
// nor nacked.
func (s *Source) Unsettled() Deliveries {
	var out Deliveries
	for _, d := range s.Handed() {
		if !d.Settled() {
			out = append(out, d)
		}
	}
	return out
}

// WaitIdle waits until nothing is queued and every delivery fetched is
// settled, or ctx ends (then it returns ctx's error).
func (s *Source) WaitIdle(ctx context.Context) error {
	return s.wait(ctx, func() bool { return s.Queued() == 0 && len(s.Unsettled()) == 0 })
}

// WaitHanded waits until Fetch has returned at least n deliveries in all,
// or ctx ends (then it returns ctx's error).
func (s *Source) WaitHanded(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return len(s.Handed()) >= n })
}

// wait waits until cond holds, looking again at every change.
func (s *Source) wait(ctx context.Context, cond func() bool) error {
	return s.changes.Wait(ctx, cond)
}

// Process runs one batch of a first delivery of each of msgs through p
// ([inbox.Processor.Process]) and returns its result and the deliveries,
// which tell how each was settled. It fails t if the batch fails; call
// p.Process with [NewDeliveries] to test a failing batch.
func Process[TTx any](ctx context.Context, t testing.TB, p *inbox.Processor[TTx], msgs ...eos.Message) (*inbox.BatchResult, Deliveries) {
	t.Helper()
	ds := NewDeliveries(msgs...)
	res, err := p.Process(ctx, ds.Inbox())
	if err != nil {
		t.Fatalf("inboxtest.Process: batch of %d failed: %v", len(msgs), err)
	}
	return res, ds
}

// Outcomes returns the outcome of each result of res, in delivery order.
func Outcomes(res *inbox.BatchResult) []inbox.Outcome {
	out := make([]inbox.Outcome, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Outcome
	}
	return out
}
