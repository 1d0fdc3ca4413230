package httpidem

import (
	"context"
	"errors"
	"net/http"

	"github.com/eoskit/eos/dedupe"
)

// fpBeforeComplete is the failpoint between the handler and the storing
// of its response: armed, the middleware behaves as a process that died
// there (the connection is aborted; the key stays claimed until its lease
// expires).
const fpBeforeComplete = "httpidem.before_complete"

// runPlain runs next under the claim a holds and stores its response
// before the client sees it.
func (c *core) runPlain(w http.ResponseWriter, a *admitted, next http.Handler) {
	ctx, lost := context.WithCancelCause(a.r.Context())
	defer lost(nil)
	rn := c.renew(ctx, a.lease, lost)
	cw := newCapture(w, c.cfg.MaxResult, true)
	returned := false
	defer func() {
		if !returned { // a panic: give the key up, let net/http see the panic
			c.release(ctx, rn.stop())
			c.observe(ctx, OutcomeReleased, nil)
		}
	}()
	next.ServeHTTP(cw, a.r.WithContext(ctx))
	returned = true
	l := rn.stop()
	if c.cfg.Test.Failpoints.Eval(fpBeforeComplete) != nil {
		panic(http.ErrAbortHandler)
	}
	status := cw.statusCode()
	switch {
	case cw.overflow: // sent already
		c.log.WarnContext(ctx, "httpidem: a response larger than MaxResult was sent, not stored; the key is released", "scope", l.Scope, "key", l.Key)
		c.release(ctx, l)
		c.observe(ctx, OutcomeReleased, nil)
		return
	case !c.cfg.Policy.Store(status):
		c.release(ctx, l)
		c.observe(ctx, OutcomeReleased, nil)
		cw.send()
		return
	}
	result := cw.stored(c.cfg.Policy.Headers).encode()
	if len(result) > c.cfg.MaxResult {
		c.log.WarnContext(ctx, "httpidem: a response larger than MaxResult was sent, not stored; the key is released", "scope", l.Scope, "key", l.Key, "bytes", len(result))
		c.release(ctx, l)
		c.observe(ctx, OutcomeReleased, nil)
		cw.send()
		return
	}
	c.complete(ctx, l, result)
	cw.send()
}

// complete stores result for l. The response is sent whatever happens:
// the handler's effect took place, and its answer is the best a client can
// get. A failure is logged with what a retry will then do.
func (c *core) complete(ctx context.Context, l dedupe.Lease, result []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	err := c.store.Complete(ctx, l, result)
	switch {
	case err == nil:
		c.observe(ctx, OutcomeStored, nil)
	case errors.Is(err, dedupe.ErrResultTooLarge):
		c.log.WarnContext(ctx, "httpidem: the store refused the response as too large; the key is released", "scope", l.Scope, "key", l.Key, "bytes", len(result))
		c.release(ctx, l)
		c.observe(ctx, OutcomeReleased, nil)
	case errors.Is(err, dedupe.ErrFenced):
		c.log.ErrorContext(ctx, "httpidem: the key was taken over while the handler ran: its response is not stored and the handler may have run twice (raise Config.Lease)", "scope", l.Scope, "key", l.Key)
		c.observe(ctx, OutcomeFenced, err)
	default:
		c.log.ErrorContext(ctx, "httpidem: storing the response failed; a retry after the lease expires runs the handler again", "scope", l.Scope, "key", l.Key, "err", err)
		c.observe(ctx, OutcomeStoreError, err)
	}
}
