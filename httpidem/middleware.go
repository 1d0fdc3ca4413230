package httpidem

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/ctxtime"
)

// ErrLeaseLost is the cause of the handler's context cancellation when
// the key's lease was taken over while the handler ran (it could not be
// renewed in time): another request now owns the key, and this handler's
// response will not be stored.
var ErrLeaseLost = errors.New("httpidem: the key's lease was lost")

// storeTimeout bounds a store call made after the handler (Complete,
// Release), which must not end with the request's context.
const storeTimeout = 10 * time.Second

// waitPolicy paces the polls of a request waiting (Config.Wait) for the
// first request with its key to finish.
var waitPolicy = backoff.Policy{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}

// Middleware applies the Idempotency-Key rules to a handler.
type Middleware struct {
	c *core
}

// New returns a middleware keeping its keys in store. It fails with a
// *eos.ConfigError when cfg is invalid (Scope is required).
func New(store dedupe.Store, cfg Config) (*Middleware, error) {
	c, err := newCore(store, cfg)
	if err != nil {
		return nil, err
	}
	return &Middleware{c: c}, nil
}

// Handler wraps next. For a request of one of Config.Methods with a key,
// next runs only under a claim on the key: at most one request per key
// runs it, and every later request with the key gets its stored response
// (or 409 while it runs, 422 when it is a different request).
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := m.c.admit(w, r)
		switch {
		case !ok:
			return
		case a == nil:
			next.ServeHTTP(w, r)
			return
		}
		m.c.runPlain(w, a, next)
	})
}

type core struct {
	store   dedupe.Store
	cfg     Config
	log     *slog.Logger
	methods []string
}

func newCore(store dedupe.Store, cfg Config) (*core, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, &eos.ConfigError{Field: "httpidem store", Reason: "nil"}
	}
	return &core{store: store, cfg: cfg, log: cfg.Logger, methods: cfg.Methods}, nil
}

// admitted is a request that holds the claim on its key.
type admitted struct {
	r     *http.Request // its body replaced by the bytes read
	lease dedupe.Lease
}

// admit does everything before the handler. It returns (nil, true) when
// the request passes through unprotected (another method, or no key when
// none is required), (a, true) when it holds the key's claim, and
// (nil, false) when it has been answered: a replay or a problem.
func (c *core) admit(w http.ResponseWriter, r *http.Request) (*admitted, bool) {
	if !slices.Contains(c.methods, r.Method) {
		return nil, true
	}
	key, p := c.key(r)
	if p != nil {
		c.observe(r.Context(), OutcomeRefused, nil)
		p.write(w)
		return nil, false
	}
	if key == "" {
		return nil, true
	}
	scope, err := c.cfg.Scope(r)
	if err == nil && scope == "" {
		err = errors.New("Config.Scope returned an empty scope")
	}
	if err != nil {
		var sp *Problem
		if !errors.As(err, &sp) || sp.Status < 400 || sp.Status > 599 {
			c.log.ErrorContext(r.Context(), "httpidem: no scope for the request", "err", err)
			sp = problemUnprocessed("The request's scope could not be determined.")
		}
		c.observe(r.Context(), OutcomeRefused, nil)
		sp.write(w)
		return nil, false
	}
	body, p := c.readBody(r)
	if p != nil {
		c.observe(r.Context(), OutcomeRefused, nil)
		p.write(w)
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	fp := Fingerprint(r.Method, c.cfg.Route(r), body, r.Header, c.cfg.FingerprintHeaders)
	cl, err := c.claim(r.Context(), scope, key, fp)
	switch {
	case errors.Is(err, dedupe.ErrInvalid): // the scope is over the store's bound: the server's fault
		c.log.ErrorContext(r.Context(), "httpidem: the store refuses the request's scope", "err", err)
		c.observe(r.Context(), OutcomeRefused, nil)
		problemUnprocessed("The request's scope could not be used.").write(w)
		return nil, false
	case err != nil:
		c.storeFailed(r.Context(), "claim", scope, key, err)
		c.observe(r.Context(), OutcomeStoreError, err)
		problemStore().write(w)
		return nil, false
	}
	switch cl.Status {
	case dedupe.Claimed:
		return &admitted{r: r, lease: cl.Lease}, true
	case dedupe.Completed:
		resp, err := decodeResponse(cl.Result)
		if err != nil {
			c.log.ErrorContext(r.Context(), "httpidem: a stored response does not decode", "scope", scope, "key", key, "err", err)
			c.observe(r.Context(), OutcomeStoreError, err)
			problemStore().write(w)
			return nil, false
		}
		c.observe(r.Context(), OutcomeReplayed, nil)
		replay(w, resp)
	case dedupe.Mismatch:
		c.observe(r.Context(), OutcomeMismatch, nil)
		problemKeyReused().write(w)
	case dedupe.InProgress:
		c.observe(r.Context(), OutcomeInProgress, nil)
		problemInProgress(cl.RetryAfter).write(w)
	default:
		c.log.ErrorContext(r.Context(), "httpidem: the store answered an unknown status", "status", cl.Status.String())
		c.observe(r.Context(), OutcomeStoreError, nil)
		problemStore().write(w)
	}
	return nil, false
}

// key returns the request's key ("" when it has none and none is
// required), or the problem to answer.
func (c *core) key(r *http.Request) (string, *Problem) {
	vs := r.Header.Values(HeaderKey)
	switch len(vs) {
	case 0:
		if c.cfg.Required {
			return "", problemKeyMissing()
		}
		return "", nil
	case 1:
	default:
		return "", problemKeyInvalid("the field is sent more than once")
	}
	k, err := ParseKey(vs[0], c.cfg.Lenient)
	if err != nil {
		var ke *KeyError
		errors.As(err, &ke)
		return "", problemKeyInvalid(ke.Reason)
	}
	return k, nil
}

// readBody reads at most MaxBody bytes: the fingerprint needs the whole
// body, and an unbounded read would let a client hold any amount of the
// server's memory.
func (c *core) readBody(r *http.Request) ([]byte, *Problem) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, c.cfg.MaxBody+1))
	switch {
	case err != nil:
		return nil, &Problem{Type: ProblemUnprocessed, Title: "The request body could not be read", Status: http.StatusBadRequest}
	case int64(len(b)) > c.cfg.MaxBody:
		return nil, problemBodyTooLarge(c.cfg.MaxBody)
	}
	return b, nil
}

