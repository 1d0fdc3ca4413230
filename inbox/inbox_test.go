package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const accounts, balance = 16, 1_000_000

func setup[TTx any](t *testing.T, e *testdb.Engine[TTx], cfg inbox.Config) (testdb.Payments[TTx], *inbox.Processor[TTx]) {
	return setupN(t, e, accounts, cfg)
}

func setupN[TTx any](t *testing.T, e *testdb.Engine[TTx], nAccounts int, cfg inbox.Config) (testdb.Payments[TTx], *inbox.Processor[TTx]) {
	return setupKind(t, e, nAccounts, cfg, perMessage)
}

// handlerKind is the kind of handler a processor is made with.
type handlerKind string

const (
	perMessage handlerKind = "handler"      // inbox.New
	batched    handlerKind = "batchhandler" // inbox.NewBatch
)

var handlerKinds = []handlerKind{perMessage, batched}

// setupKind is setupN with the payments workload applied by a handler of
// the given kind: with batched, a BatchHandler that applies its messages
// (one by one: the tests check the inbox, not set-based SQL) and rejects
// those whose amount is not a number.
func setupKind[TTx any](t *testing.T, e *testdb.Engine[TTx], nAccounts int, cfg inbox.Config, kind handlerKind) (testdb.Payments[TTx], *inbox.Processor[TTx]) {
	t.Helper()
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, nAccounts, balance)
	if cfg.Consumer == "" {
		cfg.Consumer = "payments"
	}
	if cfg.Test.Now == nil {
		cfg.Test.Now = newClock().Now
	}
	var p *inbox.Processor[TTx]
	var err error
	if kind == batched {
		p, err = inbox.NewBatch(e.Driver, paymentsBatch(pay), cfg)
	} else {
		p, err = inbox.New(e.Driver, pay.Handler, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pay, p
}

// paymentsBatch is the payments workload as a BatchHandler.
func paymentsBatch[TTx any](pay testdb.Payments[TTx]) inbox.BatchHandler[TTx] {
	return func(ctx context.Context, tx TTx, b *inbox.Batch) error {
		for i, m := range b.Messages {
			if _, err := strconv.ParseInt(string(m.Payload), 10, 64); err != nil {
				b.Reject(i, err)
				continue
			}
			if err := pay.Handler(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	}
}

func orders(n int, prefix string) ([]eos.Message, []string) {
	ms := make([]eos.Message, n)
	ids := make([]string, n)
	for i := range ms {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
		ms[i] = testdb.Message(ids[i], testdb.Account(i%accounts), int64(i+1))
	}
	return ms, ids
}

func TestConcurrentRedeliveries(t *testing.T) {
	engines.Each(t, testConcurrentRedeliveries, testConcurrentRedeliveries)
}

// Many goroutines deliver the same ids at once, in different orders and
// batch shapes, redelivering whatever was nacked: each id has one effect.
func testConcurrentRedeliveries[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	for _, iso := range []inbox.Isolation{inbox.IsolateAuto, inbox.IsolateRedo, inbox.IsolateSavepoint} {
		for _, kind := range handlerKinds {
			t.Run(iso.String()+"/"+string(kind), func(t *testing.T) {
				const n = 300
				// One account per message: the handlers of different messages
				// share no rows, so only the claim arbitrates between workers.
				pay, p := setupKind(t, freshEngine(t, e), n, inbox.Config{Isolation: iso, MaxAttempts: 1000}, kind)
				ms := make([]eos.Message, n)
				ids := make([]string, n)
				for i := range ms {
					ids[i] = fmt.Sprintf("c-%05d", i)
					ms[i] = testdb.Message(ids[i], testdb.Account(i), int64(i+1))
				}
				const workers = 8
				var wg sync.WaitGroup
				var applied atomic.Int64
				errs := make(chan error, workers)
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						var queue []eos.Message
						for i := range ms {
							queue = append(queue, ms[(i+w*37)%n])
						}
						batch := 7 + w*5
						failures := 0
						for len(queue) > 0 {
							chunk := queue[:min(batch, len(queue))]
							queue = queue[len(chunk):]
							ds := inboxtest.NewDeliveries(chunk...)
							res, err := p.Process(context.Background(), ds.Inbox())
							if err != nil { // e.g. a deadlock victim: redeliver, a bounded number of times
								if failures++; failures > 100 || !errors.Is(err, eos.ErrStore) {
									errs <- fmt.Errorf("worker %d: batch failed %d times in a row: %w", w, failures, err)
									return
								}
								queue = append(queue, chunk...)
								continue
							}
							failures = 0
							applied.Add(int64(res.Count(inbox.Applied)))
							for _, d := range ds {
								switch a, n := d.Acks(), d.Nacks(); {
								case a+n != 1:
									errs <- fmt.Errorf("delivery %s settled %d acks %d nacks", d.Message().ID, a, n)
									return
								case n == 1:
									queue = append(queue, d.Message())
								}
							}
						}
					}(w)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				if applied.Load() != n {
					t.Errorf("Applied reported %d times, want %d", applied.Load(), n)
				}
				pay.CheckExactlyOnce(t, ids, n, balance)
			})
		}
	}
}

// freshEngine returns e the first time and a new engine of the same kind
// after, so that subtests are isolated.
func freshEngine[TTx any](t *testing.T, e *testdb.Engine[TTx]) *testdb.Engine[TTx] {
	t.Helper()
	var x any = e
	switch e.Name {
	case "sqlite":
		x = testdb.SQLite(t)
	case "postgres":
		x = engines.Postgres(t)
	case "postgres-stdlib":
		x = engines.PostgresStdlib(t)
	}
	return x.(*testdb.Engine[TTx])
}

func TestCrashPoints(t *testing.T) { engines.Each(t, testCrashPoints, testCrashPoints) }

// A crash at each step, then a redelivery of the whole batch: one effect per
// message, nothing lost, nothing acked before the commit.
func testCrashPoints[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	for _, point := range []string{inbox.FailAfterClaim, inbox.FailAfterHandler, inbox.FailBeforeCommit, inbox.FailAfterCommitBeforeAck} {
		for _, iso := range []inbox.Isolation{inbox.IsolateAuto, inbox.IsolateRedo, inbox.IsolateSavepoint} {
			for _, kind := range handlerKinds {
				t.Run(point+"/"+iso.String()+"/"+string(kind), func(t *testing.T) {
					fp := &failpoint.Set{}
					fp.Arm(point, failpoint.Times(1, failpoint.Error()))
					pay, p := setupKind(t, freshEngine(t, e), accounts, inbox.Config{Test: eos.TestConfig{Failpoints: fp}, Isolation: iso}, kind)
					ms, ids := orders(50, "crash")
					ds := inboxtest.NewDeliveries(ms...)
					if _, err := p.Process(context.Background(), ds.Inbox()); !errors.Is(err, failpoint.ErrInjected) {
						t.Fatalf("first delivery: got %v, want the injected crash", err)
					}
					for _, d := range ds {
						if d.Acks()+d.Nacks() != 0 {
							t.Fatalf("%s settled before/without commit", d.Message().ID)
						}
					}
					committed := pay.E.Int(t, "SELECT count(*) FROM ledger")
					if want := map[bool]int64{true: 50, false: 0}[point == inbox.FailAfterCommitBeforeAck]; committed != want {
						t.Fatalf("after crash at %s: %d effects, want %d", point, committed, want)
					}
					// Redelivery, to a restarted processor.
					ds = inboxtest.NewDeliveries(ms...)
					res, err := p.Process(context.Background(), ds.Inbox())
					if err != nil {
						t.Fatal(err)
					}
					wantOutcome := inbox.Applied
					if point == inbox.FailAfterCommitBeforeAck {
						wantOutcome = inbox.Duplicate
					}
					if n := res.Count(wantOutcome); n != len(ms) {
						t.Fatalf("redelivery: %d %v, want %d", n, wantOutcome, len(ms))
					}
					for _, d := range ds {
						if d.Acks() != 1 {
							t.Fatalf("%s not acked after redelivery", d.Message().ID)
						}
					}
					pay.CheckExactlyOnce(t, ids, accounts, balance)
				})
			}
		}
	}
}

func TestDuplicatesAndConflicts(t *testing.T) {
	engines.Each(t, testDuplicatesAndConflicts, testDuplicatesAndConflicts)
}

func testDuplicatesAndConflicts[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay, p := setup(t, e, inbox.Config{})
	ctx := context.Background()
	a := testdb.Message("m-a", "a1", 10)
	b := testdb.Message("m-b", "a2", 20)
	conflict := testdb.Message("m-a", "a1", 999)     // same id, other payload
	ds := inboxtest.NewDeliveries(a, b, a, conflict) // duplicates inside one batch
	res, err := p.Process(ctx, ds.Inbox())
	if err != nil {
		t.Fatal(err)
	}
	got := []inbox.Outcome{res.Results[0].Outcome, res.Results[1].Outcome, res.Results[2].Outcome, res.Results[3].Outcome}
	if fmt.Sprint(got) != fmt.Sprint([]inbox.Outcome{inbox.Applied, inbox.Applied, inbox.Duplicate, inbox.Quarantined}) {
		t.Fatalf("outcomes %v", got)
	}
	for _, d := range ds {
		if d.Acks() != 1 {
			t.Fatalf("%s not acked", d.Message().ID)
		}
	}
	// Across batches.
	res, _ = inboxtest.Process(ctx, t, p, b, conflict)
	if res.Results[0].Outcome != inbox.Duplicate || res.Results[1].Outcome != inbox.Quarantined {
		t.Fatalf("second batch: %+v", res.Results)
	}
	q, err := p.Quarantine(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 || q[0].ID != "m-a" || string(q[0].Payload) != "999" || string(q[0].StoredFingerprint) != string(eos.Fingerprint(a)) {
		t.Fatalf("quarantine: %+v", q)
	}
	pay.CheckExactlyOnce(t, []string{"m-a", "m-b"}, accounts, balance)
}

func TestPoisonAndRequeue(t *testing.T) {
	engines.Each(t, testPoisonAndRequeue, testPoisonAndRequeue)
}

func testPoisonAndRequeue[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	for _, iso := range []inbox.Isolation{inbox.IsolateAuto, inbox.IsolateRedo, inbox.IsolateSavepoint} {
		t.Run(iso.String(), func(t *testing.T) {
			e := freshEngine(t, e)
			pay := testdb.Payments[TTx]{E: e}
			pay.Setup(t, accounts, balance)
			var broken atomic.Bool
			broken.Store(true)
			h := func(ctx context.Context, tx TTx, m eos.Message) error {
				if m.ID == "poison" && broken.Load() {
					// Write first, then fail: the write must not survive.
					if err := pay.Handler(ctx, tx, m); err != nil {
						return err
					}
					return errors.New("downstream rejected the order")
				}
				return pay.Handler(ctx, tx, m)
			}
			p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "c", MaxAttempts: 3, Isolation: iso})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var ids []string
			for attempt := 1; attempt <= 3; attempt++ {
				ms, batchIDs := orders(5, fmt.Sprintf("ok%d", attempt))
				ids = append(ids, batchIDs...)
				ms = append(ms[:2], append([]eos.Message{testdb.Message("poison", "a3", 5)}, ms[2:]...)...)
				res, ds := inboxtest.Process(ctx, t, p, ms...)
				want := inbox.Retry
				if attempt == 3 {
					want = inbox.DeadLettered
				}
				if r := res.Results[2]; r.Outcome != want || r.Attempts != attempt || r.Err == nil {
					t.Fatalf("attempt %d: poison %+v, want %v", attempt, r, want)
				}
				if res.Count(inbox.Applied) != 5 {
					t.Fatalf("attempt %d: the rest of the batch was not applied: %+v", attempt, res.Results)
				}
				if n, a := ds[2].Nacks(), ds[2].Acks(); (attempt < 3 && n != 1) || (attempt == 3 && a != 1) {
					t.Fatalf("attempt %d: poison settled with %d nacks %d acks", attempt, n, a)
				}
			}
			if n := pay.Effects(t, "poison"); n != 0 {
				t.Fatalf("failed handler left %d effects", n)
			}
			dl, err := p.DeadLetters(ctx, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(dl) != 1 || dl[0].ID != "poison" || dl[0].Attempts != 3 || !strings.Contains(dl[0].LastError, "downstream rejected") {
				t.Fatalf("dead letters: %+v", dl)
			}
			// A redelivery of a dead letter is suppressed.
			ds := inboxtest.NewDeliveries(testdb.Message("poison", "a3", 5))
			if res, err := p.Process(ctx, ds.Inbox()); err != nil || res.Results[0].Outcome != inbox.Duplicate {
				t.Fatalf("redelivered dead letter: %v %+v", err, res)
			}
			// Requeue while still broken: back to the dead letters, not lost.
			res, err := p.Requeue(ctx, "poison")
			if err != nil || res.Results[0].Outcome != inbox.DeadLettered {
				t.Fatalf("requeue while broken: %v %+v", err, res)
			}
			if dl, err := p.DeadLetters(ctx, "", 10); err != nil || len(dl) != 1 {
				t.Fatalf("requeue lost the dead letter: %v %+v", err, dl)
			}
			broken.Store(false)
			res, err = p.Requeue(ctx, "poison")
			if err != nil || res.Results[0].Outcome != inbox.Applied {
				t.Fatalf("requeue: %v %+v", err, res)
			}
			if dl, err := p.DeadLetters(ctx, "", 10); err != nil || len(dl) != 0 {
				t.Fatalf("dead letters after requeue: %v %+v", err, dl)
			}
			if _, err := p.Requeue(ctx, "poison"); !errors.Is(err, inbox.ErrNoDeadLetter) {
				t.Fatalf("second requeue: %v", err)
			}
			pay.CheckExactlyOnce(t, append(ids, "poison"), accounts, balance)
		})
	}
}

func TestBadInput(t *testing.T) { engines.Each(t, testBadInput, testBadInput) }

func testBadInput[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay, p := setup(t, e, inbox.Config{Limits: eos.Limits{MaxPayload: 8}})
	ctx := context.Background()
	good := testdb.Message("good", "a1", 1)
	notANumber := testdb.Message("not-a-number", "a1", 0)
	notANumber.Payload = []byte("x")
	ds := inboxtest.NewDeliveries(
		eos.Message{Payload: []byte("1")},         // no id
		testdb.Message("big", "a1", 123456789012), // payload over 8 bytes
		testdb.Message("bad\x00id", "a1", 1),      // control character
		notANumber,                                // handler refuses: permanent
		good,
	)
	p2, err := inbox.New(e.Driver, func(ctx context.Context, tx TTx, m eos.Message) error {
		if string(m.Payload) == "x" {
			return inbox.Permanent(errors.New("amount is not a number"))
		}
		return pay.Handler(ctx, tx, m)
	}, p.Config())
	if err != nil {
		t.Fatal(err)
	}
	res, err := p2.Process(ctx, ds.Inbox())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if r := res.Results[i]; r.Outcome != inbox.DeadLettered || r.Err == nil {
			t.Fatalf("bad message %d: %+v", i, r)
		}
		if ds[i].Acks() != 1 {
			t.Fatalf("bad message %d not acked after dead-lettering", i)
		}
	}
	if !errors.Is(res.Results[0].Err, eos.ErrInvalidMessage) || !errors.Is(res.Results[3].Err, inbox.ErrPermanent) {
		t.Fatalf("errors not typed: %v / %v", res.Results[0].Err, res.Results[3].Err)
	}
	var ve *eos.ValidationError
	if !errors.As(res.Results[1].Err, &ve) || ve.Field != eos.FieldPayload {
		t.Fatalf("payload error: %v", res.Results[1].Err)
	}
	if res.Results[4].Outcome != inbox.Applied {
		t.Fatalf("good message: %+v", res.Results[4])
	}
	dl, err := p2.DeadLetters(ctx, "", 10)
	if err != nil || len(dl) != 4 {
		t.Fatalf("dead letters: %v %+v", err, dl)
	}
	pay.CheckExactlyOnce(t, []string{"good"}, accounts, balance)

	// ProcessTx refuses bad input before touching the transaction.
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	if _, err := p.ProcessTx(ctx, tx, eos.Message{}, nil); !errors.Is(err, eos.ErrInvalidMessage) {
		t.Fatalf("ProcessTx on empty id: %v", err)
	}
}

func TestProcessTx(t *testing.T) { engines.Each(t, testProcessTx, testProcessTx) }

func testProcessTx[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay, p := setup(t, e, inbox.Config{})
	ctx := context.Background()
	run := func(m eos.Message, commit bool) inbox.Outcome {
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Driver.Rollback(ctx, tx)
		o, err := p.ProcessTx(ctx, tx, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := e.Driver.Commit(ctx, tx); err != nil {
				t.Fatal(err)
			}
		}
		return o
	}
	m := testdb.Message("tx-1", "a1", 7)
	if o := run(m, false); o != inbox.Applied {
		t.Fatalf("first: %v", o)
	}
	if o := run(m, true); o != inbox.Applied { // the rolled-back claim is gone
		t.Fatalf("after rollback: %v", o)
	}
	if o := run(m, true); o != inbox.Duplicate {
		t.Fatalf("again: %v", o)
	}
	if o := run(testdb.Message("tx-1", "a1", 8), true); o != inbox.Quarantined {
		t.Fatalf("conflict: %v", o)
	}
	pay.CheckExactlyOnce(t, []string{"tx-1"}, accounts, balance)
}

func TestRunEndToEnd(t *testing.T) { engines.Each(t, testRun, testRun) }

// Run over a channel source with redeliveries mixed in: every delivery is
// settled once, each message applied once.
func testRun[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay, p := setup(t, e, inbox.Config{MaxBatch: 64})
	ms, ids := orders(1000, "run")
	ch := make(chan inbox.Delivery, 2000)
	var ds inboxtest.Deliveries
	for i, m := range ms {
		d := inboxtest.NewDelivery(m)
		ds = append(ds, d)
		ch <- d
		if i%3 == 0 { // a redelivery
			d := inboxtest.NewDelivery(m)
			ds = append(ds, d)
			ch <- d
		}
	}
	close(ch)
	if err := p.Run(context.Background(), inbox.ChanSource(ch)); !errors.Is(err, inbox.ErrSourceClosed) {
		t.Fatalf("Run: %v", err)
	}
	for _, d := range ds {
		if d.Acks() != 1 {
			t.Fatalf("%s acked %d times", d.Message().ID, d.Acks())
		}
	}
	pay.CheckExactlyOnce(t, ids, accounts, balance)
}

func TestConfigErrors(t *testing.T) {
	e := testdb.SQLite(t)
	h := testdb.Payments[*sql.Tx]{E: e}.Handler
	for _, cfg := range []inbox.Config{
		{},
		{Consumer: strings.Repeat("c", 256)},
		{Consumer: "c", Hooks: []inbox.Hook{42}}, // implements no hook
		{Consumer: "c\x00"},
		{Consumer: "c\xff"},
		{Consumer: "c\n"},
		{Consumer: "c", MaxBatch: 9000},
		{Consumer: "c", MaxBatch: -1},
		{Consumer: "c", MaxWait: -time.Second},
		{Consumer: "c", Isolation: 7},
		{Consumer: "c", Isolation: -1},
		{Consumer: "c", Limits: eos.Limits{MaxPayload: -1}},
	} {
		_, err := inbox.New(e.Driver, h, cfg)
		var ce *eos.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("%+v: got %v", cfg, err)
		}
	}
}

