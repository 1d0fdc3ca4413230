package inbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/storable"
)

// round is one transaction over a batch. Its phases run in order — begin,
// requeue, record earlier failures, claim, classify, apply, follow, record,
// commit — each a method below; runBatch runs rounds until one commits.
type round[TTx any] struct {
	p          *Processor[TTx]
	items      []*item
	savepoints bool // a savepoint around each handler
	run        *batchRun
	now        time.Time

	tx TTx
	ex driver.Executor
	// claimed are the leaders this round claims, fresh whether each claim
	// is new.
	claimed []*item
	fresh   []bool
	// What the record phase writes.
	quarantine []driver.Quarantined
	dead       []driver.DeadLetter
	unclaim    []string
	// handled: a handler ran outside a savepoint, so a failed statement
	// after it may be its doing (see errIsolate).
	handled bool
}

// batchRun is what the rounds of one batch share.
type batchRun struct {
	// batchFailed: the previous round's batch handler call failed, so
	// bisection need not call it again on the whole batch.
	batchFailed bool
	// handlerFailed is set when a call of the batch handler fails.
	handlerFailed bool
	phases        Phases
	round         int         // the current round, from 1
	timeline      []PhaseTime // each phase of each round so far
}

// round runs one transaction over items, with a savepoint around each
// handler if savepoints is set. Without savepoints, it returns
// committed=false, with the failed item marked, when a handler failed and the
// batch must be redone without it, and errIsolate when the inbox's own
// statements failed after a handler ran or a handler failed on an aborted
// transaction.
func (p *Processor[TTx]) round(ctx context.Context, items []*item, savepoints bool, run *batchRun) (committed bool, err error) {
	r := &round[TTx]{p: p, items: items, savepoints: savepoints, run: run, now: p.cfg.Test.Now()}
	// The time from start is the current phase's; a round that ends early
	// counts its rollback in the phase it ended in.
	run.round++
	start, phase, kind := time.Now(), &run.phases.Claim, PhaseClaim
	next := func(to *time.Duration, toKind Phase) {
		now := time.Now()
		*phase += now.Sub(start)
		run.timeline = append(run.timeline, PhaseTime{Phase: kind, Round: run.round, Start: start, End: now})
		start, phase, kind = now, to, toKind
	}
	defer func() { next(nil, 0) }()
	requeued, failed := r.reset()
	begun, err := r.begin(ctx, len(requeued) == 0 && !failed)
	if err != nil {
		return false, err
	}
	defer func() {
		if !committed {
			p.drv.Rollback(context.WithoutCancel(ctx), r.tx)
		}
	}()
	if len(requeued) > 0 {
		if err := p.takeRequeued(ctx, r.ex, items, requeued); err != nil {
			return false, err
		}
	}
	if err := r.recordEarlierFailures(ctx); err != nil {
		return false, err
	}
	if !begun {
		if err := r.claim(ctx); err != nil {
			return false, err
		}
	}
	if err := p.cfg.Test.Failpoints.Eval(FailAfterClaim); err != nil {
		return false, err
	}
	if err := r.classify(ctx); err != nil {
		return false, err
	}
	next(&run.phases.Handle, PhaseHandle)
	redo, err := r.apply(ctx)
	next(&run.phases.Commit, PhaseCommit)
	if redo || err != nil {
		return false, err
	}
	if err := p.cfg.Test.Failpoints.Eval(FailAfterHandler); err != nil {
		return false, err
	}
	r.follow()
	if err := r.record(ctx); err != nil {
		return false, err
	}
	if err := p.cfg.Test.Failpoints.Eval(FailBeforeCommit); err != nil {
		return false, err
	}
	if err := p.drv.Commit(ctx, r.tx); err != nil {
		return false, r.afterHandlers(ctx, "inbox.commit", err)
	}
	return true, nil
}

// reset clears the outcomes of an earlier round and reports the requeued
// ids and whether a leader failed in an earlier round. Leaders carry the
// batch; followers (same id later in the batch) take their leader's fate.
func (r *round[TTx]) reset() (requeued []string, failed bool) {
	for _, it := range r.items {
		it.outcome = 0
		if it.leader == nil && it.requeue {
			requeued = append(requeued, it.msg.ID)
		}
		if it.leader == nil && it.failErr != nil {
			failed = true
		}
	}
	return requeued, failed
}

