package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// TestStatementsPerBatch counts what the inbox asks of its driver for one
// batch — Begin, Commit, Rollback, BeginClaim and every Executor call, each
// one statement (drivertest.RunStatements holds the drivers to that) — at
// batch sizes 1, 16, 256 and 1000, with either kind of handler: new
// messages, redeliveries, and a mix of duplicates, conflicts and invalid
// deliveries. Each is asked at most once per batch whatever its size, and
// batches of 256 and 1000 ask the same. The handlers' own statements are
// not counted.
func TestStatementsPerBatch(t *testing.T) {
	engines.Each(t, testStatementsPerBatch[*sql.Tx], testStatementsPerBatch[pgx.Tx])
}

// batchScenario makes, for a batch of n, the messages processed in an
// earlier batch and the batch itself, and says how many of the batch's
// messages end in each outcome.
type batchScenario struct {
	name  string
	batch func(n int) (earlier, batch []eos.Message, want map[inbox.Outcome]int)
}

var batchScenarios = []batchScenario{
	{"new", func(n int) ([]eos.Message, []eos.Message, map[inbox.Outcome]int) {
		return nil, payments(n, 1), map[inbox.Outcome]int{inbox.Applied: n}
	}},
	// Every other message was processed before.
	{"redelivered", func(n int) ([]eos.Message, []eos.Message, map[inbox.Outcome]int) {
		batch := payments(n, 1)
		var earlier []eos.Message
		for i := 0; i < n; i += 2 {
			earlier = append(earlier, batch[i])
		}
		return earlier, batch, map[inbox.Outcome]int{inbox.Duplicate: len(earlier), inbox.Applied: n - len(earlier)}
	}},
	// By fours: a duplicate, a conflict (the id processed before with
	// another amount), an invalid delivery, a new message.
	{"mixed", func(n int) ([]eos.Message, []eos.Message, map[inbox.Outcome]int) {
		batch := payments(n, 1)
		var earlier []eos.Message
		want := map[inbox.Outcome]int{}
		for i := range batch {
			switch i % 4 {
			case 0:
				earlier = append(earlier, batch[i])
				want[inbox.Duplicate]++
			case 1:
				before := batch[i]
				before.Payload = []byte("2")
				earlier = append(earlier, before)
				want[inbox.Quarantined]++
			case 2:
				batch[i].ID += "\x01"
				want[inbox.DeadLettered]++
			default:
				want[inbox.Applied]++
			}
		}
		return earlier, batch, want
	}},
}

func payments(n int, amount int64) []eos.Message {
	ms := make([]eos.Message, n)
	for i := range ms {
		ms[i] = testdb.Message(eos.NewID(), testdb.Account(i%accounts), amount)
	}
	return ms
}