// claim claims the key; with Config.Wait, it polls while another request
// holds it, up to Wait.
func (c *core) claim(ctx context.Context, scope, key string, fp []byte) (dedupe.Claim, error) {
	cl, err := c.store.Claim(ctx, scope, key, fp, c.cfg.Lease)
	if err != nil || cl.Status != dedupe.InProgress || c.cfg.Wait <= 0 {
		return cl, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.Wait)
	defer cancel()
	for n := 1; ; n++ {
		if !ctxtime.Sleep(wctx, min(waitPolicy.Wait(n), cl.RetryAfter)) {
			return cl, ctx.Err() // nil when only the wait ran out: answer 409
		}
		if cl, err = c.store.Claim(ctx, scope, key, fp, c.cfg.Lease); err != nil || cl.Status != dedupe.InProgress {
			return cl, err
		}
	}
}

// storeFailed logs a store failure on the claim path.
func (c *core) storeFailed(ctx context.Context, op, scope, key string, err error) {
	c.logStoreFailure(ctx, err, "op", op, "scope", scope, "key", key)
}

// logStoreFailure logs a store failure, at debug level when the client
// went away and the store call ended with it, which is no fault of the
// store (abandonedLevel).
func (c *core) logStoreFailure(ctx context.Context, err error, attrs ...any) {
	c.log.Log(ctx, abandonedLevel(ctx), "httpidem: store failure", append(attrs, "err", err)...)
}

// abandonedLevel is the level of a failure's log line: debug when the
// request's context ended first with no cause of its own (the client went
// away; a lost lease has a cause), error otherwise.
func abandonedLevel(ctx context.Context) slog.Level {
	if ctx.Err() != nil && context.Cause(ctx) == ctx.Err() {
		return slog.LevelDebug
	}
	return slog.LevelError
}

// renewal keeps a lease alive while a handler runs: a timer that renews
// the lease every third of it. A timer, not a goroutine: most handlers end
// long before the first renewal, and a goroutine per request would cost
// them its scheduling.
type renewal struct {
	c      *core
	lost   context.CancelCauseFunc
	ctx    context.Context // the renewals'; cancelled by stop
	cancel context.CancelFunc

	mu       sync.Mutex
	timer    *time.Timer
	lease    dedupe.Lease
	stopped  bool
	inflight chan struct{} // closed when the renewal under way ends
}

// renew starts renewing l. When the store says the lease is no longer the
// key's (ErrFenced), lost is called with ErrLeaseLost: the handler's work
// is to be abandoned. Other errors are logged and retried at the next
// tick: the lease may still be live.
func (c *core) renew(ctx context.Context, l dedupe.Lease, lost context.CancelCauseFunc) *renewal {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rn := &renewal{c: c, lost: lost, ctx: rctx, cancel: cancel, lease: l}
	rn.mu.Lock()
	rn.timer = time.AfterFunc(c.cfg.Lease/3, rn.tick)
	rn.mu.Unlock()
	return rn
}

func (rn *renewal) tick() {
	rn.mu.Lock()
	if rn.stopped {
		rn.mu.Unlock()
		return
	}
	done := make(chan struct{})
	rn.inflight = done
	l := rn.lease
	rn.mu.Unlock()
	defer close(done)

	c := rn.c
	nl, err := c.store.Renew(rn.ctx, l, c.cfg.Lease)
	rn.mu.Lock()
	defer rn.mu.Unlock()
	switch {
	case rn.ctx.Err() != nil:
		return
	case errors.Is(err, dedupe.ErrFenced):
		c.log.ErrorContext(rn.ctx, "httpidem: the key's lease was taken over while the handler ran", "scope", l.Scope, "key", l.Key)
		rn.lost(ErrLeaseLost)
		return
	case err != nil:
		c.log.WarnContext(rn.ctx, "httpidem: renewing the key's lease failed", "scope", l.Scope, "key", l.Key, "err", err)
	default:
		rn.lease = nl
	}
	if !rn.stopped {
		rn.timer.Reset(c.cfg.Lease / 3)
	}
}

// stop ends the renewals and returns the lease as last renewed. A renewal
// under way is cancelled, then awaited: on SQLite it may be queued behind
// the handler's own transaction, which commits only after stop.
func (rn *renewal) stop() dedupe.Lease {
	rn.mu.Lock()
	rn.stopped = true
	rn.timer.Stop()
	done := rn.inflight
	rn.mu.Unlock()
	rn.cancel()
	if done != nil {
		<-done
	}
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.lease
}

// release gives the key up after a handler whose response is not stored,
// so that a retry runs the handler again. A failure is logged: the key is
// then free when its lease expires.
func (c *core) release(ctx context.Context, l dedupe.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := c.store.Release(ctx, l); err != nil {
		c.log.WarnContext(ctx, "httpidem: releasing the key failed; it is free when its lease expires", "scope", l.Scope, "key", l.Key, "err", err)
	}
}
