package outboxtest

import (
	"context"
	"sync"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/wake"
	"github.com/eoskit/eos/outbox"
)

// listPage is how many rows RequireEnqueuedTx reads per statement.
const listPage = 1000

// EnqueuedTx returns the messages waiting in the outbox on topic as tx sees
// them, in enqueue order: those tx enqueued, and committed ones no relay
// has sent yet. Parked rows are left out. It fails t on a store error.
func EnqueuedTx[TTx any](ctx context.Context, t testing.TB, drv driver.Driver[TTx], tx TTx, topic string) []eos.Message {
	t.Helper()
	ex := drv.Executor(tx)
	var out []eos.Message
	for after := int64(0); ; {
		rows, err := ex.OutboxUnsentList(ctx, after, listPage)
		if err != nil {
			t.Fatalf("outboxtest: reading the outbox: %v", err)
			return nil
		}
		for _, r := range rows {
			if r.Topic == topic {
				out = append(out, eos.Message{ID: r.ID, Key: r.Key, Payload: r.Payload, Headers: r.Headers, CreatedAt: r.CreatedAt})
			}
		}
		if len(rows) < listPage {
			return out
		}
		after = rows[len(rows)-1].Seq
	}
}

// RequireEnqueuedTx fails t unless at least one message waits in the outbox
// on topic as tx sees it (see [EnqueuedTx]), and returns those messages, in
// enqueue order, for the test to inspect.
func RequireEnqueuedTx[TTx any](ctx context.Context, t testing.TB, drv driver.Driver[TTx], tx TTx, topic string) []eos.Message {
	t.Helper()
	msgs := EnqueuedTx(ctx, t, drv, tx, topic)
	if len(msgs) == 0 {
		t.Fatalf("outboxtest: no message enqueued on topic %q", topic)
	}
	return msgs
}

// RequireNotEnqueuedTx fails t if a message waits in the outbox on topic as
// tx sees it (see [EnqueuedTx]).
func RequireNotEnqueuedTx[TTx any](ctx context.Context, t testing.TB, drv driver.Driver[TTx], tx TTx, topic string) {
	t.Helper()
	if msgs := EnqueuedTx(ctx, t, drv, tx, topic); len(msgs) > 0 {
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		t.Fatalf("outboxtest: %d message(s) enqueued on topic %q, want none: %q", len(msgs), topic, ids)
	}
}

// Publisher is an in-memory [outbox.Publisher] with a broker's publish
// dedupe: it stores each message it is given, in order, unless it stored
// one with the same id before (a duplicate: acknowledged, not stored again,
// counted). It is safe for concurrent use.
type Publisher struct {
	mu         sync.Mutex
	seen       map[string]bool // ids within the dedupe window
	stored     []outbox.Envelope
	duplicates int
	handed     map[string]int
	failAt     int // with failErr: the message at which the next Publish that reaches it fails
	failErr    error
	downErr    error // while set, every Publish fails at its first message
	changes    wake.Changes
}

var _ outbox.Publisher = (*Publisher)(nil)

// NewPublisher returns an empty Publisher.
func NewPublisher() *Publisher {
	return &Publisher{seen: map[string]bool{}, handed: map[string]int{}}
}

// Publish implements outbox.Publisher.
func (p *Publisher) Publish(_ context.Context, msgs []outbox.Envelope) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.changes.Notify()
	if p.downErr != nil && len(msgs) > 0 {
		return 0, p.downErr
	}
	for i, m := range msgs {
		if p.failErr != nil && i == p.failAt {
			err := p.failErr
			p.failErr = nil
			return i, err
		}
		p.handed[m.ID]++
		if p.seen[m.ID] {
			p.duplicates++
			continue
		}
		p.seen[m.ID] = true
		p.stored = append(p.stored, m)
	}
	return len(msgs), nil
}

// FailNext makes the next Publish that is given more than acked messages
// acknowledge the first acked of them and fail with err at the next one.
// An err wrapping outbox.ErrUnpublishable makes the relay park that row;
// any other is retried.
func (p *Publisher) FailNext(acked int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failAt, p.failErr = acked, err
}

// Down makes every Publish fail at its first message with err, as an
// unreachable broker does, until Down(nil).
func (p *Publisher) Down(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.downErr = err
}

// ForgetDedupe ends the dedupe window: an id given again is stored again,
// as a broker does once its duplicate window has passed.
func (p *Publisher) ForgetDedupe() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.seen)
}

// Published returns the messages stored, in order, duplicates dropped.
func (p *Publisher) Published() []outbox.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outbox.Envelope(nil), p.stored...)
}

// IDs returns the ids of the messages stored, in order.
func (p *Publisher) IDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, len(p.stored))
	for i, m := range p.stored {
		ids[i] = m.ID
	}
	return ids
}

// Duplicates returns how many messages were dropped as duplicates.
func (p *Publisher) Duplicates() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.duplicates
}

// Handed returns how many times a message with id was given to Publish,
// duplicates included, failed ones not.
func (p *Publisher) Handed(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handed[id]
}

// Wait waits until at least n messages are stored, or ctx ends (then it
// returns ctx's error).
func (p *Publisher) Wait(ctx context.Context, n int) error {
	return p.changes.Wait(ctx, func() bool { return len(p.IDs()) >= n })
}
