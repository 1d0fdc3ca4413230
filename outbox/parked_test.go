package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
)

// windowBroker is a broker with a dedupe window that the test ends at will
// (expire), and a publisher in front of it that has every message of a call
// in flight at once but at most one per key, as an asynchronous publisher
// does: after a message fails, the later messages of other keys are still
// stored, those of its key are not. Messages on a topic in fail fail, with
// the error fail gives.
type windowBroker struct {
	mu     sync.Mutex
	fail   map[string]error
	also   bool            // report later acknowledgements (PublishError.AlsoAcked)
	seen   map[string]bool // ids within the dedupe window
	stored []string        // every message stored, duplicates dropped within the window
	handed map[string]int  // how often each id was handed to the broker
}

func newWindowBroker() *windowBroker {
	return &windowBroker{fail: map[string]error{}, seen: map[string]bool{}, handed: map[string]int{}}
}

// errNoStream is the broker's refusal of a topic nothing stores.
var errNoStream = fmt.Errorf("%w: no stream captures the subject", outbox.ErrUnpublishable)

func (b *windowBroker) Publish(_ context.Context, msgs []outbox.Envelope) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	failed := -1
	var failErr error
	var also []int
	heldKeys := map[string]bool{}
	for i, m := range msgs {
		b.handed[m.ID]++
		if err := b.fail[m.Topic]; err != nil || heldKeys[m.Key] && m.Key != "" {
			if failed < 0 {
				failed, failErr = i, err
			}
			heldKeys[m.Key] = true
			continue
		}
		if !b.seen[m.ID] {
			b.seen[m.ID] = true
			b.stored = append(b.stored, m.ID)
		}
		if failed >= 0 {
			also = append(also, i)
		}
	}
	switch {
	case failed < 0:
		return len(msgs), nil
	case b.also:
		return failed, &outbox.PublishError{Err: failErr, AlsoAcked: also}
	default:
		return failed, failErr
	}
}

// expire ends the dedupe window: what comes again is stored again.
func (b *windowBroker) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = map[string]bool{}
}

func (b *windowBroker) storedCount() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := map[string]int{}
	for _, id := range b.stored {
		n[id]++
	}
	return n
}

func (b *windowBroker) setFail(topic string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.fail, topic)
		return
	}
	b.fail[topic] = err
}

// forward runs one relay pass and fails t unless it forwarded want rows
// without an error.
func forward[TTx any](t *testing.T, r *outbox.Relay[TTx], want int) {
	t.Helper()
	if n, err := r.Forward(context.Background()); n != want || err != nil {
		t.Fatalf("forwarded %d (%v), want %d", n, err, want)
	}
}

func TestUnpublishableRowParked(t *testing.T) {
	for _, also := range []bool{false, true} {
		t.Run(fmt.Sprintf("also=%v", also), func(t *testing.T) {
			engines.Each(t,
				func(t *testing.T, e *testdb.Engine[*sql.Tx]) { testUnpublishableParked(t, e, also) },
				func(t *testing.T, e *testdb.Engine[pgx.Tx]) { testUnpublishableParked(t, e, also) })
		})
	}
}

// testUnpublishableParked: the first row goes where nothing stores it; five
// rows of other keys and a row of its key follow. The bad row is parked,
// the other keys flow and are stored once however often the relay passes
// (the broker's dedupe window ends between passes), the bad row's key waits
// behind it, and a requeue once the cause is fixed sends both in order.
func testUnpublishableParked[TTx any](t *testing.T, e *testdb.Engine[TTx], also bool) {
	ctx := context.Background()
	ob := newOutbox(t, e, outbox.Config{})
	b := newWindowBroker()
	b.also = also
	b.setFail("nowhere", errNoStream)
	r := newRelay(t, e, b, outbox.RelayConfig{})
	enqueueOn(t, e, ob, "nowhere", true, eos.Message{ID: "bad", Key: "A"})
	var healthy []eos.Message
	for _, k := range []string{"B", "C", "D", "E", "F"} {
		healthy = append(healthy, eos.Message{ID: "ok-" + k, Key: k})
	}
	enqueueOn(t, e, ob, "orders", true, healthy...)
	enqueueOn(t, e, ob, "orders", true, eos.Message{ID: "A-behind", Key: "A"})

	forward(t, r, 5)
	for range 2 { // two retries, each after the dedupe window
		b.expire()
		forward(t, r, 0)
	}
	stored := b.storedCount()
	for _, m := range healthy {
		if stored[m.ID] != 1 {
			t.Errorf("%s stored %d times, want once", m.ID, stored[m.ID])
		}
		if want := map[bool]int{false: 2, true: 1}[also]; b.handed[m.ID] != want {
			// Without AlsoAcked the relay cannot know they are stored: it
			// publishes them again at once, within the dedupe window.
			t.Errorf("%s handed to the broker %d times, want %d", m.ID, b.handed[m.ID], want)
		}
	}
	if stored["A-behind"] != 0 || stored["bad"] != 0 {
		t.Fatalf("stored %v", b.stored)
	}
	if st := stats(t, ob); st.Unsent != 2 || st.Parked != 1 || st.OldestParked.IsZero() {
		t.Fatalf("stats %+v, want 2 unsent of which 1 parked", st)
	}
	parked, err := ob.ParkedRows(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].ID != "bad" || parked[0].Key != "A" || parked[0].Topic != "nowhere" ||
		!strings.Contains(parked[0].Error, "no stream captures the subject") || parked[0].ParkedAt.IsZero() {
		t.Fatalf("parked rows: %+v", parked)
	}

	b.setFail("nowhere", nil) // the stream is created
	if n, err := ob.RequeueParked(ctx, parked[0].Seq); n != 1 || err != nil {
		t.Fatalf("requeue: %d %v", n, err)
	}
	forward(t, r, 2)
	if got := strings.Join(b.stored[len(b.stored)-2:], ","); got != "bad,A-behind" {
		t.Fatalf("after the requeue the broker stored %s, want bad,A-behind", got)
	}
	if st := stats(t, ob); st.Unsent != 0 || st.Parked != 0 || !st.OldestParked.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	if _, err := ob.RequeueParked(ctx, parked[0].Seq); !errors.Is(err, outbox.ErrNotParked) {
		t.Fatalf("requeue of a sent row: %v", err)
	}
}

