package inbox

import (
	"context"
	"errors"
	"slices"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/storable"
)

// ErrNoDeadLetter is returned by Requeue when none of the ids is a dead letter
// of this consumer.
var ErrNoDeadLetter = errors.New("inbox: no such dead letter")

// ErrNotRequeueable is wrapped by the error Requeue returns, and by the
// result's Err, for a dead letter that must not run again.
var ErrNotRequeueable = errors.New("inbox: dead letter cannot be requeued")

func (p *Processor[TTx]) read(ctx context.Context, fn func(driver.Executor) error) error {
	tx, err := p.drv.Begin(ctx)
	if err != nil {
		return p.storeErr(ctx, "inbox.read", err)
	}
	defer p.drv.Rollback(context.WithoutCancel(ctx), tx)
	return fn(p.drv.Executor(tx))
}

// DeadLetters lists this consumer's dead letters in id order, starting after
// afterID ("" for the start), at most limit.
func (p *Processor[TTx]) DeadLetters(ctx context.Context, afterID string, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := p.read(ctx, func(ex driver.Executor) (err error) {
		out, err = ex.DeadLettersList(ctx, p.cfg.Consumer, afterID, limit)
		return err
	})
	return out, err
}

// Quarantine lists this consumer's quarantined deliveries oldest first,
// starting after afterSeq (0 for the start; pass the last Seq seen for the
// next page), at most limit: the same paging as DeadLetters.
func (p *Processor[TTx]) Quarantine(ctx context.Context, afterSeq int64, limit int) ([]QuarantinedMessage, error) {
	var out []QuarantinedMessage
	err := p.read(ctx, func(ex driver.Executor) (err error) {
		out, err = ex.QuarantineList(ctx, p.cfg.Consumer, afterSeq, limit)
		return err
	})
	return out, err
}

// Requeue gives dead letters one more attempt, now. In one transaction it
// takes them out of the dead-letter table, releases their claims and runs
// the handler on them as a batch; a message that fails again goes back to
// the dead-letter table with its new error, in the same transaction, so a
// requeue never loses a message. It acts only on the dead letters its own
// transaction took: when two requeues of the same ids overlap, each message
// runs in one of them. Results list the dead letters it took, in id order.
//
// A dead letter that cannot run again (it failed validation on arrival, or
// fails the processor's Limits now) is left in place, reported in the
// results as DeadLettered, and makes Requeue return an error matching
// [ErrNotRequeueable] (and [eos.ErrInvalidMessage]) with the results. It
// returns [ErrNoDeadLetter] when none of ids is a dead letter of this consumer.
func (p *Processor[TTx]) Requeue(ctx context.Context, ids ...string) (*BatchResult, error) {
	ids = storedIDs(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	items := make([]*item, len(ids))
	for i, id := range ids {
		items[i] = &item{msg: eos.Message{ID: id}, requeue: true}
	}
	res, err := p.runBatch(ctx, items)
	if err != nil {
		return nil, err
	}
	if len(res.Results) == 0 {
		return nil, ErrNoDeadLetter
	}
	var refused []error
	for _, r := range res.Results {
		if errors.Is(r.Err, ErrNotRequeueable) {
			refused = append(refused, r.Err)
		}
	}
	return res, errors.Join(refused...)
}

// Discard deletes dead letters of this consumer for good, without running
// them, and returns how many it deleted. Their claims stay, so redeliveries
// of them are still suppressed.
func (p *Processor[TTx]) Discard(ctx context.Context, ids ...string) (int, error) {
	tx, err := p.drv.Begin(ctx)
	if err != nil {
		return 0, p.storeErr(ctx, "inbox.discard", err)
	}
	defer p.drv.Rollback(context.WithoutCancel(ctx), tx)
	n, err := p.DiscardTx(ctx, tx, ids...)
	if err != nil {
		return 0, err
	}
	if err := p.drv.Commit(ctx, tx); err != nil {
		return 0, p.storeErr(ctx, "inbox.discard", err)
	}
	return n, nil
}

// DiscardTx is Discard inside the caller's transaction.
func (p *Processor[TTx]) DiscardTx(ctx context.Context, tx TTx, ids ...string) (int, error) {
	rows, err := p.drv.Executor(tx).DeadLettersTake(ctx, p.cfg.Consumer, storedIDs(ids))
	if err != nil {
		return 0, p.storeErr(ctx, "inbox.discard", err)
	}
	return len(rows), nil
}

// storedIDs returns a copy of ids without those no dead letter can have:
// text that is not storable (NUL bytes, invalid UTF-8) was never stored, and
// PostgreSQL refuses it even as an argument, which would fail the whole
// call as a store failure over one mistyped id.
func storedIDs(ids []string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return storable.Text(id, len(id)) != id })
}
