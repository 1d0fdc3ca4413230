package callonce

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/inbox"
)

// Call is the call a message asks for.
type Call struct {
	// Scope and Key name the call in the store; Key is also its
	// idempotency key (see Caller.Do).
	Scope, Key string
	// Fingerprint identifies the request (see Caller.Do).
	Fingerprint []byte
	Func        Func
}

// Plan returns the call message m asks for, or false when it asks for none
// (a message the handler will reject, for one: the handler, in the
// transaction, is where input is judged).
type Plan func(m eos.Message) (Call, bool)

// keptBatches is how many Prepares' results a Stage keeps per source: the
// inbox processes one batch while it fetches the next, and may redo the
// batch it processes; one more for margin.
const keptBatches = 3

// Stage runs the calls of an inbox's messages before the inbox's
// transaction, and keeps their results for its handler (Result). Use it as
// the inbox's Source (Source, once per runner), or call Prepare on
// deliveries before Processor.Process.
type Stage struct {
	c    *Caller
	plan Plan

	mu    sync.Mutex
	rings []*ring // rings[0]: Prepare's; then one per Source
}

// ring holds the results of the last keptBatches batches of one source, by
// message id.
type ring struct {
	batches [keptBatches]map[string]staged
	next    int
}

type staged struct {
	r   Result
	err error
}

// NewStage returns a Stage that makes plan's calls with c.
func NewStage(c *Caller, plan Plan) *Stage {
	return &Stage{c: c, plan: plan, rings: []*ring{{}}}
}

// Prepare makes the calls of ds's messages (up to Config.Concurrency at
// once) and keeps their results, then returns ds unchanged. A call that
// fails is kept as its error, for the handler to return: the inbox's retry
// policy applies to it.
func (s *Stage) Prepare(ctx context.Context, ds []inbox.Delivery) []inbox.Delivery {
	s.mu.Lock()
	r := s.rings[0]
	s.mu.Unlock()
	return s.prepare(ctx, r, ds)
}

func (s *Stage) prepare(ctx context.Context, into *ring, ds []inbox.Delivery) []inbox.Delivery {
	var ids []string
	var calls []Call
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		m := d.Message()
		call, ok := s.plan(m)
		if !ok || seen[m.ID] {
			continue // one call per id and batch: a redelivery in the same batch
		}
		seen[m.ID] = true
		ids = append(ids, m.ID)
		calls = append(calls, call)
	}
	out := make([]staged, len(calls))
	if bs, ok := s.c.store.(BatchStore); ok {
		s.c.doMany(ctx, bs, calls, out)
		for i, c := range calls {
			s.c.hooks.ended(ctx, c.Scope, c.Key, out[i].r, out[i].err)
		}
	} else {
		s.c.each(ctx, len(calls), func(i int) {
			c := calls[i]
			out[i].r, out[i].err = s.c.Do(ctx, c.Scope, c.Key, c.Fingerprint, c.Func)
		})
	}
	results := make(map[string]staged, len(calls))
	for i, id := range ids {
		results[id] = out[i]
	}
	s.mu.Lock()
	into.batches[into.next] = results
	into.next = (into.next + 1) % keptBatches
	s.mu.Unlock()
	return ds
}