type storeErrors struct{ ch chan error }

func (o storeErrors) OnBatchDone(context.Context, *inbox.BatchResult) {}
func (o storeErrors) OnError(_ context.Context, _, _ string, err error) {
	select {
	case o.ch <- err:
	default:
	}
}

// Nack delays are jittered: messages that failed the same number of times
// are not all redelivered at the same moment, and no delay passes its
// ceiling (RetryDelay doubling per attempt, up to MaxRetryDelay).
func TestNackDelaysJittered(t *testing.T) {
	e := testdb.SQLite(t)
	p, err := inbox.New(e.Driver, func(context.Context, *sql.Tx, eos.Message) error { return errors.New("busy") },
		inbox.Config{Consumer: "c", RetryDelay: time.Second, MaxRetryDelay: 3 * time.Second, MaxAttempts: 10})
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := orders(40, "jitter")
	for attempt := 1; attempt <= 3; attempt++ {
		ds := inboxtest.NewDeliveries(ms...)
		if _, err := p.Process(context.Background(), ds.Inbox()); err != nil {
			t.Fatal(err)
		}
		ceiling := min(time.Second<<(attempt-1), 3*time.Second)
		delays := map[time.Duration]bool{}
		for _, d := range ds {
			delay := d.NackDelay()
			if d.Nacks() != 1 || delay < 0 || delay > ceiling {
				t.Fatalf("attempt %d: %s nacked %d times with delay %v (ceiling %v)", attempt, d.Message().ID, d.Nacks(), delay, ceiling)
			}
			delays[delay] = true
		}
		if len(delays) < len(ms)/2 {
			t.Errorf("attempt %d: %d messages nacked with only %d distinct delays: retries in lockstep", attempt, len(ms), len(delays))
		}
	}
}

