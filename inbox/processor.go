package inbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	drv driver.Driver[TTx]
	// h or bh (NewBatch) applies the messages; the other is nil.
	h     Handler[TTx]
	bh    BatchHandler[TTx]
	cfg   Config
	log   *slog.Logger
	hooks hooks
	// fast is the driver's one-round-trip claim, when it has one.
	fast driver.ClaimBeginner[TTx]
	// fastSkip counts batches left before the one-round-trip claim
	// (driver.ClaimBeginner) is tried again after it met a duplicate.
	fastSkip atomic.Int32
	// batchFailing: the batch handler failed in the last batch committed
	// (IsolateAuto starts the next one under a savepoint).
	batchFailing atomic.Bool
	// activity: see Activity.
	inFlight atomic.Int64
	stalled  atomic.Int32
	stalls   atomic.Uint64
}

// fastSkipBatches is how many batches take the ordinary path after the
// fast path met a duplicate (which costs it a connection).
const fastSkipBatches = 64

// New returns a Processor that applies messages with h through drv.
func New[TTx any](drv driver.Driver[TTx], h Handler[TTx], cfg Config) (*Processor[TTx], error) {
	if h == nil {
		return nil, &eos.ConfigError{Field: "inbox.New handler", Reason: "nil"}
	}
	return newProcessor(drv, h, nil, cfg)
}

