package inbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/ctxtime"
	"github.com/eoskit/eos/internal/storable"
)

// Handler applies one message inside tx. Its writes commit with the claim of
// the message or not at all. A returned error fails this message only; wrap
// it with [Permanent] when retrying cannot help. A statement error the
// handler ignores fails the message as well where the engine aborts the
// transaction on it (PostgreSQL): see [ErrHandlerTxAborted].
//
// A handler must not have effects outside tx (an HTTP call, an email): a
// batch may run a handler again after a rollback. Enqueue such effects in the
// outbox instead.
type Handler[TTx any] func(ctx context.Context, tx TTx, msg eos.Message) error

// DeadLetter is a message parked after failing; see [Processor.Requeue].
type DeadLetter = driver.DeadLetter

// QuarantinedMessage is a delivery whose id was claimed with another
// fingerprint.
type QuarantinedMessage = driver.Quarantined

// Processor is the exactly-once consumer. It is safe for concurrent use; each
// call of Run or Process works on its own batch.
type Processor[TTx any] struct {
	drv   driver.Driver[TTx]
	h     Handler[TTx]
	cfg   Config
	log   *slog.Logger
	hooks hooks
	// fast is the driver's one-round-trip claim, when it has one.
	fast driver.ClaimBeginner[TTx]
	// fastSkip counts batches left before the one-round-trip claim
	// (driver.ClaimBeginner) is tried again after it met a duplicate.
	fastSkip atomic.Int32
}

// fastSkipBatches is how many batches take the ordinary path after the
// fast path met a duplicate (which costs it a connection).
const fastSkipBatches = 64

