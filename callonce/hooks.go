package callonce

import (
	"context"
	"errors"
	"fmt"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/failpoint"
)

// Hook is a value a Caller tells what it does: anything implementing one
// or more of the hook interfaces of this package ([EndHook],
// [StoreErrorHook]). New checks each hook once and refuses one that
// implements none: a misspelt method would otherwise make a hook that
// silently never runs. Hooks are called on Do's path (and a Stage's) and
// must not block.
//
// New kinds of hook come as new interfaces, so a hook written today keeps
// compiling and working when they are added.
type Hook any

// Ending is how a Do ended: what an operator needs to tell a healthy
// stream of calls from a provider in trouble, a worker losing its claims,
// or a store failing. The values are a closed set, stable, and used as
// metric label values.
type Ending string

const (
	// EndCalled: this Do called and recorded a Succeeded answer.
	EndCalled Ending = "called"
	// EndFailed: this Do called and recorded a Failed answer (a
	// definitive refusal: a declined card, an invalid request).
	EndFailed Ending = "failed"
	// EndResumed: this Do recorded a definitive answer, Succeeded or
	// Failed (End.Result says which), for a key an earlier owner had
	// claimed and not completed: it crashed, lost its lease, or gave up
	// on Unknown outcomes. Calls with the key may have run before; the
	// service's idempotency made them harmless. A steady rate of them
	// means workers die or leases are too short.
	EndResumed Ending = "resumed"
	// EndReplayed: an earlier Do had recorded the answer; no call (a
	// redelivery, a redone batch).
	EndReplayed Ending = "replayed"
	// EndUnknown: every call of this Do ended Unknown (ErrUnknownOutcome);
	// the key was released for the next attempt.
	EndUnknown Ending = "unknown"
	// EndInProgress: another owner held the key (ErrInProgress); no call.
	EndInProgress Ending = "in_progress"
	// EndMismatch: the key was reused with another fingerprint
	// (ErrMismatch); no call.
	EndMismatch Ending = "mismatch"
	// EndLeaseLost: this Do lost its claim while calling, or its
	// completion was fenced (ErrLeaseLost, dedupe.ErrFenced): its answer
	// was not recorded. It takes precedence over EndUnknown when both
	// happened (the lost claim cancelled the call).
	EndLeaseLost Ending = "lease_lost"
	// EndTooLarge: the answer was over the store's bound
	// (dedupe.ErrResultTooLarge); the key was released.
	EndTooLarge Ending = "too_large"
	// EndInvalid: the key, scope or fingerprint was refused (*KeyError,
	// dedupe.ErrInvalid); no claim, no call.
	EndInvalid Ending = "invalid"
	// EndCanceled: Do's context ended before the key was claimed or the
	// answer known (a worker shutting down); nothing was recorded.
	EndCanceled Ending = "canceled"
	// EndStoreError: the store failed (claim, completion, a recorded
	// answer it could not read): nothing is known, nothing was called or
	// recorded (a store that cannot answer is never read as "not called
	// yet"). Each failure is also told to the StoreErrorHooks.
	EndStoreError Ending = "store_error"
)

// Endings returns every Ending, in the order documented.
func Endings() []Ending {
	return []Ending{EndCalled, EndFailed, EndResumed, EndReplayed, EndUnknown, EndInProgress,
		EndMismatch, EndLeaseLost, EndTooLarge, EndInvalid, EndCanceled, EndStoreError}
}

// End is what an EndHook is told of one Do (or one call of a Stage's
// batch).
type End struct {
	// Scope and Key are Do's.
	Scope, Key string
	// Ending is how it ended.
	Ending Ending
	// Result is Do's result (zero unless Err is nil).
	Result Result
	// Err is Do's error, nil for EndCalled, EndFailed, EndResumed and
	// EndReplayed.
	Err error
}

// EndHook is told how each Do ended, and each call a Stage made or
// answered from the store. A Do ended by a failpoint (Config.Test) is not
// told: it stands for a crash, which could not tell either.
type EndHook interface {
	OnEnd(ctx context.Context, e End)
}

