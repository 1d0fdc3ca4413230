package httpidem

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver"
)

// TxStore is a dedupe store that can store a key's result inside a
// transaction of an eos driver: dedupe.SQL.
type TxStore[TTx any] interface {
	dedupe.Store
	// CompleteTx is Complete as part of tx: the result is stored if, and
	// only if, tx commits.
	CompleteTx(ctx context.Context, tx TTx, l dedupe.Lease, result []byte) error
}

// TxHandler serves a request inside tx, a transaction of the middleware's
// driver: its writes (business rows, outbox rows with outbox.Enqueue)
// commit together with the key's stored response, or not at all. It
// returns an error to roll back; the client then gets a 500 problem and
// may retry. It must not commit or roll back tx itself.
type TxHandler[TTx any] func(w http.ResponseWriter, r *http.Request, tx TTx) error

// TxMiddleware is the middleware whose handler writes in the transaction
// that completes the key. A request is answered only after that
// transaction: a client never sees a success that did not commit, and a
// retry finds either the committed response or nothing done.
type TxMiddleware[TTx any] struct {
	c     *core
	store TxStore[TTx]
	drv   driver.Driver[TTx]
}

// NewTx returns a TxMiddleware keeping its keys in store, which lives in
// the database of drv (for dedupe.SQL, the driver it was made with).
//
// Responses are bounded by Config.MaxResult: a larger one rolls back and
// is answered 500. The Tx middleware never sends a response it has not
// committed.
func NewTx[TTx any](store TxStore[TTx], drv driver.Driver[TTx], cfg Config) (*TxMiddleware[TTx], error) {
	c, err := newCore(store, cfg)
	if err != nil {
		return nil, err
	}
	if drv == nil {
		return nil, &eos.ConfigError{Field: "httpidem.NewTx driver", Reason: "nil"}
	}
	return &TxMiddleware[TTx]{c: c, store: store, drv: drv}, nil
}

// Handler serves h. Under a claim on the key, h runs in a transaction
// that also stores its response (CompleteTx) when the policy stores it,
// then commits; otherwise the transaction rolls back and the key is
// released. A request the middleware does not apply to (another method,
// no key when none is required) runs in a transaction too, committed by
// the same rule.
func (m *TxMiddleware[TTx]) Handler(h TxHandler[TTx]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := m.c.admit(w, r); ok {
			m.run(w, r, a, h)
		}
	})
}

// held is the key a keyed transaction holds, its lease renewed while the
// handler runs; nil for an unkeyed transaction, on which its methods do
// nothing.
type held struct {
	c       *core
	rn      *renewal
	lease   dedupe.Lease
	stopped bool
}

// stop ends the renewals.
func (k *held) stop() {
	if k != nil && !k.stopped {
		k.lease, k.stopped = k.rn.stop(), true
	}
}

// release gives the key up, so that a retry runs the handler again.
func (k *held) release(ctx context.Context) {
	if k != nil {
		k.stop()
		k.c.release(ctx, k.lease)
	}
}

// observe tells the hooks the outcome of a keyed request.
func (k *held) observe(ctx context.Context, o Outcome, err error) {
	if k != nil {
		k.c.observe(ctx, o, err)
	}
}

// attrs names the key in logs.
func (k *held) attrs() []any {
	if k == nil {
		return nil
	}
	return []any{"scope", k.lease.Scope, "key", k.lease.Key}
}