// each runs f(0..n-1), up to Config.Concurrency at once, and waits for all.
func (c *Caller) each(ctx context.Context, n int, f func(i int)) {
	sem := make(chan struct{}, c.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// doMany is Do for each call, with the claims in one transaction of bs and
// the completions in another; the caller tells the EndHooks. Keys are
// claimed in order, so that two workers' batches lock them in one order.
func (c *Caller) doMany(ctx context.Context, bs BatchStore, calls []Call, out []staged) {
	order := make([]int, len(calls))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(calls[a].Scope, calls[b].Scope), cmp.Compare(calls[a].Key, calls[b].Key))
	})
	var keys []Key
	var idx []int
	for _, i := range order {
		if err := CheckKey(calls[i].Key); err != nil {
			out[i].err = err
			continue
		}
		keys = append(keys, Key{Scope: calls[i].Scope, Key: calls[i].Key, Fingerprint: calls[i].Fingerprint})
		idx = append(idx, i)
	}
	if len(keys) == 0 {
		return
	}
	claims, errs, err := bs.ClaimMany(ctx, keys, c.cfg.Lease)
	if err != nil {
		c.hooks.storeFailed(ctx, "callonce.claim_many", err)
		for _, i := range idx {
			out[i].err = fmt.Errorf("callonce: claim %s/%s: %w", calls[i].Scope, calls[i].Key, err)
		}
		return
	}
	var run []int // indexes into idx of the keys this batch holds
	for j, i := range idx {
		if errs[j] != nil { // refused by the store: no claim to answer
			out[i].err = errs[j]
			continue
		}
		if r, claimed, err := c.answer(ctx, calls[i].Scope, calls[i].Key, claims[j]); claimed {
			run = append(run, j)
		} else {
			out[i] = staged{r, err}
		}
	}
	// Every lease is renewed from now on, also while its call waits for
	// its turn.
	keepers := make([]*keeper, len(run))
	for n, j := range run {
		keepers[n] = c.keep(ctx, claims[j].Lease)
	}
	leases := make([]dedupe.Lease, len(run))
	c.each(ctx, len(run), func(n int) {
		i := idx[run[n]]
		out[i].r, leases[n], out[i].err = c.run(keepers[n], calls[i].Func)
	})
	var done []int // indexes into run of the definitive answers to record
	var dl []dedupe.Lease
	var results [][]byte
	for n, j := range run {
		if out[idx[j]].err == nil {
			done = append(done, n)
			dl = append(dl, leases[n])
			results = append(results, encode(out[idx[j]].r))
		}
	}
	if len(done) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	cerrs, err := bs.CompleteMany(cctx, dl, results)
	c.hooks.storeFailed(context.WithoutCancel(ctx), "callonce.complete_many", err)
	for k, n := range done {
		i := idx[run[n]]
		e := err
		if e == nil {
			e = cerrs[k]
		}
		if e = c.recorded(ctx, dl[k], e); e != nil {
			out[i] = staged{err: e}
		}
	}
}

// Result returns the result of m's call, made by Prepare: its definitive
// Result, or the error of Do (ErrNotStaged when m was not prepared, or its
// plan asked for no call). A handler calls it in the inbox's transaction
// and records the result there.
func (s *Stage) Result(m eos.Message) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rings {
		for i := 1; i <= keptBatches; i++ { // newest first
			if st, ok := r.batches[(r.next-i+keptBatches)%keptBatches][m.ID]; ok {
				return st.r, st.err
			}
		}
	}
	return Result{}, ErrNotStaged
}

// Source wraps src: each batch it fetches is prepared before it is handed
// to the inbox. Each source of an inbox (one per runner) needs its own
// wrapper. The wrapper's Close closes src if it has a Close method (a
// natsjs.Subscriber hands back the messages it pulled ahead).
func (s *Stage) Source(src inbox.Source) inbox.Source {
	r := &ring{}
	s.mu.Lock()
	s.rings = append(s.rings, r)
	s.mu.Unlock()
	return &stagedSource{s: s, r: r, src: src}
}

type stagedSource struct {
	s   *Stage
	r   *ring
	src inbox.Source
}

func (ss *stagedSource) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	ds, err := ss.src.Fetch(ctx, max, maxWait)
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	return ss.s.prepare(ctx, ss.r, ds), nil
}

// Close closes the wrapped source and forgets its results.
func (ss *stagedSource) Close() error {
	ss.s.mu.Lock()
	for i, r := range ss.s.rings {
		if r == ss.r {
			ss.s.rings = append(ss.s.rings[:i], ss.s.rings[i+1:]...)
			break
		}
	}
	ss.s.mu.Unlock()
	switch c := ss.src.(type) {
	case interface{ Close() error }:
		return c.Close()
	case interface{ Close() }:
		c.Close()
	}
	return nil
}