// begin starts the transaction. When the driver has a one-round-trip claim
// and fast allows it (nothing has to be written before the claim), it
// begins and claims at once and reports begun.
func (r *round[TTx]) begin(ctx context.Context, fast bool) (begun bool, err error) {
	p := r.p
	switch {
	case p.fast != nil && fast && p.fastSkip.Load() <= 0:
		r.claimed = p.leaders(r.items)
		claims, order := sortedClaims(r.claimed)
		r.tx, begun, err = p.fast.BeginClaim(ctx, p.cfg.Consumer, r.now, claims)
		if err != nil {
			return false, p.storeErr(ctx, "inbox.begin_claim", err)
		}
		if begun {
			r.fresh = make([]bool, len(r.claimed))
			for _, j := range order {
				r.fresh[j] = true
			}
		} else {
			// Declined: a duplicate (which cost the driver a connection) or
			// a batch it does not take this way. Use the ordinary path for
			// a while before trying again.
			p.fastSkip.Store(fastSkipBatches)
		}
	case p.fastSkip.Load() > 0:
		p.fastSkip.Add(-1)
	}
	if !begun {
		if r.tx, err = p.drv.Begin(ctx); err != nil {
			return false, p.storeErr(ctx, "inbox.begin", err)
		}
	}
	r.ex = p.drv.Executor(r.tx)
	return begun, nil
}

// recordEarlierFailures counts the failures of earlier rounds (redone
// batches) first: a message that has used its attempts is dead-lettered
// (and claimed), the others are left out of this round and nacked.
func (r *round[TTx]) recordEarlierFailures(ctx context.Context) error {
	for _, it := range r.items {
		if it.leader != nil || it.failErr == nil || it.idle {
			continue
		}
		if err := r.p.recordFailure(ctx, r.ex, it, r.now); err != nil {
			return err
		}
	}
	return nil
}

// claim claims the leaders in one statement.
func (r *round[TTx]) claim(ctx context.Context) error {
	r.claimed = r.p.leaders(r.items)
	claims, order := sortedClaims(r.claimed)
	sorted, err := r.ex.InboxClaim(ctx, r.p.cfg.Consumer, r.now, claims)
	if err != nil {
		return r.p.storeErr(ctx, "inbox.claim", err)
	}
	r.fresh = make([]bool, len(r.claimed))
	for i, j := range order {
		r.fresh[j] = sorted[i]
	}
	return nil
}

// classify sorts the claims that were not new: the same fingerprint is a
// duplicate, another one a conflict to quarantine. It reads the stored
// fingerprints only when some claim was not new.
func (r *round[TTx]) classify(ctx context.Context) error {
	var seen []string
	for i, it := range r.claimed {
		if !r.fresh[i] {
			seen = append(seen, it.msg.ID)
		}
	}
	if len(seen) == 0 {
		return nil
	}
	stored, err := r.ex.InboxFingerprints(ctx, r.p.cfg.Consumer, seen)
	if err != nil {
		return r.p.storeErr(ctx, "inbox.fingerprints", err)
	}
	for i, it := range r.claimed {
		if r.fresh[i] {
			continue
		}
		if fp, ok := stored[it.msg.ID]; !ok || bytes.Equal(fp, it.fp) {
			it.outcome = Duplicate
		} else {
			it.outcome = Quarantined
			r.quarantine = append(r.quarantine, r.p.quarantined(it, fp, r.now))
		}
	}
	return nil
}

// apply runs the handler of each newly claimed message, in key order when
// Config.OrderByKey is set (or the batch handler once on all of them, see
// applyBatch), and dead-letters the invalid ones and those that used their
// attempts. Without savepoints a handler failure ends the round (redo, with
// the failure marked); with them the failed handler's work is rolled back
// alone and its failure recorded.
func (r *round[TTx]) apply(ctx context.Context) (redo bool, err error) {
	p := r.p
	var batch []*item // with a batch handler: the messages it applies
	for _, i := range r.applyOrder() {
		it := r.claimed[i]
		switch {
		case it.outcome == DeadLettered: // used its attempts in an earlier round
			r.dead = append(r.dead, p.deadLetter(it, r.now))
			continue
		case it.invalid != nil:
			it.outcome, it.err = DeadLettered, it.invalid.err
			r.dead = append(r.dead, p.deadLetter(it, r.now))
			continue
		case p.bh != nil:
			batch = append(batch, it)
			continue
		}
		if !r.savepoints {
			r.handled = true
			if herr := p.callHandler(ctx, p.h, r.tx, it.msg); herr != nil {
				if txAborted(herr) { // perhaps not this handler's fault
					return false, r.afterHandlers(ctx, "inbox.handler", herr)
				}
				it.failErr = herr
				return true, nil // deferred rollback; redo without it
			}
			it.outcome = Applied
			continue
		}
		if err := r.applyIsolated(ctx, it); err != nil {
			return false, err
		}
	}
	return false, r.applyBatch(ctx, batch)
}

