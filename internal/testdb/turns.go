package testdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
)

// Turn is one contender of [TakeTurns]: Batch processes messages in one
// transaction of its own.
type Turn struct {
	Name  string
	Batch func(ctx context.Context, ms []eos.Message) error
}

// Turn is a contender that begins a transaction with begin (which may
// claim ms in it), applies ms with the payments handler and commits.
func (p Payments[TTx]) Turn(name string, begin func(ctx context.Context, ms []eos.Message) (TTx, error)) Turn {
	return Turn{Name: name, Batch: func(ctx context.Context, ms []eos.Message) error {
		tx, err := begin(ctx, ms)
		if err != nil {
			return err
		}
		defer p.E.Driver.Rollback(ctx, tx)
		for _, m := range ms {
			if err := p.Handler(ctx, tx, m); err != nil {
				return err
			}
		}
		return p.E.Driver.Commit(ctx, tx)
	}}
}

// InboxTurn is a contender that processes its messages through p as
// first deliveries and fails unless every one is applied. prepare, if not
// nil, changes the messages first, when the turn comes (fresh
// time-ordered ids, so that every contender's claims append at the end of
// the index).
func InboxTurn[TTx any](name string, p *inbox.Processor[TTx], prepare func(ms []eos.Message)) Turn {
	return Turn{Name: name, Batch: func(ctx context.Context, ms []eos.Message) error {
		if prepare != nil {
			prepare(ms)
		}
		res, err := p.Process(ctx, inboxtest.NewDeliveries(ms...).Inbox())
		if err != nil {
			return err
		}
		if n := res.Count(inbox.Applied); n != len(ms) {
			return fmt.Errorf("applied %d of %d", n, len(ms))
		}
		return nil
	}}
}

// HookedTurn is the InboxTurn of a per-message processor with the
// payments handler, consumer "bench", batches of up to batch and hooks,
// that gives its messages fresh time-ordered ids and the current time as
// CreatedAt when the turn comes, then hands them to prepare (if not nil).
// Contenders with different hooks on one consumer thus all append at the
// end of the inbox table's index.
func (p Payments[TTx]) HookedTurn(tb testing.TB, name string, batch int, hooks []inbox.Hook, prepare func(ms []eos.Message)) Turn {
	tb.Helper()
	proc, err := inbox.New(p.E.Driver, p.Handler, inbox.Config{Consumer: "bench", MaxBatch: batch, Hooks: hooks})
	if err != nil {
		tb.Fatal(err)
	}
	return InboxTurn(name, proc, func(ms []eos.Message) {
		now := time.Now()
		for i := range ms {
			ms[i].ID, ms[i].CreatedAt = eos.NewIDAt(now), now
		}
		if prepare != nil {
			prepare(ms)
		}
	})
}

// TakeTurns gives each turn b.N new payments messages (UUIDv7 ids, over
// 1000 accounts) and runs them batch by batch, the turns taking theirs in
// a rotating order, so that all see the same machine state. It reports
// each turn's events/s and the ratio of the first turn's time to its own.
func TakeTurns(b *testing.B, batch int, turns []Turn) {
	elapsed := RunTurns(b, batch, 1000, turns)
	for k, t := range turns {
		b.ReportMetric(float64(b.N)/elapsed[k].Seconds(), t.Name+"-events/s")
		if k > 0 {
			b.ReportMetric(elapsed[0].Seconds()/elapsed[k].Seconds(), t.Name+"/"+turns[0].Name)
		}
	}
}

// RunTurns runs the turns as TakeTurns does, with messages over the given
// number of accounts, and returns the time each took over its b.N
// messages, reporting nothing.
func RunTurns(b *testing.B, batch, accounts int, turns []Turn) []time.Duration {
	ctx := context.Background()
	msgs := make([][]eos.Message, len(turns))
	for k := range msgs {
		msgs[k] = make([]eos.Message, b.N)
		for i := range msgs[k] {
			msgs[k][i] = Message(eos.NewID(), Account(i%accounts), 1)
		}
	}
	elapsed := make([]time.Duration, len(turns))
	b.ResetTimer()
	for i, round := 0, 0; i < b.N; i, round = i+batch, round+1 {
		end := min(i+batch, b.N)
		for j := range turns {
			k := (round + j) % len(turns)
			start := time.Now()
			if err := turns[k].Batch(ctx, msgs[k][i:end]); err != nil {
				b.Fatalf("%s: %v", turns[k].Name, err)
			}
			elapsed[k] += time.Since(start)
		}
	}
	b.StopTimer()
	return elapsed
}

// Way is a contender of [TakeWays]: Step(done, n) handles at most n
// events after the first done and returns how many it handled.
type Way struct {
	Name string
	Step func(done, n int) (int, error)
	done int
	took time.Duration
}

// run steps w until it has handled upTo events, timing the steps.
func (w *Way) run(upTo int) error {
	start := time.Now()
	defer func() { w.took += time.Since(start) }()
	for w.done < upTo {
		n, err := w.Step(w.done, upTo-w.done)
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		w.done += n
	}
	return nil
}

// TakeWays has the ways handle total events each, in ten turns, each
// turn starting with the next way, so that a machine's drift within the
// run weighs on all of them alike; it stops b's timer and returns each
// way's events/s by name.
func TakeWays(b *testing.B, total int, ways []*Way) map[string]float64 {
	b.Helper()
	const turns = 10
	for turn := range turns {
		upTo := (turn + 1) * total / turns
		for k := range ways {
			if err := ways[(turn+k)%len(ways)].run(upTo); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	rates := make(map[string]float64, len(ways))
	for _, w := range ways {
		rates[w.Name] = float64(w.done) / w.took.Seconds()
	}
	return rates
}
