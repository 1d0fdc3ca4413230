package callonce

import (
	"context"
	"errors"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver"
)

// BatchStore is a dedupe.Store that also claims, and completes, many keys
// in one transaction. A Stage over a Caller whose store is one spends two
// transactions per batch of calls instead of two per call: on SQLite,
// whose writes are serialized, that is most of what a call costs.
type BatchStore interface {
	dedupe.Store
	// ClaimMany claims each key as Claim does, in one transaction, and
	// returns one claim, or one error (an invalid argument), per key; an
	// error of the transaction fails them all.
	ClaimMany(ctx context.Context, keys []Key, lease time.Duration) ([]dedupe.Claim, []error, error)
	// CompleteMany completes each lease with its result as Complete does,
	// in one transaction, and returns one error (ErrFenced,
	// ErrResultTooLarge) or nil per lease; an error of the transaction
	// fails them all.
	CompleteMany(ctx context.Context, leases []dedupe.Lease, results [][]byte) ([]error, error)
}

// Key names a key to claim, with its request's fingerprint.
type Key struct {
	Scope, Key  string
	Fingerprint []byte
}

// TxStore is what Batched needs of a store: the Tx twins of dedupe.SQL.
type TxStore[TTx any] interface {
	dedupe.Store
	ClaimTx(ctx context.Context, tx TTx, scope, key string, fingerprint []byte, lease time.Duration) (dedupe.Claim, error)
	CompleteTx(ctx context.Context, tx TTx, l dedupe.Lease, result []byte) error
}

// Batched returns s as a BatchStore whose batches are transactions of drv
// (the driver s was made with).
//
// A batch claims its keys in the order it is given; a Stage sorts them, so
// that two workers claiming overlapping batches take their rows' locks in
// one order and never deadlock (PostgreSQL).
func Batched[TTx any](drv driver.Driver[TTx], s TxStore[TTx]) BatchStore {
	return &batched[TTx]{TxStore: s, drv: drv}
}

type batched[TTx any] struct {
	TxStore[TTx]
	drv driver.Driver[TTx]
}

// inTx runs fn in a transaction and commits it; a driver error is an
// *eos.StoreError for op.
func (b *batched[TTx]) inTx(ctx context.Context, op string, fn func(tx TTx) error) error {
	tx, err := b.drv.Begin(ctx)
	if err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	defer b.drv.Rollback(context.WithoutCancel(ctx), tx) // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := b.drv.Commit(ctx, tx); err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	return nil
}

func (b *batched[TTx]) ClaimMany(ctx context.Context, keys []Key, lease time.Duration) ([]dedupe.Claim, []error, error) {
	claims := make([]dedupe.Claim, len(keys))
	errs := make([]error, len(keys))
	err := b.inTx(ctx, "callonce.claim_many", func(tx TTx) error {
		for i, k := range keys {
			if err := dedupe.Check(k.Scope, k.Key, k.Fingerprint, lease); err != nil {
				errs[i] = err
				continue
			}
			c, err := b.ClaimTx(ctx, tx, k.Scope, k.Key, k.Fingerprint, lease)
			if err != nil {
				return err // a store failure: the transaction is done for
			}
			claims[i] = c
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return claims, errs, nil
}

func (b *batched[TTx]) CompleteMany(ctx context.Context, leases []dedupe.Lease, results [][]byte) ([]error, error) {
	errs := make([]error, len(leases))
	err := b.inTx(ctx, "callonce.complete_many", func(tx TTx) error {
		for i, l := range leases {
			err := b.CompleteTx(ctx, tx, l, results[i])
			switch {
			case err == nil:
			case isPerKey(err):
				errs[i] = err // the statement changed nothing; the transaction goes on
			default:
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// isPerKey reports whether a completion's error concerns its key alone.
func isPerKey(err error) bool {
	return errors.Is(err, dedupe.ErrFenced) || errors.Is(err, dedupe.ErrResultTooLarge) || errors.Is(err, dedupe.ErrInvalid)
}