func TestStoreOutageStalls(t *testing.T) { engines.Each(t, testStoreOutage, testStoreOutage) }

// While the store is down Run acks nothing and reports every failure; when
// it is back the same batch is applied once and acked.
func testStoreOutage[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	store := &testdb.Flaky[TTx]{Driver: e.Driver}
	store.Down.Store(true)
	obs := storeErrors{ch: make(chan error, 1)}
	p, err := inbox.New(driver.Driver[TTx](store), pay.Handler, inbox.Config{Consumer: "c", Hooks: []inbox.Hook{obs},
		StoreBackoff: time.Millisecond, MaxStoreBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ms, ids := orders(20, "outage")
	src := inboxtest.NewSource()
	ds := src.Deliver(ms...)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, src) }()
	for i := 0; i < 3; i++ { // three failed tries, reported
		select {
		case err := <-obs.ch:
			if err == nil {
				t.Fatal("nil store error")
			}
		case <-ctx.Done():
			t.Fatal("no store error reported")
		}
	}
	for _, d := range ds {
		if d.Acks()+d.Nacks() != 0 {
			t.Fatalf("%s settled while the store was down", d.Message().ID)
		}
	}
	// The second failure came after the first made Run stall.
	if a := p.Activity(); a.Stalled != 1 || a.Stalls != 1 || a.InFlight < 1 || a.InFlight > len(ds) {
		t.Fatalf("activity while stalled: %+v, want Stalled 1, Stalls 1, InFlight 1..%d", a, len(ds))
	}
	store.Down.Store(false)
	for _, d := range ds {
		select {
		case <-d.Done():
		case <-ctx.Done():
			t.Fatalf("%s not settled after the store came back", d.Message().ID)
		}
		if d.Acks() != 1 {
			t.Fatalf("%s: %d acks", d.Message().ID, d.Acks())
		}
	}
	src.Close()
	if err := <-done; !errors.Is(err, inbox.ErrSourceClosed) {
		t.Fatalf("Run: %v", err)
	}
	if a := p.Activity(); a != (inbox.Activity{Stalls: 1}) {
		t.Fatalf("activity after Run: %+v, want only Stalls 1", a)
	}
	pay.CheckExactlyOnce(t, ids, accounts, balance)
}
