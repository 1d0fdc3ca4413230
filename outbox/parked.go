package outbox

import (
	"context"
	"errors"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// ParkedRow is an outbox row the relay parked: the broker refused it in a
// way no retry fixes (see ErrUnpublishable). It stays unsent with its
// error, and the later rows of its key wait behind it; rows of other keys
// are not held up.
type ParkedRow = driver.ParkedOutboxRow

// ErrNotParked is returned by RequeueParked and DiscardParked when none of
// the given seqs is a parked row.
var ErrNotParked = errors.New("outbox: no such parked row")

// ParkedRows lists parked rows in seq order, starting after afterSeq (0 for
// the start), at most limit.
func (o *Outbox[TTx]) ParkedRows(ctx context.Context, afterSeq int64, limit int) ([]ParkedRow, error) {
	var out []ParkedRow
	err := o.read(ctx, "outbox.parked_rows", func(ex driver.Executor) (err error) {
		out, err = ex.OutboxParkedList(ctx, afterSeq, limit)
		return err
	})
	return out, err
}

// RequeueParked gives parked rows back to the relay, for when the cause is
// fixed (the destination exists now, the limit was raised): each becomes
// its key's next row to send, and its key flows again once it is sent. It
// reports how many rows it requeued; seqs that are not parked are skipped,
// and if none is, the error is ErrNotParked.
func (o *Outbox[TTx]) RequeueParked(ctx context.Context, seqs ...int64) (int, error) {
	var n int
	err := o.write(ctx, "outbox.requeue_parked", func(tx TTx) (err error) {
		n, err = o.RequeueParkedTx(ctx, tx, seqs...)
		return err
	})
	return n, err
}

// RequeueParkedTx is RequeueParked inside the caller's transaction.
func (o *Outbox[TTx]) RequeueParkedTx(ctx context.Context, tx TTx, seqs ...int64) (int, error) {
	n, err := o.drv.Executor(tx).OutboxParkedRequeue(ctx, seqs)
	if err != nil {
		return 0, &eos.StoreError{Op: "outbox.requeue_parked", Err: err}
	}
	if n == 0 {
		return 0, ErrNotParked
	}
	return n, nil
}

// DiscardParked deletes parked rows, which are then never sent, and returns
// them; the later rows of their keys flow again. Seqs that are not parked
// are skipped, and if none is, the error is ErrNotParked.
func (o *Outbox[TTx]) DiscardParked(ctx context.Context, seqs ...int64) ([]ParkedRow, error) {
	var out []ParkedRow
	err := o.write(ctx, "outbox.discard_parked", func(tx TTx) (err error) {
		out, err = o.DiscardParkedTx(ctx, tx, seqs...)
		return err
	})
	return out, err
}

// DiscardParkedTx is DiscardParked inside the caller's transaction.
func (o *Outbox[TTx]) DiscardParkedTx(ctx context.Context, tx TTx, seqs ...int64) ([]ParkedRow, error) {
	out, err := o.drv.Executor(tx).OutboxParkedDelete(ctx, seqs)
	if err != nil {
		return nil, &eos.StoreError{Op: "outbox.discard_parked", Err: err}
	}
	if len(out) == 0 {
		return nil, ErrNotParked
	}
	return out, nil
}

// read runs fn in a transaction that is rolled back.
func (o *Outbox[TTx]) read(ctx context.Context, op string, fn func(driver.Executor) error) error {
	tx, err := o.drv.Begin(ctx)
	if err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	defer o.drv.Rollback(context.WithoutCancel(ctx), tx)
	if err := fn(o.drv.Executor(tx)); err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	return nil
}

// write runs fn in a transaction that is committed if fn succeeds. Errors of
// fn are returned as they are.
func (o *Outbox[TTx]) write(ctx context.Context, op string, fn func(TTx) error) error {
	tx, err := o.drv.Begin(ctx)
	if err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	defer o.drv.Rollback(context.WithoutCancel(ctx), tx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := o.drv.Commit(ctx, tx); err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	return nil
}
