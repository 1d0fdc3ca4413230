package httpidem

import (
	"context"
	"fmt"
)

// Outcome is what became of a request the middleware applied to (one of
// Config.Methods, with a key or Required). The values are stable: metrics
// use them as label values.
type Outcome string

const (
	// OutcomeStored: the handler ran and its response was stored.
	OutcomeStored Outcome = "stored"
	// OutcomeReleased: the handler ran (or its transaction rolled back)
	// and the key was released: a status the policy does not store, a
	// panic, a response too large, a handler error.
	OutcomeReleased Outcome = "released"
	// OutcomeReplayed: a retry answered with the stored response.
	OutcomeReplayed Outcome = "replayed"
	// OutcomeInProgress: 409, the key's first request still running.
	OutcomeInProgress Outcome = "in_progress"
	// OutcomeMismatch: 422, the key reused by a different request.
	OutcomeMismatch Outcome = "mismatch"
	// OutcomeRefused: answered without a claim for the request's own
	// fault or the scope's: no key where one is required, a malformed key,
	// a body too large, no scope.
	OutcomeRefused Outcome = "refused"
	// OutcomeStoreError: the store failed (503 before the handler; after
	// it, the response could not be stored).
	OutcomeStoreError Outcome = "store_error"
	// OutcomeFenced: the handler ran but its lease had been taken over;
	// its response was not stored (the handler may have run twice: raise
	// Config.Lease).
	OutcomeFenced Outcome = "fenced"
)

// Hook observes the middleware. It is any value implementing one or more
// of the optional hook interfaces (OutcomeHook so far), checked when the
// middleware is made: new hook kinds can be added without breaking
// existing hooks.
type Hook any

// OutcomeHook is told the outcome of each request the middleware applied
// to, with the error behind it (store errors) or nil. It must not block:
// it runs on the request's path.
type OutcomeHook interface {
	OnOutcome(ctx context.Context, o Outcome, err error)
}

// checkHooks refuses a hook that implements no hook interface: a typo'd
// method would otherwise be a hook that silently never runs.
func checkHooks(hooks []Hook) error {
	for i, h := range hooks {
		if _, ok := h.(OutcomeHook); !ok {
			return fmt.Errorf("hook %d (%T) implements no httpidem hook interface", i, h)
		}
	}
	return nil
}

// observe tells the hooks o.
func (c *core) observe(ctx context.Context, o Outcome, err error) {
	for _, h := range c.cfg.Hooks {
		if oh, ok := h.(OutcomeHook); ok {
			oh.OnOutcome(ctx, o, err)
		}
	}
}
