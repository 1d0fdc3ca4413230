package callonce

import (
	"context"
	"sync"
	"time"

	"github.com/eoskit/eos"
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
	results := make(map[string]staged, len(ds))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.c.cfg.Concurrency)
	for _, d := range ds {
		m := d.Message()
		call, ok := s.plan(m)
		if !ok {
			continue
		}
		mu.Lock()
		_, dup := results[m.ID]
		if !dup {
			results[m.ID] = staged{err: ErrNotStaged}
		}
		mu.Unlock()
		if dup {
			continue // one call per id and batch: a redelivery in the same batch
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := s.c.Do(ctx, call.Scope, call.Key, call.Fingerprint, call.Func)
			mu.Lock()
			results[m.ID] = staged{r, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	into.batches[into.next] = results
	into.next = (into.next + 1) % keptBatches
	s.mu.Unlock()
	return ds
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
