package callonce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/internal/backoff"
)

// Func makes the call, sending idempotencyKey with it (SetHeader), and
// classifies the answer. ctx ends when Do's context ends or when the claim
// is lost.
type Func func(ctx context.Context, idempotencyKey string) Outcome

// Caller makes calls once per key over a dedupe.Store. It is safe for
// concurrent use.
type Caller struct {
	store dedupe.Store
	cfg   Config
	retry backoff.Policy
	hooks hooks
}

// New returns a Caller over store.
func New(store dedupe.Store, cfg Config) (*Caller, error) {
	if store == nil {
		return nil, errors.New("callonce: New: nil store")
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	hs, err := newHooks("callonce.Config.Hooks", cfg.Hooks)
	if err != nil {
		return nil, err
	}
	return &Caller{store: store, cfg: cfg, retry: backoff.Policy{Initial: cfg.RetryDelay, Max: cfg.MaxRetryDelay}, hooks: hs}, nil
}

// Do makes the call for key in scope once, and returns its definitive
// result: the one recorded by an earlier Do (Replayed, no call), or the
// one this Do's calls got and recorded. key is also the idempotency key
// handed to call (CheckKey: printable ASCII, at most MaxKeyLen bytes):
// derive it from the message id, never from anything that changes between
// deliveries. fingerprint identifies the request (a digest of what is
// sent); the key reused with another fingerprint is ErrMismatch.
//
// A Failed result is returned with a nil error (it is definitive;
// Result.Err makes it one). The errors: *InProgressError, *MismatchError,
// *UnknownOutcomeError, ErrLeaseLost, dedupe.ErrResultTooLarge (the answer
// is over the store's bound; the key is released), a store failure
// (wrapping it: a store that cannot answer is never read as "not called
// yet"), or ctx's error. call must not be nil.
//
// Config.Hooks are told how it ended (EndHook) and of each failure of the
// store (StoreErrorHook).
func (c *Caller) Do(ctx context.Context, scope, key string, fingerprint []byte, call Func) (Result, error) {
	r, err := c.do(ctx, scope, key, fingerprint, call)
	c.hooks.ended(ctx, scope, key, r, err)
	return r, err
}

func (c *Caller) do(ctx context.Context, scope, key string, fingerprint []byte, call Func) (Result, error) {
	if err := CheckKey(key); err != nil {
		return Result{}, err
	}
	cl, err := c.store.Claim(ctx, scope, key, fingerprint, c.cfg.Lease)
	if err != nil {
		c.hooks.storeFailed(ctx, "callonce.claim", err)
		return Result{}, fmt.Errorf("callonce: claim %s/%s: %w", scope, key, err)
	}
	r, claimed, err := c.answer(ctx, scope, key, cl)
	if !claimed {
		return r, err
	}
	r, cur, err := c.run(c.keep(ctx, cl.Lease), call)
	if err != nil {
		return Result{}, err
	}
	if err := c.record(ctx, cur, r); err != nil {
		return Result{}, err
	}
	return r, nil
}

// answer turns a claim into Do's answer, or reports that the caller holds
// the key (claimed) and must call.
func (c *Caller) answer(ctx context.Context, scope, key string, cl dedupe.Claim) (r Result, claimed bool, err error) {
	switch cl.Status {
	case dedupe.Completed:
		r, err := decode(cl.Result)
		if err != nil {
			c.hooks.storeFailed(ctx, "callonce.decode", err)
			return Result{}, false, fmt.Errorf("%w (%s/%s)", err, scope, key)
		}
		r.Replayed = true
		return r, false, nil
	case dedupe.InProgress:
		return Result{}, false, &InProgressError{Scope: scope, Key: key, RetryAfter: cl.RetryAfter}
	case dedupe.Mismatch:
		return Result{}, false, &MismatchError{Scope: scope, Key: key}
	case dedupe.Claimed:
		return Result{}, true, nil
	}
	err = fmt.Errorf("callonce: claim %s/%s: unexpected status %v", scope, key, cl.Status)
	c.hooks.storeFailed(ctx, "callonce.claim", err)
	return Result{}, false, err
}

// run calls under k's lease until a definitive outcome, at most
// MaxAttempts times, and returns it with the lease as last renewed, for
// the caller to record. It stops k.
func (c *Caller) run(k *keeper, call Func) (Result, dedupe.Lease, error) {
	ctx, l := k.parent, k.l
	resumed := l.Generation > 1
	var last error
	for attempt := 1; ; attempt++ {
		if err := c.cfg.Test.Failpoints.Eval(FailBeforeCall); err != nil {
			k.abandon()
			return Result{}, dedupe.Lease{}, err
		}
		out := call(k.ctx, l.Key)
		if err := c.cfg.Test.Failpoints.Eval(FailAfterCall); err != nil {
			k.abandon()
			return Result{}, dedupe.Lease{}, err
		}
		if out.status != 0 {
			r := Result{Status: out.status, Value: out.value, Reason: reason(out.reason), Attempts: attempt, Resumed: resumed}
			cur, err := k.stop()
			if err != nil {
				return Result{}, dedupe.Lease{}, err
			}
			return r, cur, nil
		}
		last = out.err
		if attempt >= c.cfg.MaxAttempts || !c.retry.Sleep(k.ctx, attempt) {
			cur, err := k.stop()
			if err == nil {
				c.release(ctx, cur)
			}
			uerr := &UnknownOutcomeError{Scope: l.Scope, Key: l.Key, Attempts: attempt, Err: last}
			if err != nil {
				return Result{}, dedupe.Lease{}, errors.Join(uerr, err)
			}
			return Result{}, dedupe.Lease{}, uerr
		}
	}
}

// record stores r under l, or returns why not.
func (c *Caller) record(ctx context.Context, l dedupe.Lease, r Result) error {
	err := c.complete(ctx, l, r)
	c.hooks.storeFailed(context.WithoutCancel(ctx), "callonce.complete", err)
	return c.recorded(ctx, l, err)
}

// recorded is the error of the completion of l (err), as Do returns it.
// An answer over the store's bound releases the key: retrying would get
// the same answer, so the key is given up now rather than blocked for the
// lease.
func (c *Caller) recorded(ctx context.Context, l dedupe.Lease, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, dedupe.ErrResultTooLarge) {
		c.release(ctx, l)
	}
	return fmt.Errorf("callonce: record %s/%s: %w", l.Scope, l.Key, err)
}