func testStatementsPerBatch[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	counted, calls := countCalls(e.Driver)
	// newProcessor makes a processor of the kind named on drv.
	newProcessor := func(t *testing.T, kind string, drv driver.Driver[TTx], cfg inbox.Config) *inbox.Processor[TTx] {
		t.Helper()
		p, err := inbox.New(drv, pay.Handler, cfg)
		if kind == "batch" {
			p, err = inbox.NewBatch(drv, func(ctx context.Context, tx TTx, b *inbox.Batch) error {
				for _, m := range b.Messages {
					if err := pay.Handler(ctx, tx, m); err != nil {
						return err
					}
				}
				return nil
			}, cfg)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, kind := range []string{"message", "batch"} {
		for _, sc := range batchScenarios {
			t.Run(kind+"/"+sc.name, func(t *testing.T) {
				ctx := context.Background()
				per := map[int]map[string]int{}
				for _, n := range []int{1, 16, 256, 1000} {
					earlier, batch, want := sc.batch(n)
					cfg := inbox.Config{Consumer: fmt.Sprintf("%s-%s-%d", kind, sc.name, n), MaxBatch: 1000}
					if len(earlier) > 0 {
						inboxtest.Process(ctx, t, newProcessor(t, kind, e.Driver, cfg), earlier...)
					}
					p := newProcessor(t, kind, counted, cfg)
					calls.take()
					res, _ := inboxtest.Process(ctx, t, p, batch...)
					per[n] = calls.take()
					for o, c := range want {
						if res.Count(o) != c {
							t.Fatalf("batch of %d: %d %s, want %d", n, res.Count(o), o, c)
						}
					}
					t.Logf("batch of %4d: %v", n, per[n])
				}
				checkCalls(t, sc.name, per)
			})
		}
	}
}

// checkCalls checks the calls of batches of each size (per[n]): each at
// most once per batch, the same for 256 and 1000 messages, and for new
// messages begin, claim and commit only.
func checkCalls(t *testing.T, scenario string, per map[int]map[string]int) {
	t.Helper()
	for n, got := range per {
		for name, c := range got {
			if c > 1 {
				t.Errorf("batch of %d: %s called %d times, want once at most", n, name, c)
			}
		}
	}
	if !maps.Equal(per[256], per[1000]) {
		t.Errorf("batch of 256: %v; batch of 1000: %v", per[256], per[1000])
	}
	if scenario != "new" {
		return
	}
	// Begin, claim, commit; or the driver's one-round-trip BeginClaim and
	// commit. (PostgreSQL's BeginClaim declines a batch past its size
	// without a round trip.)
	for n, got := range per {
		switch names := fmt.Sprint(slices.Sorted(maps.Keys(got))); names {
		case "[Begin Commit InboxClaim]", "[BeginClaim Commit]", "[Begin BeginClaim Commit InboxClaim]":
		default:
			t.Errorf("batch of %d new messages: %v, want Begin, InboxClaim, Commit (or BeginClaim, Commit)", n, got)
		}
	}
}

// calls counts the calls of a driver wrapped by countCalls, by method name.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

// take returns the counts so far and starts over.
func (c *calls) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = nil
	return n
}

// countCalls wraps d so that its transactions and statements are counted:
// Begin, Commit, Rollback, BeginClaim (when d has it) and every Executor
// method.
func countCalls[TTx any](d driver.Driver[TTx]) (driver.Driver[TTx], *calls) {
	c := &calls{}
	cd := countingDriver[TTx]{Driver: d, c: c}
	if cb, ok := d.(driver.ClaimBeginner[TTx]); ok {
		return countingBeginner[TTx]{cd, cb}, c
	}
	return cd, c
}

type countingDriver[TTx any] struct {
	driver.Driver[TTx]
	c *calls
}

func (d countingDriver[TTx]) Begin(ctx context.Context) (TTx, error) {
	d.c.add("Begin")
	return d.Driver.Begin(ctx)
}

func (d countingDriver[TTx]) Commit(ctx context.Context, tx TTx) error {
	d.c.add("Commit")
	return d.Driver.Commit(ctx, tx)
}

func (d countingDriver[TTx]) Rollback(ctx context.Context, tx TTx) error {
	d.c.add("Rollback")
	return d.Driver.Rollback(ctx, tx)
}

func (d countingDriver[TTx]) Executor(tx TTx) driver.Executor {
	return countingExecutor{ex: d.Driver.Executor(tx), c: d.c}
}

type countingBeginner[TTx any] struct {
	countingDriver[TTx]
	cb driver.ClaimBeginner[TTx]
}

func (d countingBeginner[TTx]) BeginClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) (TTx, bool, error) {
	d.c.add("BeginClaim")
	return d.cb.BeginClaim(ctx, consumer, now, claims)
}

// countingExecutor implements every method of driver.Executor itself (it
// embeds none), so that a method added to the contract fails to compile
// here instead of going uncounted.
type countingExecutor struct {
	ex driver.Executor
	c  *calls
}

func (e countingExecutor) InboxClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) ([]bool, error) {
	e.c.add("InboxClaim")
	return e.ex.InboxClaim(ctx, consumer, now, claims)
}

func (e countingExecutor) InboxFingerprints(ctx context.Context, consumer string, ids []string) (map[string][]byte, error) {
	e.c.add("InboxFingerprints")
	return e.ex.InboxFingerprints(ctx, consumer, ids)
}

func (e countingExecutor) InboxClaimsList(ctx context.Context, consumer, afterID string, limit int) ([]driver.ClaimRecord, error) {
	e.c.add("InboxClaimsList")
	return e.ex.InboxClaimsList(ctx, consumer, afterID, limit)
}

func (e countingExecutor) InboxUnclaim(ctx context.Context, consumer string, ids []string) error {
	e.c.add("InboxUnclaim")
	return e.ex.InboxUnclaim(ctx, consumer, ids)
}

func (e countingExecutor) SavepointCreate(ctx context.Context, name string) error {
	e.c.add("SavepointCreate")
	return e.ex.SavepointCreate(ctx, name)
}

func (e countingExecutor) SavepointRollback(ctx context.Context, name string) error {
	e.c.add("SavepointRollback")
	return e.ex.SavepointRollback(ctx, name)
}

func (e countingExecutor) SavepointRelease(ctx context.Context, name string) error {
	e.c.add("SavepointRelease")
	return e.ex.SavepointRelease(ctx, name)
}

func (e countingExecutor) FailureRecord(ctx context.Context, consumer, id, errText string, now time.Time) (int, error) {
	e.c.add("FailureRecord")
	return e.ex.FailureRecord(ctx, consumer, id, errText, now)
}

func (e countingExecutor) FailuresClear(ctx context.Context, consumer string, ids []string) error {
	e.c.add("FailuresClear")
	return e.ex.FailuresClear(ctx, consumer, ids)
}