// applyOrder returns the indexes of the newly claimed items in the order
// their handlers run: delivery order, or key order (stable) with
// Config.OrderByKey, so that concurrent batches take the rows of their
// keys in one order and wait for each other instead of deadlocking.
func (r *round[TTx]) applyOrder() []int {
	order := make([]int, 0, len(r.claimed))
	for i := range r.claimed {
		if r.fresh[i] {
			order = append(order, i)
		}
	}
	if r.p.cfg.OrderByKey {
		slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(r.claimed[a].msg.Key, r.claimed[b].msg.Key) })
	}
	return order
}

// applyIsolated runs it's handler inside a savepoint: a failure rolls back
// the handler's writes alone, is recorded, and leaves the message to be
// retried (its claim released) or dead-lettered.
func (r *round[TTx]) applyIsolated(ctx context.Context, it *item) error {
	p := r.p
	if err := r.ex.SavepointCreate(ctx, "eos_handler"); err != nil {
		return p.storeErr(ctx, "inbox.savepoint", err)
	}
	herr := p.callHandler(ctx, p.h, r.tx, it.msg)
	if herr == nil {
		err := r.ex.SavepointRelease(ctx, "eos_handler")
		if err == nil {
			it.outcome = Applied
			return nil
		}
		// The handler left its transaction failed. If rolling back its
		// savepoint works, the failure was the handler's; if not, the
		// store's.
		herr = fmt.Errorf("%w: %w", ErrHandlerTxAborted, err)
	}
	if err := r.ex.SavepointRollback(ctx, "eos_handler"); err != nil {
		return p.storeErr(ctx, "inbox.savepoint", err)
	}
	if err := r.ex.SavepointRelease(ctx, "eos_handler"); err != nil {
		return p.storeErr(ctx, "inbox.savepoint", err)
	}
	return r.fail(ctx, it, herr)
}

// follow gives each follower (a later delivery of a leader's id in the
// batch) its leader's fate: a retry with it, or a duplicate, or a conflict
// when its content differs.
func (r *round[TTx]) follow() {
	for _, it := range r.items {
		l := it.leader
		if l == nil {
			continue
		}
		switch {
		case l.outcome == Retry:
			it.outcome, it.err, it.attempts = Retry, l.err, l.attempts
		case !bytes.Equal(l.fp, it.fp):
			it.outcome = Quarantined
			r.quarantine = append(r.quarantine, r.p.quarantined(it, l.fp, r.now))
		default:
			it.outcome = Duplicate
		}
	}
}

// record writes what the round decided besides the handlers' work:
// released claims of messages to retry, quarantined deliveries, dead
// letters.
func (r *round[TTx]) record(ctx context.Context) error {
	p := r.p
	if len(r.unclaim) > 0 {
		if err := r.ex.InboxUnclaim(ctx, p.cfg.Consumer, r.unclaim); err != nil {
			return p.storeErr(ctx, "inbox.unclaim", err)
		}
	}
	if len(r.quarantine) > 0 {
		if err := r.ex.QuarantineInsert(ctx, r.quarantine); err != nil {
			return r.afterHandlers(ctx, "inbox.quarantine", err)
		}
	}
	if len(r.dead) > 0 {
		if err := r.ex.DeadLettersInsert(ctx, r.dead); err != nil {
			return r.afterHandlers(ctx, "inbox.dead_letter", err)
		}
	}
	return nil
}

// afterHandlers reports a failed statement of the inbox: a store error,
// or errIsolate when a handler ran outside a savepoint before it (it may
// have ignored a failed statement, which aborts the transaction on
// PostgreSQL).
func (r *round[TTx]) afterHandlers(ctx context.Context, op string, err error) error {
	if !r.handled {
		return r.p.storeErr(ctx, op, err)
	}
	r.p.log.LogAttrs(ctx, slog.LevelWarn, "eos inbox: a statement failed after the handlers ran (one may have ignored a failed statement); redoing the batch with savepoints",
		slog.String("op", op), slog.Any("error", err), slog.Int("batch", len(r.items)))
	return errIsolate
}