// finishTimeout bounds Complete and Release, which run even when Do's
// context has ended.
const finishTimeout = 10 * time.Second

// complete records r. It runs even when ctx has ended since the call
// returned: a definitive answer is worth keeping, it spares a call.
func (c *Caller) complete(ctx context.Context, l dedupe.Lease, r Result) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	return c.store.Complete(cctx, l, encode(r))
}

// release gives the key up after Unknown outcomes, so that the next
// attempt need not wait for the lease to expire. It runs even when ctx has
// ended (a worker shutting down releases what it holds); a failure leaves
// the lease to expire.
func (c *Caller) release(ctx context.Context, l dedupe.Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := c.store.Release(rctx, l); err != nil {
		c.hooks.storeFailed(context.WithoutCancel(ctx), "callonce.release", err)
		c.cfg.Logger.Warn("callonce: release after unknown outcomes failed; the lease will expire", "scope", l.Scope, "key", l.Key, "err", err)
	}
}

// keeper renews a lease every Lease/3 while a call runs. It cancels ctx
// when the lease is lost: fenced by the store, or not renewed before the
// local estimate of its expiry.
type keeper struct {
	parent context.Context // Do's
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	l    dedupe.Lease
	lost error
}

func (c *Caller) keep(ctx context.Context, l dedupe.Lease) *keeper {
	k := &keeper{parent: ctx, l: l, done: make(chan struct{})}
	k.ctx, k.cancel = context.WithCancel(ctx)
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		c.renew(k)
	}()
	return k
}

func (c *Caller) renew(k *keeper) {
	every := c.cfg.Lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	expires := c.cfg.Test.Now().Add(c.cfg.Lease) // local estimate
	for {
		select {
		case <-k.done:
			return
		case <-k.ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		l := k.l
		k.mu.Unlock()
		start := c.cfg.Test.Now()
		nl, err := c.store.Renew(k.ctx, l, c.cfg.Lease)
		if err == nil {
			expires = start.Add(c.cfg.Lease)
			k.mu.Lock()
			k.l = nl
			k.mu.Unlock()
			continue
		}
		if k.ctx.Err() != nil {
			return
		}
		c.hooks.storeFailed(k.ctx, "callonce.renew", err) // not when fenced: that is an answer
		if errors.Is(err, dedupe.ErrFenced) || !c.cfg.Test.Now().Before(expires.Add(-every)) {
			c.cfg.Logger.Warn("callonce: claim lost while calling", "scope", l.Scope, "key", l.Key, "err", err)
			k.mu.Lock()
			k.lost = fmt.Errorf("%w: %s/%s: %w", ErrLeaseLost, l.Scope, l.Key, err)
			k.mu.Unlock()
			k.cancel()
			return
		}
		// A store error with time left on the lease: try again next tick.
	}
}

// stop ends the renewals and returns the current lease, or the error that
// lost it.
func (k *keeper) stop() (dedupe.Lease, error) {
	close(k.done)
	k.wg.Wait()
	k.cancel()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.l, k.lost
}

// abandon ends the renewals and leaves the lease to expire, as a crash
// would.
func (k *keeper) abandon() { k.stop() }

// MismatchError is returned when the key was claimed with another
// fingerprint. It matches ErrMismatch.
type MismatchError struct{ Scope, Key string }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("callonce: %s/%s: key reused with a different request", e.Scope, e.Key)
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }
