package inbox

import (
	"context"
	"fmt"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// BatchHandler applies the newly claimed messages of a batch inside tx,
// set-based: one statement for the whole batch where a per-message handler
// would run one per message. Its writes commit with the claims of the
// messages or not at all.
//
// b.Messages are the messages this transaction newly claimed, in delivery
// order (key order with Config.OrderByKey): never a duplicate, a
// quarantined delivery or an invalid one. A message the handler refuses for
// good (a malformed order) is passed to [Batch.Reject], and its effects must
// not be written; the rest of the batch commits.
//
// A returned error fails the messages it was called with, not the batch:
// the inbox rolls the handler's work back and calls it again on halves of
// the messages, each under a savepoint, until the failing message is alone;
// that message's attempt is counted and it is retried or dead-lettered as
// with a Handler, while the others are applied. So the handler may be
// called several times in one transaction, on subsets of the batch, and
// must not assume it sees the whole of it. That search is not free: the
// first attempt is rolled back, and each failing message costs about
// 2·log₂(batch size) more calls, each under a savepoint
// (BenchmarkIsolationBatch: 1 % failing messages cut a batch handler's rate
// to a fifth or less). So reject what the handler can tell is bad, and
// return an error for what it cannot (a constraint the database enforces, a
// store failure).
//
// As with a Handler, no effects outside tx: enqueue them in the outbox
// (Outbox.Enqueue of many messages is one statement).
type BatchHandler[TTx any] func(ctx context.Context, tx TTx, b *Batch) error

// Batch is what a BatchHandler is asked to apply.
type Batch struct {
	// Messages are the newly claimed messages to apply.
	Messages []eos.Message
	rejected map[int]error
}

// Reject refuses Messages[i] for good: it is dead-lettered with err
// (wrapped as Permanent) instead of applied, in the same transaction, and
// the rest of the batch commits. The handler must not have written its
// effects. Rejecting a message twice keeps the last error.
func (b *Batch) Reject(i int, err error) {
	if i < 0 || i >= len(b.Messages) {
		panic(fmt.Sprintf("inbox: Batch.Reject(%d) of %d messages", i, len(b.Messages)))
	}
	if err == nil {
		err = fmt.Errorf("rejected by the batch handler")
	}
	if b.rejected == nil {
		b.rejected = make(map[int]error)
	}
	b.rejected[i] = err
}

// Rejected reports whether Messages[i] was rejected, with its error.
func (b *Batch) Rejected(i int) (error, bool) {
	err, ok := b.rejected[i]
	return err, ok
}

// NewBatch returns a Processor that applies each batch's new messages with
// one call of bh (more after a failure; see BatchHandler) through drv.
// Everything else — claims, duplicates, quarantine, retries, dead letters,
// hooks, ProcessTx — works as with New.
func NewBatch[TTx any](drv driver.Driver[TTx], bh BatchHandler[TTx], cfg Config) (*Processor[TTx], error) {
	if bh == nil {
		return nil, &eos.ConfigError{Field: "inbox.NewBatch handler", Reason: "nil"}
	}
	return newProcessor(drv, nil, bh, cfg)
}

// callBatch runs the batch handler on items' messages, turning a panic into
// an error wrapping ErrHandlerPanic.
func (p *Processor[TTx]) callBatch(ctx context.Context, tx TTx, items []*item) (b *Batch, err error) {
	b = &Batch{Messages: make([]eos.Message, len(items))}
	for i, it := range items {
		b.Messages[i] = it.msg
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
		}
	}()
	return b, p.bh(ctx, tx, b)
}

// applyBatch is the apply phase of a batch handler. Without savepoints it
// calls the handler once on every new message; a failure ends the round
// with errIsolate, and the next round, with savepoints, bisects the batch
// to find the failing message. Rejected messages are dead-lettered.
func (r *round[TTx]) applyBatch(ctx context.Context, items []*item) error {
	if len(items) == 0 {
		return nil
	}
	if !r.savepoints {
		r.handled = true
		b, herr := r.p.callBatch(ctx, r.tx, items)
		if herr != nil {
			r.run.handlerFailed = true
			return errBatchFailed
		}
		return r.settleBatch(ctx, items, b)
	}
	_, err := r.bisect(ctx, items, r.run.batchFailed)
	return err
}

// bisect runs the batch handler on items under a savepoint; on failure it
// rolls the handler's work back and tries each half, until a failing
// message is alone: that one fails (its attempt counted), the others are
// applied. It reports whether a message of items failed.
//
// known says a call on all of items has just failed (the previous round's
// on the whole batch, or the parent's when the first half passed): the
// call is not repeated, the halves are tried at once. That only saves
// calls; a failure that does not come back costs one split more, and every
// message is still applied by a call that succeeded or failed alone.
func (r *round[TTx]) bisect(ctx context.Context, items []*item, known bool) (failed bool, err error) {
	if !known || len(items) == 1 {
		done, herr, err := r.tryBatch(ctx, items)
		if err != nil || done {
			return false, err
		}
		if len(items) == 1 {
			return true, r.fail(ctx, items[0], herr)
		}
	}
	mid := len(items) / 2
	first, err := r.bisect(ctx, items[:mid], false)
	if err != nil {
		return false, err
	}
	// When the first half passed, the failure is in the second.
	second, err := r.bisect(ctx, items[mid:], !first)
	return first || second, err
}

// tryBatch calls the batch handler on items under a savepoint: done when
// it succeeded (items settled), the handler's error when it failed (its
// work rolled back).
func (r *round[TTx]) tryBatch(ctx context.Context, items []*item) (done bool, herr, err error) {
	p, ex := r.p, r.ex
	if err := ex.SavepointCreate(ctx, "eos_batch"); err != nil {
		return false, nil, p.storeErr(ctx, "inbox.savepoint", err)
	}
	b, herr := p.callBatch(ctx, r.tx, items)
	if herr == nil {
		err := ex.SavepointRelease(ctx, "eos_batch")
		if err == nil {
			return true, nil, r.settleBatch(ctx, items, b)
		}
		// The handler left its transaction failed (see applyIsolated).
		herr = fmt.Errorf("%w: %w", ErrHandlerTxAborted, err)
	}
	r.run.handlerFailed = true
	if err := ex.SavepointRollback(ctx, "eos_batch"); err != nil {
		return false, nil, p.storeErr(ctx, "inbox.savepoint", err)
	}
	if err := ex.SavepointRelease(ctx, "eos_batch"); err != nil {
		return false, nil, p.storeErr(ctx, "inbox.savepoint", err)
	}
	return false, herr, nil
}

// settleBatch marks the messages of a successful handler call: applied, or
// dead-lettered when the handler rejected them.
func (r *round[TTx]) settleBatch(ctx context.Context, items []*item, b *Batch) error {
	for i, it := range items {
		if err, rejected := b.Rejected(i); rejected {
			if err := r.fail(ctx, it, Permanent(err)); err != nil {
				return err
			}
			continue
		}
		it.outcome = Applied
	}
	return nil
}

// fail records the failure err of it's handler in this round: its attempt
// is counted, and it is dead-lettered (claimed) or released to be retried.
func (r *round[TTx]) fail(ctx context.Context, it *item, err error) error {
	it.failErr = err
	if err := r.p.recordFailure(ctx, r.ex, it, r.now); err != nil {
		return err
	}
	if it.outcome == DeadLettered {
		r.dead = append(r.dead, r.p.deadLetter(it, r.now))
	} else {
		r.unclaim = append(r.unclaim, it.msg.ID)
	}
	return nil
}