// takeRequeued takes the dead letters of the requeued items out of the
// table in this round's transaction, and releases their claims and attempt
// counters. Only what it took is retried: an id that another transaction
// took first, or that is no dead letter, sits the round out; a dead letter
// that cannot be retried (it failed validation) is put back as it was.
func (p *Processor[TTx]) takeRequeued(ctx context.Context, ex driver.Executor, items []*item, ids []string) error {
	rows, err := ex.DeadLettersTake(ctx, p.cfg.Consumer, ids)
	if err != nil {
		return p.storeErr(ctx, "inbox.requeue", err)
	}
	taken := make(map[string]*driver.DeadLetter, len(rows))
	for i := range rows {
		taken[rows[i].ID] = &rows[i]
	}
	var back []driver.DeadLetter
	var release []string
	for _, it := range items {
		if !it.requeue {
			continue
		}
		dl := taken[it.msg.ID]
		it.taken, it.idle = dl, dl == nil
		if dl == nil {
			continue
		}
		it.msg = eos.Message{ID: dl.ID, Key: dl.Key, Payload: dl.Payload, Headers: dl.Headers, CreatedAt: dl.CreatedAt, Subject: dl.Subject}
		it.fp = eos.Fingerprint(it.msg)
		if err := p.requeueable(dl, it.msg); err != nil {
			it.idle, it.outcome, it.err = true, DeadLettered, err
			back = append(back, *dl)
			continue
		}
		release = append(release, dl.ID)
	}
	if err := ex.DeadLettersInsert(ctx, back); err != nil {
		return p.storeErr(ctx, "inbox.requeue", err)
	}
	if len(release) == 0 {
		return nil
	}
	if err := ex.InboxUnclaim(ctx, p.cfg.Consumer, release); err != nil {
		return p.storeErr(ctx, "inbox.requeue", err)
	}
	if err := ex.FailuresClear(ctx, p.cfg.Consumer, release); err != nil {
		return p.storeErr(ctx, "inbox.requeue", err)
	}
	return nil
}

// requeueable reports why dead letter dl (message m) must not run again:
// it failed validation on arrival (what is stored is a bounded copy, not the
// message), or it fails the processor's limits now.
func (p *Processor[TTx]) requeueable(dl *driver.DeadLetter, m eos.Message) error {
	if dl.Invalid {
		return fmt.Errorf("%w: %s: %w: it failed validation on arrival and only a bounded copy is stored", ErrNotRequeueable, dl.ID, eos.ErrInvalidMessage)
	}
	if err := p.cfg.Limits.Validate(m); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotRequeueable, dl.ID, err)
	}
	return nil
}

// leaders returns the items this round claims: first deliveries of their id
// that are not waiting for a retry.
func (p *Processor[TTx]) leaders(items []*item) []*item {
	out := make([]*item, 0, len(items))
	for _, it := range items {
		if it.leader == nil && it.outcome != Retry && !it.idle {
			out = append(out, it)
		}
	}
	return out
}

// sortedClaims returns the claims of items sorted by id, so that concurrent
// batches lock ids in one order and cannot deadlock on each other, and for
// each sorted claim the index of its item.
func sortedClaims(items []*item) ([]driver.Claim, []int) {
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(items[a].msg.ID, items[b].msg.ID) })
	claims := make([]driver.Claim, len(items))
	for i, j := range order {
		claims[i] = driver.Claim{ID: items[j].msg.ID, Fingerprint: items[j].fp}
	}
	return claims, order
}

// recordFailure counts its failure and decides between Retry and
// DeadLettered.
func (p *Processor[TTx]) recordFailure(ctx context.Context, ex driver.Executor, it *item, now time.Time) error {
	n, err := ex.FailureRecord(ctx, p.cfg.Consumer, it.msg.ID, storable.Text(it.failErr.Error(), storable.MaxErrorLen), now)
	if err != nil {
		return p.storeErr(ctx, "inbox.record_failure", err)
	}
	it.attempts, it.err = n, it.failErr
	if it.requeue || n >= p.cfg.MaxAttempts || errors.Is(it.failErr, ErrPermanent) {
		it.outcome = DeadLettered
	} else {
		it.outcome = Retry
	}
	return nil
}