// New returns a Processor that applies messages with h through drv.
func New[TTx any](drv driver.Driver[TTx], h Handler[TTx], cfg Config) (*Processor[TTx], error) {
	if drv == nil {
		return nil, &eos.ConfigError{Field: "inbox.New driver", Reason: "nil"}
	}
	if h == nil {
		return nil, &eos.ConfigError{Field: "inbox.New handler", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	hs, _ := newHooks("", cfg.Hooks) // checked by WithDefaults
	fast, _ := drv.(driver.ClaimBeginner[TTx])
	return &Processor[TTx]{drv: drv, h: h, cfg: cfg, log: cfg.Logger.With("consumer", cfg.Consumer), hooks: hs, fast: fast}, nil
}

// Config returns the processor's configuration with defaults applied.
func (p *Processor[TTx]) Config() Config { return p.cfg }

type item struct {
	d       Delivery // nil for a requeued dead letter
	msg     eos.Message
	fp      []byte
	leader  *item    // set when an earlier delivery in the batch has the same id
	invalid *arrival // validation failure: dead-lettered without running the handler
	requeue bool     // a dead letter being retried: one attempt, no nack

	// Per batch attempt; reset when the batch starts over.
	failErr  error // handler failure (without savepoints: recorded by the next round)
	attempts int
	outcome  Outcome
	err      error

	// Per round, for a requeue: the dead letter this round's transaction
	// took, and whether the item sits the round out (nothing taken, or
	// refused and put back).
	taken *driver.DeadLetter
	idle  bool
}

// arrival is what eos keeps of a delivery that failed validation, besides
// the storable copy of its message.
type arrival struct {
	err         error // the validation error, permanent
	originalID  string
	payloadSize int
}

func (p *Processor[TTx]) newItems(ds []Delivery) []*item {
	items := make([]*item, len(ds))
	byID := make(map[string]*item, len(ds))
	for i, d := range ds {
		it := &item{d: d, msg: d.Message()}
		if err := p.cfg.Limits.Validate(it.msg); err != nil {
			p.invalidItem(it, err)
		}
		it.fp = eos.Fingerprint(it.msg)
		if l := byID[it.msg.ID]; l != nil {
			it.leader = l
		} else {
			byID[it.msg.ID] = it
		}
		items[i] = it
	}
	return items
}

// invalidItem makes a delivery that failed validation a dead letter of its
// own: a storable copy of what arrived, bounded by the limits, under an id
// eos makes. With the transport's position the id is derived from it, so a
// redelivery of that message is suppressed as a duplicate; without one each
// delivery gets a new id (a redelivery makes a second record, never an
// apply). Either way two different messages never share a record.
func (p *Processor[TTx]) invalidItem(it *item, verr error) {
	m := it.msg
	id := "invalid-" + eos.NewIDAt(p.cfg.Test.Now())
	if ps, ok := it.d.(Positioner); ok {
		if pos := ps.Position(); pos != "" {
			sum := sha256.Sum256([]byte(pos))
			id = "invalid-" + hex.EncodeToString(sum[:16])
		}
	}
	it.invalid = &arrival{err: Permanent(verr), originalID: storable.Text(m.ID, eos.MaxIDLen), payloadSize: len(m.Payload)}
	it.msg = eos.Message{ID: id, Key: storable.Text(m.Key, eos.MaxKeyLen), Headers: storable.Headers(m.Headers),
		Payload: m.Payload[:min(len(m.Payload), p.cfg.Limits.PayloadLimit())], CreatedAt: m.CreatedAt}
}

// maxPosition bounds a stored transport position.
const maxPosition = 255

// position returns where d's transport holds it, storable, or "".
func position(d Delivery) string {
	if ps, ok := d.(Positioner); ok {
		return storable.Text(ps.Position(), maxPosition)
	}
	return ""
}

// Process runs one batch: one transaction (two or more after a handler
// failure), then acks and nacks. On error nothing was acknowledged; the batch
// may or may not have committed (the claim makes a retry safe).
func (p *Processor[TTx]) Process(ctx context.Context, ds []Delivery) (*BatchResult, error) {
	if len(ds) == 0 {
		return &BatchResult{Consumer: p.cfg.Consumer}, nil
	}
	return p.runBatch(ctx, p.newItems(ds))
}

// Run fetches batches from src and processes them until ctx ends or src
// fails. A store failure stalls the processor: it retries the same batch
// with backoff, logging each failure, and acknowledges nothing meanwhile.
func (p *Processor[TTx]) Run(ctx context.Context, src Source) error {
	for {
		ds, err := src.Fetch(ctx, p.cfg.MaxBatch, p.cfg.MaxWait)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if len(ds) == 0 {
			continue
		}
		if err := p.runStalling(ctx, p.newItems(ds)); err != nil {
			return err
		}
	}
}

func (p *Processor[TTx]) runStalling(ctx context.Context, items []*item) error {
	policy := p.cfg.storePolicy()
	for stalls := 0; ; stalls++ {
		_, err := p.runBatch(ctx, items)
		if err == nil {
			if stalls > 0 {
				p.log.LogAttrs(ctx, slog.LevelWarn, "eos inbox: store recovered, processing resumed", slog.Int("failed_tries", stalls))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := policy.Wait(stalls + 1)
		p.log.LogAttrs(ctx, slog.LevelError, "eos inbox: store failure, stalling (nothing acknowledged)",
			slog.Any("error", err), slog.Int("batch", len(items)), slog.Duration("retry_in", wait))
		if !ctxtime.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

func (p *Processor[TTx]) storeErr(ctx context.Context, op string, err error) error {
	p.hooks.onError(ctx, p.cfg.Consumer, op, err)
	return &eos.StoreError{Op: op, Err: err}
}

func (p *Processor[TTx]) runBatch(ctx context.Context, items []*item) (*BatchResult, error) {
	for _, it := range items {
		it.failErr, it.attempts, it.outcome, it.err = nil, 0, 0, nil
	}
	res := &BatchResult{Consumer: p.cfg.Consumer, Started: p.cfg.Test.Now()}
	isolate := false
	for {
		res.Rounds++
		savepoints := isolate || p.cfg.Isolation == IsolateSavepoint || (p.cfg.Isolation == IsolateAuto && res.Rounds > 1)
		committed, err := p.round(ctx, items, savepoints)
		if errors.Is(err, errIsolate) {
			isolate = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if committed {
			break
		}
	}
	res.CommittedAt = p.cfg.Test.Now()
	if err := p.cfg.Test.Failpoints.Eval(FailAfterCommitBeforeAck); err != nil {
		return nil, err
	}
	p.settle(ctx, items, res)
	p.hooks.onBatchDone(ctx, res)
	return res, nil
}

// errIsolate is round's answer when, without savepoints, a statement of
// the inbox failed after handlers ran, or a handler failed on an aborted
// transaction: a handler may have ignored a failed statement, which on
// PostgreSQL aborts the whole transaction. The batch is redone with a
// savepoint around each handler, which finds that handler
// (ErrHandlerTxAborted) instead of stalling on the batch as a store outage
// or blaming the handlers after it; a real outage fails that round too.
var errIsolate = errors.New("inbox: redo the batch with savepoints")

// txAborted reports whether err is PostgreSQL's "current transaction is
// aborted" (SQLSTATE 25P02): the statement ran after an earlier statement
// of the transaction failed, maybe one an earlier handler ignored.
func txAborted(err error) bool {
	var st interface{ SQLState() string }
	return errors.As(err, &st) && st.SQLState() == "25P02"
}

// round runs one transaction over items, with a savepoint around each
// handler if savepoints is set. Without savepoints, it returns
// committed=false, with the failed item marked, when a handler failed and the
// batch must be redone without it, and errIsolate when the inbox's own
// statements failed after a handler ran or a handler failed on an aborted
// transaction.
func (p *Processor[TTx]) round(ctx context.Context, items []*item, savepoints bool) (committed bool, err error) {
	now := p.cfg.Test.Now()
	// Leaders carry the batch; followers (same id later in the batch) take
	// their leader's fate.
	var requeued []string
	failed := false
	for _, it := range items {
		it.outcome = 0
		if it.leader == nil && it.requeue {
			requeued = append(requeued, it.msg.ID)
		}
		if it.leader == nil && it.failErr != nil {
			failed = true
		}
	}

	// The fast path begins and claims in one round trip when the driver can
	// and nothing has to be written before the claim.
	var tx TTx
	var fresh []bool
	var claimed []*item
	begun := false
	if cb := p.fast; cb != nil && len(requeued) == 0 && !failed && p.fastSkip.Load() <= 0 {
		claimed = p.leaders(items)
		claims, order := sortedClaims(claimed)
		tx, begun, err = cb.BeginClaim(ctx, p.cfg.Consumer, now, claims)
		if err != nil {
			return false, p.storeErr(ctx, "inbox.begin_claim", err)
		}
		if begun {
			fresh = make([]bool, len(claimed))
			for _, j := range order {
				fresh[j] = true
			}
		} else {
			// Declined: a duplicate (which cost the driver a connection) or
			// a batch it does not take this way. Use the ordinary path for
			// a while before trying again.
			p.fastSkip.Store(fastSkipBatches)
		}
	} else if p.fastSkip.Load() > 0 {
		p.fastSkip.Add(-1)
	}
	if !begun {
		if tx, err = p.drv.Begin(ctx); err != nil {
			return false, p.storeErr(ctx, "inbox.begin", err)
		}
	}
	defer func() {
		if !committed {
			p.drv.Rollback(context.WithoutCancel(ctx), tx)
		}
	}()
	ex := p.drv.Executor(tx)

	if len(requeued) > 0 {
		if err := p.takeRequeued(ctx, ex, items, requeued); err != nil {
			return false, err
		}
	}

	// Failures from earlier rounds (redone batches) are counted first: a
	// message that has used its attempts is dead-lettered (and claimed), the
	// others are left out of this round and nacked.
	for _, it := range items {
		if it.leader != nil || it.failErr == nil || it.idle {
			continue
		}
		if err := p.recordFailure(ctx, ex, it, now); err != nil {
			return false, err
		}
	}

	if !begun {
		claimed = p.leaders(items)
		if fresh, err = p.claim(ctx, ex, now, claimed); err != nil {
			return false, err
		}
	}
	if err := p.cfg.Test.Failpoints.Eval(FailAfterClaim); err != nil {
		return false, err
	}

	var seen []string
	for i, it := range claimed {
		if !fresh[i] {
			seen = append(seen, it.msg.ID)
		}
	}
	var quarantine []driver.Quarantined
	if len(seen) > 0 {
		stored, err := ex.InboxFingerprints(ctx, p.cfg.Consumer, seen)
		if err != nil {
			return false, p.storeErr(ctx, "inbox.fingerprints", err)
		}
		for i, it := range claimed {
			if fresh[i] {
				continue
			}
			if fp, ok := stored[it.msg.ID]; !ok || bytes.Equal(fp, it.fp) {
				it.outcome = Duplicate
			} else {
				it.outcome = Quarantined
				quarantine = append(quarantine, p.quarantined(it, fp, now))
			}
		}
	}

	var dead []driver.DeadLetter
	var unclaim []string
	handled := false // a handler ran outside a savepoint
	afterHandlers := func(op string, err error) error {
		if !handled {
			return p.storeErr(ctx, op, err)
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "eos inbox: a statement failed after the handlers ran (one may have ignored a failed statement); redoing the batch with savepoints",
			slog.String("op", op), slog.Any("error", err), slog.Int("batch", len(items)))
		return errIsolate
	}
	for i, it := range claimed {
		if !fresh[i] {
			continue
		}
		switch {
		case it.outcome == DeadLettered: // used its attempts in an earlier round
			dead = append(dead, p.deadLetter(it, now))
			continue
		case it.invalid != nil:
			it.outcome, it.err = DeadLettered, it.invalid.err
			dead = append(dead, p.deadLetter(it, now))
			continue
		}
		if !savepoints {
			handled = true
			if herr := p.callHandler(ctx, p.h, tx, it.msg); herr != nil {
				if txAborted(herr) { // perhaps not this handler's fault
					return false, afterHandlers("inbox.handler", herr)
				}
				it.failErr = herr
				return false, nil // deferred rollback; redo without it
			}
			it.outcome = Applied
			continue
		}
		if err := ex.SavepointCreate(ctx, "eos_handler"); err != nil {
			return false, p.storeErr(ctx, "inbox.savepoint", err)
		}
		herr := p.callHandler(ctx, p.h, tx, it.msg)
		if herr == nil {
			err := ex.SavepointRelease(ctx, "eos_handler")
			if err == nil {
				it.outcome = Applied
				continue
			}
			// The handler left its transaction failed. If rolling back
			// its savepoint works, the failure was the handler's; if not,
			// the store's.
			herr = fmt.Errorf("%w: %w", ErrHandlerTxAborted, err)
		}
		if err := ex.SavepointRollback(ctx, "eos_handler"); err != nil {
			return false, p.storeErr(ctx, "inbox.savepoint", err)
		}
		if err := ex.SavepointRelease(ctx, "eos_handler"); err != nil {
			return false, p.storeErr(ctx, "inbox.savepoint", err)
		}
		it.failErr = herr
		if err := p.recordFailure(ctx, ex, it, now); err != nil {
			return false, err
		}
		if it.outcome == DeadLettered {
			dead = append(dead, p.deadLetter(it, now))
		} else {
			unclaim = append(unclaim, it.msg.ID)
		}
	}
	if err := p.cfg.Test.Failpoints.Eval(FailAfterHandler); err != nil {
		return false, err
	}

	for _, it := range items {
		if l := it.leader; l != nil {
			switch {
			case l.outcome == Retry:
				it.outcome, it.err, it.attempts = Retry, l.err, l.attempts
			case !bytes.Equal(l.fp, it.fp):
				it.outcome = Quarantined
				quarantine = append(quarantine, p.quarantined(it, l.fp, now))
			default:
				it.outcome = Duplicate
			}
		}
	}
	if len(unclaim) > 0 {
		if err := ex.InboxUnclaim(ctx, p.cfg.Consumer, unclaim); err != nil {
			return false, p.storeErr(ctx, "inbox.unclaim", err)
		}
	}
	if len(quarantine) > 0 {
		if err := ex.QuarantineInsert(ctx, quarantine); err != nil {
			return false, afterHandlers("inbox.quarantine", err)
		}
	}
	if len(dead) > 0 {
		if err := ex.DeadLettersInsert(ctx, dead); err != nil {
			return false, afterHandlers("inbox.dead_letter", err)
		}
	}
	if err := p.cfg.Test.Failpoints.Eval(FailBeforeCommit); err != nil {
		return false, err
	}
	if err := p.drv.Commit(ctx, tx); err != nil {
		return false, afterHandlers("inbox.commit", err)
	}
	return true, nil
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
		it.msg = eos.Message{ID: dl.ID, Key: dl.Key, Payload: dl.Payload, Headers: dl.Headers, CreatedAt: dl.CreatedAt}
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

// claim claims items in one statement and reports, per item, whether the
// claim is new.
func (p *Processor[TTx]) claim(ctx context.Context, ex driver.Executor, now time.Time, items []*item) ([]bool, error) {
	claims, order := sortedClaims(items)
	sorted, err := ex.InboxClaim(ctx, p.cfg.Consumer, now, claims)
	if err != nil {
		return nil, p.storeErr(ctx, "inbox.claim", err)
	}
	fresh := make([]bool, len(items))
	for i, j := range order {
		fresh[j] = sorted[i]
	}
	return fresh, nil
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

func (p *Processor[TTx]) callHandler(ctx context.Context, h Handler[TTx], tx TTx, msg eos.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
		}
	}()
	return h(ctx, tx, msg)
}

func (p *Processor[TTx]) quarantined(it *item, stored []byte, now time.Time) driver.Quarantined {
	return driver.Quarantined{Consumer: p.cfg.Consumer, ID: it.msg.ID, StoredFingerprint: stored, Fingerprint: it.fp,
		Key: it.msg.Key, Payload: it.msg.Payload, Headers: it.msg.Headers, At: now}
}

func (p *Processor[TTx]) deadLetter(it *item, now time.Time) driver.DeadLetter {
	dl := driver.DeadLetter{Consumer: p.cfg.Consumer, ID: it.msg.ID, Key: it.msg.Key, Payload: it.msg.Payload,
		Headers: it.msg.Headers, Fingerprint: it.fp, CreatedAt: it.msg.CreatedAt, Attempts: it.attempts,
		LastError: storable.Text(it.err.Error(), storable.MaxErrorLen), At: now,
		Position: position(it.d), PayloadSize: len(it.msg.Payload)}
	if it.taken != nil {
		dl.Position = it.taken.Position
	}
	if a := it.invalid; a != nil {
		dl.Invalid, dl.OriginalID, dl.PayloadSize = true, a.originalID, a.payloadSize
	}
	return dl
}

// settle acks and nacks after the commit. The commit stands whatever the
// transport says; a refused ack means a redelivery the claim suppresses.
func (p *Processor[TTx]) settle(ctx context.Context, items []*item, res *BatchResult) {
	ctx = context.WithoutCancel(ctx)
	retry := p.cfg.retryPolicy()
	res.Results = make([]Result, 0, len(items))
	for _, it := range items {
		if it.idle && it.outcome == 0 {
			continue // a requeued id with no dead letter to take
		}
		res.Results = append(res.Results, Result{ID: it.msg.ID, Outcome: it.outcome, Attempts: it.attempts, Err: it.err, CreatedAt: it.msg.CreatedAt})
		if it.d == nil {
			continue
		}
		var err error
		if it.outcome == Retry {
			err = it.d.Nack(ctx, retry.Wait(it.attempts))
		} else {
			err = it.d.Ack(ctx)
		}
		if err != nil {
			res.SettleErrors++
			p.log.LogAttrs(ctx, slog.LevelWarn, "eos inbox: transport refused settlement after commit; the redelivery will be suppressed",
				slog.String("id", it.msg.ID), slog.String("outcome", it.outcome.String()), slog.Any("error", err))
		}
	}
}