func TestTransientFailureAlsoAcked(t *testing.T) {
	engines.Each(t, testTransientAlsoAcked, testTransientAlsoAcked)
}

// testTransientAlsoAcked: a transient failure is never parked: its row is
// retried. The rows of other keys the broker stored while it failed are
// marked sent at once (AlsoAcked) and not handed to the broker again, so a
// retry after the dedupe window stores nothing twice.
func testTransientAlsoAcked[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ob := newOutbox(t, e, outbox.Config{})
	b := newWindowBroker()
	b.also = true
	b.setFail("slow", errors.New("no ack within 10s"))
	r := newRelay(t, e, b, outbox.RelayConfig{})
	enqueueOn(t, e, ob, "orders", true, eos.Message{ID: "x0", Key: "X"})
	enqueueOn(t, e, ob, "slow", true, eos.Message{ID: "x1", Key: "X"})
	enqueueOn(t, e, ob, "orders", true, eos.Message{ID: "y0", Key: "Y"}, eos.Message{ID: "x2", Key: "X"}, eos.Message{ID: "z0", Key: "Z"})
	if n, err := r.Forward(context.Background()); n != 3 || err == nil || errors.Is(err, outbox.ErrUnpublishable) {
		t.Fatalf("first pass: %d %v, want 3 sent and a transient error", n, err)
	}
	b.expire()
	b.setFail("slow", nil)
	forward(t, r, 2)
	if got := strings.Join(b.stored, ","); got != "x0,y0,z0,x1,x2" {
		t.Fatalf("stored %s", got)
	}
	for id, n := range b.handed {
		if want := map[string]int{"x1": 2, "x2": 2}[id]; n != max(want, 1) {
			t.Errorf("%s handed to the broker %d times", id, n)
		}
	}
	if st := stats(t, ob); st.Unsent != 0 || st.Parked != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInvalidTopicRowParked(t *testing.T) {
	engines.Each(t, testInvalidTopicParked, testInvalidTopicParked)
}

// testInvalidTopicParked: a row whose topic Enqueue would refuse today
// (written by an older version, or around Enqueue) is parked without being
// handed to the broker; a row without a key blocks nothing. Discarding it
// lets its key flow.
func testInvalidTopicParked[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	ob := newOutbox(t, e, outbox.Config{})
	b := newWindowBroker()
	r := newRelay(t, e, b, outbox.RelayConfig{})
	now := time.Now()
	row := func(id, topic, key string) driver.OutboxRow {
		return driver.OutboxRow{ID: id, Topic: topic, Key: key, CreatedAt: now, EnqueuedAt: now}
	}
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	if err := e.Driver.Executor(tx).OutboxInsert(ctx, []driver.OutboxRow{
		row("wild", "orders.*", "A"), row("a1", "orders", "A"), row("nokey-bad", "a..b", ""), row("nokey", "orders", ""), row("b1", "orders", "B"),
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	forward(t, r, 2)
	if got := strings.Join(b.stored, ","); got != "nokey,b1" || b.handed["wild"] != 0 || b.handed["nokey-bad"] != 0 {
		t.Fatalf("stored %s, handed %v", got, b.handed)
	}
	parked, err := ob.ParkedRows(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 2 || parked[0].ID != "wild" || !strings.Contains(parked[0].Error, "wildcard") || parked[1].ID != "nokey-bad" {
		t.Fatalf("parked %+v", parked)
	}
	// Discard in a transaction that rolls back: nothing changes.
	tx, err = e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := ob.DiscardParkedTx(ctx, tx, parked[0].Seq); err != nil || len(gone) != 1 {
		t.Fatalf("discard in tx: %+v %v", gone, err)
	}
	if err := e.Driver.Rollback(ctx, tx); err != nil {
		t.Fatal(err)
	}
	forward(t, r, 0)
	gone, err := ob.DiscardParked(ctx, parked[0].Seq, parked[1].Seq)
	if err != nil || len(gone) != 2 || gone[0].ID != "wild" || gone[1].ID != "nokey-bad" {
		t.Fatalf("discard: %+v %v", gone, err)
	}
	if _, err := ob.DiscardParked(ctx, parked[0].Seq); !errors.Is(err, outbox.ErrNotParked) {
		t.Fatalf("second discard: %v", err)
	}
	forward(t, r, 1)
	if got := strings.Join(b.stored, ","); got != "nokey,b1,a1" {
		t.Fatalf("stored %s", got)
	}
}

func TestRunPassesParkedRows(t *testing.T) { engines.Each(t, testRunParked, testRunParked) }

// testRunParked: a pass that parks rows and sends none still claimed a full
// batch, so Run goes on at once instead of waiting for the next poll (an
// hour away here).
func testRunParked[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // failure bound only
	defer cancel()
	ob := newOutbox(t, e, outbox.Config{})
	b := newWindowBroker()
	b.setFail("nowhere", errNoStream)
	enqueueOn(t, e, ob, "nowhere", true, eos.Message{ID: "bad-1", Key: "A"}, eos.Message{ID: "bad-2", Key: "B"})
	enqueueOn(t, e, ob, "orders", true, eos.Message{ID: "a", Key: "A"}, eos.Message{ID: "c", Key: "C"})
	want := make(chan struct{})
	obs := &forwardedSignal{id: "c", ch: want}
	r := newRelay(t, e, b, outbox.RelayConfig{BatchSize: 2, PollInterval: time.Hour, Hooks: []outbox.Hook{obs}})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	select {
	case <-want:
	case <-ctx.Done():
		t.Fatal("Run waited for the poll after a pass that only parked rows")
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

// forwardedSignal closes ch when the row with id is forwarded.
type forwardedSignal struct {
	id   string
	ch   chan struct{}
	once sync.Once
}

func (f *forwardedSignal) OnForwarded(_ context.Context, rows []driver.OutboxRow, _ time.Time) {
	for _, r := range rows {
		if r.ID == f.id {
			f.once.Do(func() { close(f.ch) })
		}
	}
}

func (f *forwardedSignal) OnError(context.Context, string, error) {}

func TestPublisherContractViolation(t *testing.T) {
	e := testdb.SQLite(t)
	ob := newOutbox(t, e, outbox.Config{})
	enqueueOn(t, e, ob, "orders", true, msgs("m", 3)...)
	for _, pub := range []outbox.Publisher{
		publishFunc(func(msgs []outbox.Envelope) (int, error) { return len(msgs) + 1, nil }),
		publishFunc(func([]outbox.Envelope) (int, error) { return 1, nil }),
		publishFunc(func([]outbox.Envelope) (int, error) {
			return 1, &outbox.PublishError{Err: errNoStream, AlsoAcked: []int{1}}
		}),
		publishFunc(func([]outbox.Envelope) (int, error) {
			return 0, &outbox.PublishError{Err: errNoStream, AlsoAcked: []int{2, 1}}
		}),
	} {
		r := newRelay(t, e, pub, outbox.RelayConfig{})
		if n, err := r.Forward(context.Background()); err == nil || n > 1 {
			t.Errorf("forwarded %d (%v) on a broken report", n, err)
		}
	}
	if st := stats(t, ob); st.Parked != 0 {
		t.Fatalf("a broken report parked rows: %+v", st)
	}
}

type publishFunc func([]outbox.Envelope) (int, error)

func (f publishFunc) Publish(_ context.Context, msgs []outbox.Envelope) (int, error) { return f(msgs) }

func TestParkedErrorStorable(t *testing.T) {
	engines.Each(t, testParkedErrorStorable, testParkedErrorStorable)
}

// testParkedErrorStorable: a broker's error text can quote anything (a NUL,
// invalid UTF-8, a long body); PostgreSQL refuses the first two in text.
// The parked row keeps a storable, bounded copy, and the relay goes on.
func testParkedErrorStorable[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	ob := newOutbox(t, e, outbox.Config{})
	b := newWindowBroker()
	b.setFail("nowhere", fmt.Errorf("%w: body \x00\xff%s", outbox.ErrUnpublishable, strings.Repeat("é", 3000)))
	r := newRelay(t, e, b, outbox.RelayConfig{})
	enqueueOn(t, e, ob, "nowhere", true, eos.Message{ID: "bad", Key: "A"})
	enqueueOn(t, e, ob, "orders", true, eos.Message{ID: "ok", Key: "B"})
	forward(t, r, 1)
	parked, err := ob.ParkedRows(ctx, 0, 10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("parked %+v %v", parked, err)
	}
	msg := parked[0].Error
	if !utf8.ValidString(msg) || strings.ContainsRune(msg, 0) || len(msg) > outbox.MaxParkedErrorLen || len(msg) < outbox.MaxParkedErrorLen-8 ||
		!strings.HasPrefix(msg, "outbox: unpublishable message: body \uFFFD\uFFFDéé") {
		t.Fatalf("stored error (%d bytes) %.80q…", len(msg), msg)
	}
}