// StoreErrorHook is told of each failure of the store, whether or not it
// ended a Do: op names the step (callonce.claim, callonce.complete,
// callonce.release, callonce.renew, callonce.decode, and for a Stage over
// a BatchStore callonce.claim_many and callonce.complete_many, once per
// batch). The store's per-key answers (ErrFenced, ErrResultTooLarge,
// ErrInvalid) and a context that ended are not failures.
type StoreErrorHook interface {
	OnStoreError(ctx context.Context, op string, err error)
}

// EndFunc adapts a function to an EndHook.
type EndFunc func(ctx context.Context, e End)

// OnEnd calls f.
func (f EndFunc) OnEnd(ctx context.Context, e End) { f(ctx, e) }

// StoreErrorFunc adapts a function to a StoreErrorHook.
type StoreErrorFunc func(ctx context.Context, op string, err error)

// OnStoreError calls f.
func (f StoreErrorFunc) OnStoreError(ctx context.Context, op string, err error) { f(ctx, op, err) }

// hooks are a caller's hooks sorted by kind, once, at New.
type hooks struct {
	end        []EndHook
	storeError []StoreErrorHook
}

func newHooks(field string, hs []Hook) (hooks, error) {
	var out hooks
	for i, h := range hs {
		known := false
		if e, ok := h.(EndHook); ok {
			out.end, known = append(out.end, e), true
		}
		if s, ok := h.(StoreErrorHook); ok {
			out.storeError, known = append(out.storeError, s), true
		}
		if !known {
			return hooks{}, &eos.ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%T implements no hook interface (EndHook, StoreErrorHook)", h)}
		}
	}
	return out, nil
}

// ended tells the EndHooks how a Do for scope/key ended.
func (h *hooks) ended(ctx context.Context, scope, key string, r Result, err error) {
	if len(h.end) == 0 {
		return
	}
	e, ok := ending(ctx, r, err)
	if !ok {
		return
	}
	for _, eh := range h.end {
		eh.OnEnd(ctx, End{Scope: scope, Key: key, Ending: e, Result: r, Err: err})
	}
}

// storeFailed tells the StoreErrorHooks of err, the error of the store
// at op, unless it is a per-key answer or the end of ctx.
func (h *hooks) storeFailed(ctx context.Context, op string, err error) {
	if len(h.storeError) == 0 || !isStoreFailure(ctx, err) {
		return
	}
	for _, sh := range h.storeError {
		sh.OnStoreError(ctx, op, err)
	}
}

// isStoreFailure reports whether err, from the store, is a failure of it
// rather than an answer about the key or the end of ctx.
func isStoreFailure(ctx context.Context, err error) bool {
	return err != nil && !isPerKey(err) && !ended(ctx, err)
}

// ended reports whether err is ctx's own end.
func ended(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// ending classifies Do's return; false for a failpoint's crash.
func ending(ctx context.Context, r Result, err error) (Ending, bool) {
	var ke *KeyError
	switch {
	case err == nil && r.Replayed:
		return EndReplayed, true
	case err == nil && r.Resumed:
		return EndResumed, true
	case err == nil && r.Status == StatusFailed:
		return EndFailed, true
	case err == nil:
		return EndCalled, true
	case errors.Is(err, failpoint.ErrInjected):
		return "", false
	case errors.As(err, &ke) || errors.Is(err, dedupe.ErrInvalid):
		return EndInvalid, true
	case errors.Is(err, ErrInProgress):
		return EndInProgress, true
	case errors.Is(err, ErrMismatch):
		return EndMismatch, true
	case errors.Is(err, ErrLeaseLost) || errors.Is(err, dedupe.ErrFenced):
		return EndLeaseLost, true
	case errors.Is(err, ErrUnknownOutcome):
		return EndUnknown, true
	case errors.Is(err, dedupe.ErrResultTooLarge):
		return EndTooLarge, true
	case ended(ctx, err):
		return EndCanceled, true
	}
	return EndStoreError, true
}