// newProcessor builds a Processor with exactly one of h and bh.
func newProcessor[TTx any](drv driver.Driver[TTx], h Handler[TTx], bh BatchHandler[TTx], cfg Config) (*Processor[TTx], error) {
	if drv == nil {
		return nil, &eos.ConfigError{Field: "inbox.New driver", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	hs, _ := newHooks("", cfg.Hooks) // checked by WithDefaults
	fast, _ := drv.(driver.ClaimBeginner[TTx])
	return &Processor[TTx]{drv: drv, h: h, bh: bh, cfg: cfg, log: cfg.Logger.With("consumer", cfg.Consumer), hooks: hs, fast: fast}, nil
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

// InvalidIDPrefix starts the ids eos makes for the records of deliveries
// that failed validation (see DeadLetter.Invalid): they are claimed like any
// id, but no producer sent them, which reconciliation needs to know.
const InvalidIDPrefix = "invalid-"

// invalidItem makes a delivery that failed validation a dead letter of its
// own: a storable copy of what arrived, bounded by the limits, under an id
// eos makes. With the transport's position the id is derived from it, so a
// redelivery of that message is suppressed as a duplicate; without one each
// delivery gets a new id (a redelivery makes a second record, never an
// apply). Either way two different messages never share a record.
func (p *Processor[TTx]) invalidItem(it *item, verr error) {
	m := it.msg
	id := InvalidIDPrefix + eos.NewIDAt(p.cfg.Test.Now())
	if ps, ok := it.d.(Positioner); ok {
		if pos := ps.Position(); pos != "" {
			sum := sha256.Sum256([]byte(pos))
			id = InvalidIDPrefix + hex.EncodeToString(sum[:16])
		}
	}
	it.invalid = &arrival{err: Permanent(verr), originalID: storable.Text(m.ID, eos.MaxIDLen), payloadSize: len(m.Payload)}
	it.msg = eos.Message{ID: id, Key: storable.Text(m.Key, eos.MaxKeyLen), Headers: storable.Headers(m.Headers),
		Payload: m.Payload[:min(len(m.Payload), p.cfg.Limits.PayloadLimit())], CreatedAt: m.CreatedAt, Subject: storable.Text(m.Subject, eos.MaxSubjectLen)}
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

// deliveryCount returns which delivery of its message d is, or 0 when its
// transport does not say (or d is nil: a requeued dead letter).
func deliveryCount(d Delivery) int {
	if dc, ok := d.(DeliveryCounter); ok {
		return max(0, dc.DeliveryCount())
	}
	return 0
}

// Process runs one batch: one transaction (two or more after a handler
// failure), then acks and nacks. On error nothing was acknowledged; the batch
// may or may not have committed (the claim makes a retry safe).
func (p *Processor[TTx]) Process(ctx context.Context, ds []Delivery) (*BatchResult, error) {
	if len(ds) == 0 {
		return &BatchResult{Consumer: p.cfg.Consumer}, nil
	}
	p.inFlight.Add(int64(len(ds)))
	defer p.inFlight.Add(-int64(len(ds)))
	return p.runBatch(ctx, p.newItems(ds))
}

// Run fetches batches from src and processes them until ctx ends or src
// fails. A store failure stalls the processor: it retries the same batch
// with backoff, logging each failure, and acknowledges nothing meanwhile.
//
// Unless Config.NoPrefetch is set, Run fetches the next batch while it
// processes the current one (one batch ahead, never two Fetches at once),
// so that the source's work per batch overlaps the store's. When Run
// returns on ctx, a batch fetched ahead is left unsettled, as is a batch in
// flight: the transport redelivers them, the claims suppress what was done.
func (p *Processor[TTx]) Run(ctx context.Context, src Source) error {
	if p.cfg.NoPrefetch {
		for {
			ds, err := p.fetch(ctx, src)
			if err != nil {
				return err
			}
			err = p.runStalling(ctx, p.newItems(ds))
			p.inFlight.Add(-int64(len(ds)))
			if err != nil {
				return err
			}
		}
	}
	type fetched struct {
		ds  []Delivery
		err error
	}
	ahead := make(chan fetched, 1) // buffered: a fetch never waits for Run
	fetchAhead := func() {
		ds, err := p.fetch(ctx, src)
		ahead <- fetched{ds, err}
	}
	go fetchAhead()
	for {
		f := <-ahead
		if f.err != nil {
			return f.err
		}
		go fetchAhead()
		err := p.runStalling(ctx, p.newItems(f.ds))
		p.inFlight.Add(-int64(len(f.ds)))
		if err != nil {
			// ctx ended: the fetch ahead ends with it; what it got is
			// no longer in flight here.
			go func() { p.inFlight.Add(-int64(len((<-ahead).ds))) }()
			return err
		}
	}
}

// fetch returns the next non-empty batch of src, or its error (ctx's when
// ctx ended).
func (p *Processor[TTx]) fetch(ctx context.Context, src Source) ([]Delivery, error) {
	for {
		ds, err := src.Fetch(ctx, p.cfg.MaxBatch, p.cfg.MaxWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if len(ds) > 0 {
			p.inFlight.Add(int64(len(ds)))
			return ds, nil
		}
	}
}

func (p *Processor[TTx]) runStalling(ctx context.Context, items []*item) error {
	policy := p.cfg.storePolicy()
	stalled := false
	defer func() {
		if stalled {
			p.stalled.Add(-1)
		}
	}()
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
		if !stalled {
			stalled = true
			p.stalled.Add(1)
			p.stalls.Add(1)
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
	run := &batchRun{timeline: make([]PhaseTime, 0, 3)} // three phases a round; more rounds are rare
	// A batch handler that failed in the last batch starts under a
	// savepoint: with failures in most batches, the first call without
	// one would only be thrown away.
	failing := p.bh != nil && p.cfg.Isolation == IsolateAuto && p.batchFailing.Load()
	for {
		res.Rounds++
		savepoints := isolate || failing || p.cfg.Isolation == IsolateSavepoint || (p.cfg.Isolation == IsolateAuto && res.Rounds > 1)
		committed, err := p.round(ctx, items, savepoints, run)
		if errors.Is(err, errIsolate) {
			isolate, run.batchFailed = true, errors.Is(err, errBatchFailed)
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
	res.Phases, res.Timeline = run.phases, run.timeline
	if p.bh != nil {
		p.batchFailing.Store(run.handlerFailed)
	}
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

// errBatchFailed is errIsolate when the batch handler's call on the whole
// batch failed.
var errBatchFailed = fmt.Errorf("%w: the batch handler failed", errIsolate)

// txAborted reports whether err is PostgreSQL's "current transaction is
// aborted" (SQLSTATE 25P02): the statement ran after an earlier statement
// of the transaction failed, maybe one an earlier handler ignored.
func txAborted(err error) bool {
	var st interface{ SQLState() string }
	return errors.As(err, &st) && st.SQLState() == "25P02"
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
		Key: it.msg.Key, Payload: it.msg.Payload, Headers: it.msg.Headers, Subject: it.msg.Subject, At: now}
}

func (p *Processor[TTx]) deadLetter(it *item, now time.Time) driver.DeadLetter {
	dl := driver.DeadLetter{Consumer: p.cfg.Consumer, ID: it.msg.ID, Key: it.msg.Key, Payload: it.msg.Payload,
		Headers: it.msg.Headers, Subject: it.msg.Subject, Fingerprint: it.fp, CreatedAt: it.msg.CreatedAt, Attempts: it.attempts,
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
		res.Results = append(res.Results, Result{ID: it.msg.ID, Outcome: it.outcome, Attempts: it.attempts, Err: it.err,
			CreatedAt: it.msg.CreatedAt, Subject: it.msg.Subject, Headers: it.msg.Headers, DeliveryCount: deliveryCount(it.d)})
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