func (e countingExecutor) InboxStats(ctx context.Context, consumer string) (driver.InboxStats, error) {
	e.c.add("InboxStats")
	return e.ex.InboxStats(ctx, consumer)
}

func (e countingExecutor) QuarantineInsert(ctx context.Context, rows []driver.Quarantined) error {
	e.c.add("QuarantineInsert")
	return e.ex.QuarantineInsert(ctx, rows)
}

func (e countingExecutor) QuarantineList(ctx context.Context, consumer string, afterSeq int64, limit int) ([]driver.Quarantined, error) {
	e.c.add("QuarantineList")
	return e.ex.QuarantineList(ctx, consumer, afterSeq, limit)
}

func (e countingExecutor) DeadLettersInsert(ctx context.Context, rows []driver.DeadLetter) error {
	e.c.add("DeadLettersInsert")
	return e.ex.DeadLettersInsert(ctx, rows)
}

func (e countingExecutor) DeadLettersList(ctx context.Context, consumer, afterID string, limit int) ([]driver.DeadLetter, error) {
	e.c.add("DeadLettersList")
	return e.ex.DeadLettersList(ctx, consumer, afterID, limit)
}

func (e countingExecutor) DeadLettersTake(ctx context.Context, consumer string, ids []string) ([]driver.DeadLetter, error) {
	e.c.add("DeadLettersTake")
	return e.ex.DeadLettersTake(ctx, consumer, ids)
}

func (e countingExecutor) OutboxInsert(ctx context.Context, rows []driver.OutboxRow) error {
	e.c.add("OutboxInsert")
	return e.ex.OutboxInsert(ctx, rows)
}

func (e countingExecutor) OutboxStats(ctx context.Context) (int64, time.Time, error) {
	e.c.add("OutboxStats")
	return e.ex.OutboxStats(ctx)
}

func (e countingExecutor) OutboxUnsentList(ctx context.Context, afterSeq int64, limit int) ([]driver.OutboxRow, error) {
	e.c.add("OutboxUnsentList")
	return e.ex.OutboxUnsentList(ctx, afterSeq, limit)
}

func (e countingExecutor) OutboxParkedStats(ctx context.Context) (int64, time.Time, error) {
	e.c.add("OutboxParkedStats")
	return e.ex.OutboxParkedStats(ctx)
}

func (e countingExecutor) OutboxParkedList(ctx context.Context, afterSeq int64, limit int) ([]driver.ParkedOutboxRow, error) {
	e.c.add("OutboxParkedList")
	return e.ex.OutboxParkedList(ctx, afterSeq, limit)
}

func (e countingExecutor) OutboxParkedRequeue(ctx context.Context, seqs []int64) (int, error) {
	e.c.add("OutboxParkedRequeue")
	return e.ex.OutboxParkedRequeue(ctx, seqs)
}

func (e countingExecutor) OutboxParkedDelete(ctx context.Context, seqs []int64) ([]driver.ParkedOutboxRow, error) {
	e.c.add("OutboxParkedDelete")
	return e.ex.OutboxParkedDelete(ctx, seqs)
}

func (e countingExecutor) DedupeClaim(ctx context.Context, p driver.DedupeClaimParams) (driver.DedupeRecord, bool, error) {
	e.c.add("DedupeClaim")
	return e.ex.DedupeClaim(ctx, p)
}

func (e countingExecutor) DedupeComplete(ctx context.Context, p driver.DedupeCompleteParams) (bool, error) {
	e.c.add("DedupeComplete")
	return e.ex.DedupeComplete(ctx, p)
}

func (e countingExecutor) DedupeRelease(ctx context.Context, p driver.DedupeReleaseParams) (bool, error) {
	e.c.add("DedupeRelease")
	return e.ex.DedupeRelease(ctx, p)
}

func (e countingExecutor) DedupeRenew(ctx context.Context, p driver.DedupeRenewParams) (bool, error) {
	e.c.add("DedupeRenew")
	return e.ex.DedupeRenew(ctx, p)
}

func (e countingExecutor) Compact(ctx context.Context, what driver.Compactable, before time.Time, limit int) (int64, error) {
	e.c.add("Compact")
	return e.ex.Compact(ctx, what, before, limit)
}

func (e countingExecutor) OffsetsGet(ctx context.Context, consumer, topic string) (map[int32]int64, error) {
	e.c.add("OffsetsGet")
	return e.ex.OffsetsGet(ctx, consumer, topic)
}

func (e countingExecutor) OffsetsAdvance(ctx context.Context, consumer string, advances []driver.OffsetAdvance) error {
	e.c.add("OffsetsAdvance")
	return e.ex.OffsetsAdvance(ctx, consumer, advances)
}
