package dedupe

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// compactBatch is the most records one transaction of SQL.Compact deletes.
const compactBatch = 1000

// SQL is the Store over an eos driver (SQLite, PostgreSQL), in the
// driver's migrated schema (the <prefix>dedupe table). Each Store method
// is one short transaction of its own. The Tx twins run in the caller's
// transaction instead: CompleteTx in the transaction of a handler's writes
// and outbox rows commits the key's completion with them, or nothing.
type SQL[TTx any] struct {
	drv driver.Driver[TTx]
	cfg Config
}

var _ Store = (*SQL[any])(nil)

// NewSQL returns the SQL store over drv, whose schema must be migrated.
func NewSQL[TTx any](drv driver.Driver[TTx], cfg Config) (*SQL[TTx], error) {
	if drv == nil {
		return nil, &eos.ConfigError{Field: "dedupe.NewSQL driver", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &SQL[TTx]{drv: drv, cfg: cfg}, nil
}

// now reads the clock at the precision both engines store (microseconds),
// so that what a call returns is what it stored.
func (s *SQL[TTx]) now() time.Time { return s.cfg.Test.Now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction of its own and commits it when fn
// succeeds. Errors of the driver are *eos.StoreError for op; fn's are
// returned as they are.
func (s *SQL[TTx]) inTx(ctx context.Context, op string, fn func(tx TTx) error) error {
	tx, err := s.drv.Begin(ctx)
	if err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	defer s.drv.Rollback(context.WithoutCancel(ctx), tx) // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := s.drv.Commit(ctx, tx); err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	return nil
}

// Claim implements Store in a transaction of its own: a Claimed lease is
// visible to other claims once Claim returns.
func (s *SQL[TTx]) Claim(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (Claim, error) {
	if err := Check(scope, key, fingerprint, lease); err != nil {
		return Claim{}, err
	}
	var c Claim
	err := s.inTx(ctx, "dedupe.claim", func(tx TTx) error {
		var err error
		c, err = s.claim(ctx, tx, scope, key, fingerprint, lease)
		return err
	})
	if err != nil {
		return Claim{}, err
	}
	return c, nil
}

// ClaimTx is Claim in tx. The claim is seen by others only once tx
// commits, and until then a concurrent claim of the key waits for tx
// (PostgreSQL) or for the database (SQLite) instead of answering
// InProgress: claim with Claim, and complete with CompleteTx.
func (s *SQL[TTx]) ClaimTx(ctx context.Context, tx TTx, scope, key string, fingerprint []byte, lease time.Duration) (Claim, error) {
	if err := Check(scope, key, fingerprint, lease); err != nil {
		return Claim{}, err
	}
	return s.claim(ctx, tx, scope, key, fingerprint, lease)
}

func (s *SQL[TTx]) claim(ctx context.Context, tx TTx, scope, key string, fingerprint []byte, lease time.Duration) (Claim, error) {
	now := s.now()
	end := now.Add(lease)
	token := NewToken()
	if fingerprint == nil {
		fingerprint = []byte{} // NOT NULL
	}
	rec, claimed, err := s.drv.Executor(tx).DedupeClaim(ctx, driver.DedupeClaimParams{Scope: scope, Key: key, Fingerprint: fingerprint, Token: token,
		Now: now, LeaseExpires: end, Expires: s.cfg.RecordExpiry(now, end)})
	if err != nil {
		return Claim{}, &eos.StoreError{Op: "dedupe.claim", Err: err}
	}
	switch {
	case claimed:
		return Claim{Status: Claimed, Lease: Lease{Scope: scope, Key: key, Token: token, Generation: rec.Generation, Expires: end}}, nil
	case !bytes.Equal(rec.Fingerprint, fingerprint):
		return Claim{Status: Mismatch}, nil
	case rec.State == driver.DedupeCompleted:
		return Claim{Status: Completed, Result: rec.Result, CompletedAt: rec.CompletedAt}, nil
	case rec.State == driver.DedupeLeased && rec.LeaseExpires.After(now):
		return Claim{Status: InProgress, RetryAfter: RetryAfter(now, rec.LeaseExpires)}, nil
	}
	return Claim{}, &eos.StoreError{Op: "dedupe.claim", Err: fmt.Errorf("the driver neither claimed nor kept a %s record", rec.State)}
}

// Complete implements Store in a transaction of its own.
func (s *SQL[TTx]) Complete(ctx context.Context, l Lease, result []byte) error {
	if err := s.checkComplete(l, result); err != nil {
		return err
	}
	return s.inTx(ctx, "dedupe.complete", func(tx TTx) error { return s.complete(ctx, tx, l, result) })
}

// CompleteTx is Complete in tx: the result is stored, and the lease ends,
// when tx commits (with the handler's writes and outbox rows). ErrFenced
// leaves tx usable; roll it back, for the caller is not the key's owner.
func (s *SQL[TTx]) CompleteTx(ctx context.Context, tx TTx, l Lease, result []byte) error {
	if err := s.checkComplete(l, result); err != nil {
		return err
	}
	return s.complete(ctx, tx, l, result)
}

func (s *SQL[TTx]) checkComplete(l Lease, result []byte) error {
	if err := CheckLease(l); err != nil {
		return err
	}
	if len(result) > s.cfg.MaxResultSize {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrResultTooLarge, len(result), s.cfg.MaxResultSize)
	}
	return nil
}

func (s *SQL[TTx]) complete(ctx context.Context, tx TTx, l Lease, result []byte) error {
	now := s.now()
	ok, err := s.drv.Executor(tx).DedupeComplete(ctx, driver.DedupeCompleteParams{DedupeFence: fence(l), Result: result,
		Now: now, Expires: s.cfg.RecordExpiry(now, time.Time{})})
	return fenced("dedupe.complete", ok, err)
}

// Release implements Store in a transaction of its own.
func (s *SQL[TTx]) Release(ctx context.Context, l Lease) error {
	if err := CheckLease(l); err != nil {
		return err
	}
	return s.inTx(ctx, "dedupe.release", func(tx TTx) error { return s.release(ctx, tx, l) })
}

// ReleaseTx is Release in tx.
func (s *SQL[TTx]) ReleaseTx(ctx context.Context, tx TTx, l Lease) error {
	if err := CheckLease(l); err != nil {
		return err
	}
	return s.release(ctx, tx, l)
}

func (s *SQL[TTx]) release(ctx context.Context, tx TTx, l Lease) error {
	now := s.now()
	ok, err := s.drv.Executor(tx).DedupeRelease(ctx, driver.DedupeReleaseParams{DedupeFence: fence(l), Now: now, Expires: s.cfg.RecordExpiry(now, time.Time{})})
	return fenced("dedupe.release", ok, err)
}

// Renew implements Store in a transaction of its own.
func (s *SQL[TTx]) Renew(ctx context.Context, l Lease, lease time.Duration) (Lease, error) {
	if err := CheckRenew(l, lease); err != nil {
		return Lease{}, err
	}
	now := s.now()
	end := now.Add(lease)
	err := s.inTx(ctx, "dedupe.renew", func(tx TTx) error {
		ok, err := s.drv.Executor(tx).DedupeRenew(ctx, driver.DedupeRenewParams{DedupeFence: fence(l), Now: now, LeaseExpires: end,
			Expires: s.cfg.RecordExpiry(now, end)})
		return fenced("dedupe.renew", ok, err)
	})
	if err != nil {
		return Lease{}, err
	}
	l.Expires = end
	return l, nil
}

// Compact deletes the records past their expiry (Config.Retention after
// their last write, and never before a lease ends), in transactions of at
// most 1000 records, and reports how many it deleted. A
// compact.Compactor over the same driver does it too.
func (s *SQL[TTx]) Compact(ctx context.Context) (int, error) {
	now := s.now()
	total := 0
	for {
		var n int64
		err := s.inTx(ctx, "dedupe.compact", func(tx TTx) error {
			var err error
			n, err = s.drv.Executor(tx).Compact(ctx, driver.CompactDedupe, now, compactBatch)
			if err != nil {
				return &eos.StoreError{Op: "dedupe.compact", Err: err}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < compactBatch {
			return total, nil
		}
	}
}

func fence(l Lease) driver.DedupeFence {
	return driver.DedupeFence{Scope: l.Scope, Key: l.Key, Token: l.Token, Generation: l.Generation}
}

// fenced turns the answer of a fenced statement into Store's error.
func fenced(op string, ok bool, err error) error {
	switch {
	case err != nil:
		return &eos.StoreError{Op: op, Err: err}
	case !ok:
		return ErrFenced
	}
	return nil
}
