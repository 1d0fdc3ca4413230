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

// keptBatches is how many Prepares' results a Stage keeps: the inbox
// processes one batch while it fetches the next, and may redo the batch it
// processes; one more for margin.
const keptBatches = 3

// Stage runs the calls of an inbox's messages before the inbox's
// transaction, and keeps their results for its handler (Result). Use it as
// the inbox's Source (Source), or call Prepare on deliveries before
// Processor.Process.
type Stage struct {
	c    *Caller
	plan Plan

	mu      sync.Mutex
	batches [keptBatches]map[string]staged // ring of the last Prepares, by message id
	next    int
}

type staged struct {
	r   Result
	err error
}

// NewStage returns a Stage that makes plan's calls with c.
func NewStage(c *Caller, plan Plan) *Stage {
	return &Stage{c: c, plan: plan}
}

// Prepare makes the calls of ds's messages (up to Config.Concurrency at
// once) and keeps their results, then returns ds unchanged. A call that
// fails is kept as its error, for the handler to return: the inbox's retry
// policy applies to it.
func (s *Stage) Prepare(ctx context.Context, ds []inbox.Delivery) []inbox.Delivery {
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
	s.batches[s.next] = results
	s.next = (s.next + 1) % keptBatches
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
	for i := 1; i <= keptBatches; i++ { // newest first
		if st, ok := s.batches[(s.next-i+keptBatches)%keptBatches][m.ID]; ok {
			return st.r, st.err
		}
	}
	return Result{}, ErrNotStaged
}

// Source wraps src: each batch it fetches is prepared before it is handed
// to the inbox.
func (s *Stage) Source(src inbox.Source) inbox.Source { return stagedSource{s, src} }

type stagedSource struct {
	s   *Stage
	src inbox.Source
}

func (ss stagedSource) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	ds, err := ss.src.Fetch(ctx, max, maxWait)
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	return ss.s.Prepare(ctx, ds), nil
}
