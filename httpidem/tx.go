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
		a, ok := m.c.admit(w, r)
		switch {
		case !ok:
		case a == nil:
			m.runUnkeyed(w, r, h)
		default:
			m.runKeyed(w, a, h)
		}
	})
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

func (m *TxMiddleware[TTx]) runKeyed(w http.ResponseWriter, a *admitted, h TxHandler[TTx]) {
	c := m.c
	ctx, lost := context.WithCancelCause(a.r.Context())
	defer lost(nil)
	rn := c.renew(ctx, a.lease, lost)
	tx, err := m.drv.Begin(ctx)
	if err != nil {
		c.release(ctx, rn.stop())
		c.storeFailed(ctx, "begin", a.lease.Scope, a.lease.Key, err)
		problemStore().write(w)
		return
	}
	t := txRun[TTx]{m: m, tx: tx}
	cw := newCapture(w, c.cfg.MaxResult, false)
	returned := false
	defer func() {
		if !returned {
			t.rollback(ctx)
			c.release(ctx, rn.stop())
		}
	}()
	herr := h(cw, a.r.WithContext(ctx), tx)
	returned = true
	l := rn.stop()
	if c.cfg.Test.Failpoints.Eval(fpBeforeComplete) != nil {
		t.rollback(ctx)
		panic(http.ErrAbortHandler)
	}
	if p := m.commitKeyed(ctx, t, l, cw, herr); p != nil {
		p.write(w)
		return
	}
	cw.send()
}

// commitKeyed ends the keyed transaction: CompleteTx and commit when the
// response is to be stored, rollback and release otherwise. It returns the
// problem to answer instead of the handler's response, or nil.
func (m *TxMiddleware[TTx]) commitKeyed(ctx context.Context, t txRun[TTx], l dedupe.Lease, cw *capture, herr error) *Problem {
	c := m.c
	status := cw.statusCode()
	var result []byte
	if herr == nil && !cw.overflow && c.cfg.Policy.Store(status) {
		result = cw.stored(c.cfg.Policy.Headers).encode()
	}
	switch {
	case herr != nil:
		t.rollback(ctx)
		c.release(ctx, l)
		c.log.ErrorContext(ctx, "httpidem: the handler failed; rolled back", "scope", l.Scope, "key", l.Key, "err", herr)
		return problemUnprocessed("The handler failed; nothing was committed. Retrying the request is safe.")
	case cw.overflow || len(result) > c.cfg.MaxResult:
		t.rollback(ctx)
		c.release(ctx, l)
		c.log.ErrorContext(ctx, "httpidem: the response is larger than MaxResult; rolled back", "scope", l.Scope, "key", l.Key)
		return problemUnprocessed("The response is too large to store; nothing was committed.")
	case result == nil: // not stored by the policy: not done
		t.rollback(ctx)
		c.release(ctx, l)
		return nil
	}
	if err := m.store.CompleteTx(ctx, t.tx, l, result); err != nil {
		t.rollback(ctx)
		if errors.Is(err, dedupe.ErrFenced) {
			c.log.ErrorContext(ctx, "httpidem: the key was taken over while the handler ran; rolled back (raise Config.Lease)", "scope", l.Scope, "key", l.Key)
			return problemInProgress(time.Second)
		}
		c.release(ctx, l)
		c.storeFailed(ctx, "complete", l.Scope, l.Key, err)
		return problemStore()
	}
	if err := m.drv.Commit(ctx, t.tx); err != nil {
		// Maybe committed: then the key is completed and Release is fenced;
		// if not, releasing lets a retry run at once.
		c.release(ctx, l)
		c.storeFailed(ctx, "commit", l.Scope, l.Key, err)
		return problemStore()
	}
	return nil
}

// runUnkeyed runs h in a transaction without a key: committed when the
// policy would store its response, rolled back otherwise.
func (m *TxMiddleware[TTx]) runUnkeyed(w http.ResponseWriter, r *http.Request, h TxHandler[TTx]) {
	c := m.c
	ctx := r.Context()
	tx, err := m.drv.Begin(ctx)
	if err != nil {
		c.log.ErrorContext(ctx, "httpidem: begin failed", "err", err)
		problemStore().write(w)
		return
	}
	t := txRun[TTx]{m: m, tx: tx}
	cw := newCapture(w, c.cfg.MaxResult, false)
	returned := false
	defer func() {
		if !returned {
			t.rollback(ctx)
		}
	}()
	herr := h(cw, r, tx)
	returned = true
	switch {
	case herr != nil:
		t.rollback(ctx)
		c.log.ErrorContext(ctx, "httpidem: the handler failed; rolled back", "err", herr)
		problemUnprocessed("The handler failed; nothing was committed.").write(w)
	case cw.overflow:
		t.rollback(ctx)
		problemUnprocessed("The response is too large; nothing was committed.").write(w)
	case !c.cfg.Policy.Store(cw.statusCode()):
		t.rollback(ctx)
		cw.send()
	default:
		if err := m.drv.Commit(ctx, tx); err != nil {
			c.log.ErrorContext(ctx, "httpidem: commit failed", "err", err)
			problemStore().write(w)
			return
		}
		cw.send()
	}
}