// run runs h in a transaction of its own; a, when not nil, is the claim
// the request holds.
func (m *TxMiddleware[TTx]) run(w http.ResponseWriter, r *http.Request, a *admitted, h TxHandler[TTx]) {
	c := m.c
	ctx, lost := context.WithCancelCause(r.Context())
	defer lost(nil)
	var k *held
	if a != nil {
		r = a.r
		k = &held{c: c, rn: c.renew(ctx, a.lease, lost)}
	}
	tx, err := m.drv.Begin(ctx)
	if err != nil {
		k.release(ctx)
		k.observe(ctx, OutcomeStoreError, err)
		c.logStoreFailure(ctx, err, append(k.attrs(), "op", "begin")...)
		problemStore().write(w)
		return
	}
	t := txRun[TTx]{m: m, tx: tx}
	cw := newCapture(w, c.cfg.MaxResult, false)
	returned := false
	defer func() {
		if !returned { // a panic: roll back, give the key up, let net/http see it
			t.rollback(ctx)
			k.release(ctx)
			k.observe(ctx, OutcomeReleased, nil)
		}
	}()
	herr := h(cw, r.WithContext(ctx), tx)
	returned = true
	k.stop()
	if k != nil && c.cfg.Test.Failpoints.Eval(fpBeforeComplete) != nil {
		t.rollback(ctx)
		panic(http.ErrAbortHandler)
	}
	if p := m.finish(ctx, t, k, cw, herr); p != nil {
		p.write(w)
		return
	}
	cw.send()
}

// txRun is one handler's transaction.
type txRun[TTx any] struct {
	m  *TxMiddleware[TTx]
	tx TTx
}

func (t txRun[TTx]) rollback(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := t.m.drv.Rollback(ctx, t.tx); err != nil {
		t.m.c.log.WarnContext(ctx, "httpidem: rollback failed", "err", err)
	}
}

// finish ends the transaction: with a response the policy stores, it
// stores it in the transaction (CompleteTx, when keyed) and commits;
// otherwise it rolls back and releases the key. It returns the problem to
// answer instead of the handler's response, or nil.
func (m *TxMiddleware[TTx]) finish(ctx context.Context, t txRun[TTx], k *held, cw *capture, herr error) *Problem {
	c := m.c
	done := herr == nil && !cw.overflow && c.cfg.Policy.Store(cw.statusCode())
	var result []byte
	if done && k != nil {
		result = cw.stored(c.cfg.Policy.Headers).encode()
	}
	switch {
	case herr != nil:
		t.rollback(ctx)
		k.release(ctx)
		k.observe(ctx, OutcomeReleased, nil)
		c.log.Log(ctx, abandonedLevel(ctx), "httpidem: the handler failed; rolled back", append(k.attrs(), "err", herr)...)
		return problemUnprocessed("The handler failed; nothing was committed. Retrying the request is safe.")
	case cw.overflow || len(result) > c.cfg.MaxResult:
		t.rollback(ctx)
		k.release(ctx)
		k.observe(ctx, OutcomeReleased, nil)
		c.log.ErrorContext(ctx, "httpidem: the response is larger than MaxResult; rolled back", k.attrs()...)
		return problemUnprocessed("The response is too large to store; nothing was committed.")
	case !done: // a status the policy does not store: not done
		t.rollback(ctx)
		k.release(ctx)
		k.observe(ctx, OutcomeReleased, nil)
		return nil
	}
	if k != nil {
		if err := m.store.CompleteTx(ctx, t.tx, k.lease, result); err != nil {
			t.rollback(ctx)
			if errors.Is(err, dedupe.ErrFenced) {
				c.log.ErrorContext(ctx, "httpidem: the key was taken over while the handler ran; rolled back (raise Config.Lease)", k.attrs()...)
				k.observe(ctx, OutcomeFenced, err)
				return problemInProgress(time.Second)
			}
			k.release(ctx)
			k.observe(ctx, OutcomeStoreError, err)
			c.logStoreFailure(ctx, err, append(k.attrs(), "op", "complete")...)
			return problemStore()
		}
	}
	if err := m.drv.Commit(ctx, t.tx); err != nil {
		// Maybe committed: then the key is completed and Release is fenced;
		// if not, releasing lets a retry run at once.
		k.release(ctx)
		k.observe(ctx, OutcomeStoreError, err)
		c.logStoreFailure(ctx, err, append(k.attrs(), "op", "commit")...)
		return problemStore()
	}
	k.observe(ctx, OutcomeStored, nil)
	return nil
}
