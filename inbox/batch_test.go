package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

func TestBatchHandler(t *testing.T) { engines.Each(t, testBatchHandler, testBatchHandler) }

// The batch handler sees only newly claimed messages, in delivery order,
// in one call per batch on the happy path; duplicates, conflicts and
// invalid deliveries never reach it; a rejected message is dead-lettered
// while the rest commit.
func testBatchHandler[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	var mu sync.Mutex
	var calls [][]string
	h := func(ctx context.Context, tx TTx, b *inbox.Batch) error {
		var ids []string
		for _, m := range b.Messages {
			ids = append(ids, m.ID)
		}
		mu.Lock()
		calls = append(calls, ids)
		mu.Unlock()
		return paymentsBatch(pay)(ctx, tx, b)
	}
	p, err := inbox.NewBatch(e.Driver, h, inbox.Config{Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := []eos.Message{testdb.Message("m1", "a1", 1), testdb.Message("m2", "a2", 2)}
	inboxtest.Process(ctx, t, p, first...)

	bad := testdb.Message("m4", "a1", 0)
	bad.Payload = []byte("not a number")
	res, ds := inboxtest.Process(ctx, t, p,
		testdb.Message("m3", "a3", 3),
		first[0],                          // duplicate
		testdb.Message("m2", "a2", 99),    // same id, other content: quarantined
		eos.Message{Payload: []byte("x")}, // invalid: no id
		bad,                               // rejected by the handler
		testdb.Message("m5", "a5", 5),
		testdb.Message("m3", "a3", 3), // follower of m3 in the same batch
	)
	want := []inbox.Outcome{inbox.Applied, inbox.Duplicate, inbox.Quarantined, inbox.DeadLettered, inbox.DeadLettered, inbox.Applied, inbox.Duplicate}
	if got := inboxtest.Outcomes(res); !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if !errors.Is(res.Results[4].Err, inbox.ErrPermanent) || res.Results[4].Attempts != 1 {
		t.Errorf("rejected message: %+v, want a permanent failure with one attempt", res.Results[4])
	}
	for i, d := range ds {
		if d.Acks() != 1 {
			t.Errorf("delivery %d: %d acks", i, d.Acks())
		}
	}
	mu.Lock()
	got := fmt.Sprint(calls)
	mu.Unlock()
	if want := "[[m1 m2] [m3 m4 m5]]"; got != want {
		t.Errorf("handler calls %s, want %s (new messages only, delivery order, one call per batch)", got, want)
	}
	dl, err := p.DeadLetters(ctx, "", 10)
	if err != nil || len(dl) != 2 {
		t.Fatalf("dead letters %v %+v, want the invalid and the rejected", err, dl)
	}
	pay.CheckExactlyOnce(t, []string{"m1", "m2", "m3", "m5"}, accounts, balance)
}

func TestBatchHandlerIsolatesFailure(t *testing.T) {
	engines.Each(t, testBatchIsolation, testBatchIsolation)
}

// A message that makes the batch handler fail does not block the others:
// the batch is bisected under savepoints until it is alone; the others are
// applied in the same transaction, the failing one is retried and, after
// MaxAttempts, dead-lettered. One effect per message throughout.
func testBatchIsolation[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	for _, iso := range []inbox.Isolation{inbox.IsolateAuto, inbox.IsolateRedo, inbox.IsolateSavepoint} {
		t.Run(iso.String(), func(t *testing.T) {
			e := freshEngine(t, e)
			pay := testdb.Payments[TTx]{E: e}
			pay.Setup(t, accounts, balance)
			var calls int
			var failedOn string // the messages of the last call, if it failed
			h := func(ctx context.Context, tx TTx, b *inbox.Batch) error {
				calls++
				ids := fmt.Sprint(messageIDs(b.Messages))
				if ids == failedOn {
					t.Errorf("the handler was called again on the %d messages it just failed on", len(b.Messages))
				}
				failedOn = ""
				// Write first, then fail: the writes must not survive.
				if err := paymentsBatch(pay)(ctx, tx, b); err != nil {
					return err
				}
				for _, m := range b.Messages {
					if m.ID == "poison" {
						failedOn = ids
						return errors.New("downstream refused the batch")
					}
				}
				return nil
			}
			p, err := inbox.NewBatch(e.Driver, h, inbox.Config{Consumer: "c", MaxAttempts: 3, Isolation: iso})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var ids []string
			for attempt := 1; attempt <= 3; attempt++ {
				ms, batchIDs := orders(31, "ok"+strconv.Itoa(attempt))
				ids = append(ids, batchIDs...)
				ms = slices.Insert(ms, 17, testdb.Message("poison", "a3", 5))
				calls, failedOn = 0, ""
				res, ds := inboxtest.Process(ctx, t, p, ms...)
				want := inbox.Retry
				if attempt == 3 {
					want = inbox.DeadLettered
				}
				if r := res.Results[17]; r.Outcome != want || r.Attempts != attempt {
					t.Fatalf("attempt %d: poison %+v, want %v", attempt, r, want)
				}
				if n := res.Count(inbox.Applied); n != 31 {
					t.Fatalf("attempt %d: %d of 31 healthy messages applied: %v", attempt, n, inboxtest.Outcomes(res))
				}
				if d := ds[17]; (want == inbox.Retry) != (d.Nacks() == 1) {
					t.Fatalf("attempt %d: poison settled with %d nacks, %d acks", attempt, d.Nacks(), d.Acks())
				}
				// Bisection: about 2·log2(32) calls, not one per message.
				if calls > 16 {
					t.Errorf("attempt %d: %d handler calls to isolate one failure in 32", attempt, calls)
				}
			}
			if n := pay.Effects(t, "poison"); n != 0 {
				t.Fatalf("the failed batch left %d effects of the poison", n)
			}
			pay.CheckExactlyOnce(t, ids, accounts, balance)
		})
	}
}

// A panic in the batch handler fails the messages it was called with, and
// is isolated like an error.
func TestBatchHandlerPanic(t *testing.T) {
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, accounts, balance)
	h := func(ctx context.Context, tx *sql.Tx, b *inbox.Batch) error {
		for _, m := range b.Messages {
			if m.ID == "boom" {
				panic("index out of range")
			}
		}
		return paymentsBatch(pay)(ctx, tx, b)
	}
	p, err := inbox.NewBatch(e.Driver, h, inbox.Config{Consumer: "c", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := inboxtest.Process(context.Background(), t, p,
		testdb.Message("a", "a1", 1), testdb.Message("boom", "a1", 1), testdb.Message("b", "a2", 1))
	if got := inboxtest.Outcomes(res); !slices.Equal(got, []inbox.Outcome{inbox.Applied, inbox.DeadLettered, inbox.Applied}) {
		t.Fatalf("outcomes %v", got)
	}
	if !errors.Is(res.Results[1].Err, inbox.ErrHandlerPanic) {
		t.Fatalf("panic recorded as %v", res.Results[1].Err)
	}
	pay.CheckExactlyOnce(t, []string{"a", "b"}, accounts, balance)
}

func TestBatchProcessTx(t *testing.T) { engines.Each(t, testBatchProcessTx, testBatchProcessTx) }

// ProcessTx on a batch processor runs the batch handler on the one message;
// a rejection comes back as a permanent error for the caller to roll back.
func testBatchProcessTx[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	p, err := inbox.NewBatch(e.Driver, paymentsBatch(pay), inbox.Config{Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run := func(m eos.Message) (inbox.Outcome, error) {
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Driver.Rollback(ctx, tx)
		o, err := p.ProcessTx(ctx, tx, m, nil)
		if err == nil {
			if err := e.Driver.Commit(ctx, tx); err != nil {
				t.Fatal(err)
			}
		}
		return o, err
	}
	m := testdb.Message("tx-1", "a1", 7)
	if o, err := run(m); err != nil || o != inbox.Applied {
		t.Fatalf("first: %v %v", o, err)
	}
	if o, err := run(m); err != nil || o != inbox.Duplicate {
		t.Fatalf("again: %v %v", o, err)
	}
	bad := testdb.Message("tx-2", "a1", 0)
	bad.Payload = []byte("?")
	if _, err := run(bad); !errors.Is(err, inbox.ErrPermanent) {
		t.Fatalf("rejected: %v, want ErrPermanent", err)
	}
	pay.CheckExactlyOnce(t, []string{"tx-1"}, accounts, balance)
}

// messageIDs returns the ids of ms.
func messageIDs(ms []eos.Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// With IsolateAuto, a batch handler that failed in the last batch starts
// the next one under a savepoint (one round, no call thrown away), until a
// batch passes without a failure.
func TestBatchHandlerFailingStartsUnderSavepoint(t *testing.T) {
	engines.Each(t, testBatchFailingSticky, testBatchFailingSticky)
}

func testBatchFailingSticky[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	h := func(ctx context.Context, tx TTx, b *inbox.Batch) error {
		if err := paymentsBatch(pay)(ctx, tx, b); err != nil {
			return err
		}
		for _, m := range b.Messages {
			if strings.HasPrefix(m.ID, "poison") {
				return errors.New("downstream refused the batch")
			}
		}
		return nil
	}
	p, err := inbox.NewBatch(e.Driver, h, inbox.Config{Consumer: "c", MaxAttempts: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, step := range []struct {
		poison bool
		rounds int
	}{
		{true, 2},  // no savepoint: the call fails, the batch is redone with them
		{true, 1},  // the last batch failed: savepoints from the start
		{false, 1}, // passes under a savepoint
		{true, 2},  // the last batch passed: no savepoint again
	} {
		ms, _ := orders(15, fmt.Sprintf("b%d-", i))
		if step.poison {
			ms = append(ms, testdb.Message(fmt.Sprintf("poison%d", i), "a1", 1))
		}
		res, _ := inboxtest.Process(ctx, t, p, ms...)
		if res.Rounds != step.rounds {
			t.Errorf("batch %d: %d rounds, want %d", i, res.Rounds, step.rounds)
		}
		if n := res.Count(inbox.Applied); n != 15 {
			t.Errorf("batch %d: %d of 15 healthy messages applied", i, n)
		}
	}
}

// BatchResult.Phases splits a batch's time: each phase took some, the
// handlers' phase holds at least the handlers' own time, and together they
// are no more than the call took.
func TestBatchPhases(t *testing.T) {
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, accounts, balance)
	var inHandlers time.Duration
	h := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		start := time.Now()
		defer func() { inHandlers += time.Since(start) }()
		if m.ID == "fails" {
			return errors.New("refused") // a second round: its phases count too
		}
		return pay.Handler(ctx, tx, m)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "c", MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := orders(20, "m")
	ms = append(ms, testdb.Message("fails", "a1", 1))
	start := time.Now()
	res, _ := inboxtest.Process(context.Background(), t, p, ms...)
	took := time.Since(start)
	ph := res.Phases
	if res.Rounds != 2 {
		t.Fatalf("%d rounds, want 2", res.Rounds)
	}
	if ph.Claim <= 0 || ph.Handle <= 0 || ph.Commit <= 0 {
		t.Errorf("phases %+v: each should have taken some time", ph)
	}
	if ph.Handle < inHandlers {
		t.Errorf("handle phase %v, shorter than the handlers' own %v", ph.Handle, inHandlers)
	}
	if sum := ph.Claim + ph.Handle + ph.Commit; sum > took {
		t.Errorf("phases sum to %v, more than the %v the batch took", sum, took)
	}

	// The timeline: each phase of each round in order, one after the
	// other, adding up to the phases.
	var want []string
	for round := 1; round <= 2; round++ {
		for _, p := range []inbox.Phase{inbox.PhaseClaim, inbox.PhaseHandle, inbox.PhaseCommit} {
			want = append(want, fmt.Sprintf("%d:%v", round, p))
		}
	}
	var got []string
	sums := map[inbox.Phase]time.Duration{}
	for i, pt := range res.Timeline {
		got = append(got, fmt.Sprintf("%d:%v", pt.Round, pt.Phase))
		sums[pt.Phase] += pt.End.Sub(pt.Start)
		if pt.Start.Before(start) || pt.End.Before(pt.Start) || (i > 0 && pt.Round == res.Timeline[i-1].Round && !pt.Start.Equal(res.Timeline[i-1].End)) {
			t.Errorf("timeline[%d] %v–%v: not after the batch's start %v and the phase before it", i, pt.Start, pt.End, start)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("timeline %v, want %v", got, want)
	}
	if sums[inbox.PhaseClaim] != ph.Claim || sums[inbox.PhaseHandle] != ph.Handle || sums[inbox.PhaseCommit] != ph.Commit {
		t.Errorf("timeline sums %v, phases %+v", sums, ph)
	}
}
