package inbox

import (
	"context"
	"errors"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// ErrNotFound is returned by Requeue when none of the ids is a dead letter
// of this consumer.
var ErrNotFound = errors.New("inbox: no such dead letter")

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
		out, err = ex.ListDeadLetters(ctx, p.cfg.Consumer, afterID, limit)
		return err
	})
	return out, err
}

// Quarantine lists up to limit quarantined deliveries of this consumer,
// oldest first.
func (p *Processor[TTx]) Quarantine(ctx context.Context, limit int) ([]QuarantinedMessage, error) {
	var out []QuarantinedMessage
	err := p.read(ctx, func(ex driver.Executor) (err error) {
		out, err = ex.ListQuarantine(ctx, p.cfg.Consumer, limit)
		return err
	})
	return out, err
}

// Requeue gives dead letters one more attempt, now: in one transaction it
// removes them from the dead-letter table, releases their claims and runs
// the handler on them as a batch. A message that fails again goes back to
// the dead-letter table with its new error, in the same transaction, so a
// requeue never loses a message.
func (p *Processor[TTx]) Requeue(ctx context.Context, ids ...string) (*BatchResult, error) {
	var dls []DeadLetter
	if err := p.read(ctx, func(ex driver.Executor) (err error) {
		dls, err = ex.GetDeadLetters(ctx, p.cfg.Consumer, ids)
		return err
	}); err != nil {
		return nil, err
	}
	if len(dls) == 0 {
		return nil, ErrNotFound
	}
	items := make([]*item, len(dls))
	for i, dl := range dls {
		msg := eos.Message{ID: dl.ID, Key: dl.Key, Payload: dl.Payload, Headers: dl.Headers, CreatedAt: dl.CreatedAt}
		items[i] = &item{msg: msg, fp: eos.Fingerprint(msg), requeue: true}
	}
	return p.runBatch(ctx, items)
}
