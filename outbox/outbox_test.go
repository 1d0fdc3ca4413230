package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

func enqueue[TTx any](t *testing.T, e *testdb.Engine[TTx], ob *outbox.Outbox[TTx], commit bool, msgs ...eos.Message) {
	t.Helper()
	enqueueOn(t, e, ob, "payments", commit, msgs...)
}

// enqueueOn enqueues msgs on topic in a transaction that commits if commit
// is set and rolls back otherwise.
func enqueueOn[TTx any](t *testing.T, e *testdb.Engine[TTx], ob *outbox.Outbox[TTx], topic string, commit bool, msgs ...eos.Message) {
	t.Helper()
	testdb.Enqueue(t, e, ob, topic, commit, msgs...)
}

// newOutbox and newRelay fail t on a constructor error.
func newOutbox[TTx any](t *testing.T, e *testdb.Engine[TTx], cfg outbox.Config) *outbox.Outbox[TTx] {
	t.Helper()
	ob, err := outbox.New(e.Driver, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

func newRelay[TTx any](t *testing.T, e *testdb.Engine[TTx], pub outbox.Publisher, cfg outbox.RelayConfig) *outbox.Relay[TTx] {
	t.Helper()
	r, err := outbox.NewRelay(e.Driver, pub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stats returns ob's stats, failing t on an error (whose zero Stats would
// pass for "nothing unsent").
func stats[TTx any](t *testing.T, ob *outbox.Outbox[TTx]) outbox.Stats {
	t.Helper()
	st, err := ob.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func msgs(prefix string, n int) []eos.Message {
	out := make([]eos.Message, n)
	for i := range out {
		out[i] = eos.Message{ID: fmt.Sprintf("%s-%03d", prefix, i), Key: "k" + strconv.Itoa(i%3), Payload: []byte(strconv.Itoa(i))}
	}
	return out
}

func TestEnqueueAndForward(t *testing.T) {
	engines.Each(t, testEnqueueAndForward, testEnqueueAndForward)
}

func testEnqueueAndForward[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := outboxtest.NewPublisher()
	r, err := outbox.NewRelay(e.Driver, b, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, e, ob, false, msgs("rolled-back", 3)...)
	if n, err := r.Forward(ctx); n != 0 || err != nil {
		t.Fatalf("forwarded %d (%v) after a rollback", n, err)
	}
	ms := msgs("m", 5)
	ms[1].Subject = "elsewhere" // Enqueue takes the topic, not Subject
	enqueue(t, e, ob, true, ms...)
	st, err := ob.Stats(ctx)
	if err != nil || st.Unsent != 5 || st.OldestUnsent.IsZero() {
		t.Fatalf("stats %+v %v", st, err)
	}
	if n, err := r.Forward(ctx); n != 5 || err != nil {
		t.Fatalf("forwarded %d, %v", n, err)
	}
	if got := strings.Join(b.IDs(), ","); got != "m-000,m-001,m-002,m-003,m-004" {
		t.Fatalf("published %s", got)
	}
	for _, m := range b.Published() {
		if m.Topic != "payments" || m.Subject != m.Topic {
			t.Errorf("%s published with topic %q and subject %q, want both the enqueued topic", m.ID, m.Topic, m.Subject)
		}
	}
	if st := stats(t, ob); st.Unsent != 0 {
		t.Fatalf("unsent after forward: %+v", st)
	}
	if n, err := r.Forward(ctx); n != 0 || err != nil {
		t.Fatalf("second forward: %d %v", n, err)
	}
	if b.Duplicates() != 0 {
		t.Fatalf("%d duplicate publishes", b.Duplicates())
	}
}

func TestPartialPublish(t *testing.T) { engines.Each(t, testPartialPublish, testPartialPublish) }

// The broker acks 2 of 5 and fails: those 2 are marked, the rest follow on
// the next pass, in order, none twice.
func testPartialPublish[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	ob := newOutbox(t, e, outbox.Config{})
	b := outboxtest.NewPublisher()
	b.FailNext(2, errors.New("broker: connection reset"))
	r := newRelay(t, e, b, outbox.RelayConfig{DeleteSent: true})
	enqueue(t, e, ob, true, msgs("m", 5)...)
	if n, err := r.Forward(ctx); n != 2 || err == nil {
		t.Fatalf("first pass: %d %v", n, err)
	}
	if n, err := r.Forward(ctx); n != 3 || err != nil {
		t.Fatalf("second pass: %d %v", n, err)
	}
	if got := strings.Join(b.IDs(), ","); got != "m-000,m-001,m-002,m-003,m-004" || b.Duplicates() != 0 {
		t.Fatalf("published %s with %d duplicates", got, b.Duplicates())
	}
	if n := e.Int(t, "SELECT count(*) FROM eos_outbox"); n != 0 {
		t.Fatalf("DeleteSent left %d rows", n)
	}
}

func TestCrashBeforeMark(t *testing.T) { engines.Each(t, testCrashBeforeMark, testCrashBeforeMark) }

// A crash after the broker's ack and before the mark: the next pass
// re-publishes the same ids, and the broker's dedupe drops them.
func testCrashBeforeMark[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	ob := newOutbox(t, e, outbox.Config{})
	b := outboxtest.NewPublisher()
	fp := &failpoint.Set{}
	fp.Arm(outbox.FailAfterPublishBeforeMark, failpoint.Times(1, failpoint.Error()))
	r := newRelay(t, e, b, outbox.RelayConfig{Test: eos.TestConfig{Failpoints: fp}})
	enqueue(t, e, ob, true, msgs("m", 4)...)
	if _, err := r.Forward(ctx); !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("crash: %v", err)
	}
	if st := stats(t, ob); st.Unsent != 4 {
		t.Fatalf("rows marked despite the crash: %+v", st)
	}
	if n, err := r.Forward(ctx); n != 4 || err != nil {
		t.Fatalf("after restart: %d %v", n, err)
	}
	if len(b.IDs()) != 4 || b.Duplicates() != 4 {
		t.Fatalf("broker has %d messages, %d duplicates dropped; want 4 and 4", len(b.IDs()), b.Duplicates())
	}
}

func TestRunWakesOnEnqueue(t *testing.T) { engines.Each(t, testRunWakes, testRunWakes) }

// With polling an hour apart, only the enqueue wakeup can deliver in time.
func testRunWakes[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ob := newOutbox(t, e, outbox.Config{})
	b := outboxtest.NewPublisher()
	r := newRelay(t, e, b, outbox.RelayConfig{PollInterval: time.Hour})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	// Run subscribes before its first pass; that pass may already see the
	// rows, or a wakeup delivers them.
	enqueue(t, e, ob, true, msgs("w", 3)...)
	if err := b.Wait(ctx, 3); err != nil {
		t.Fatal("relay did not wake on enqueue")
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestOrderAcrossRelays(t *testing.T) {
	engines.Each(t, testOrderAcrossRelays, testOrderAcrossRelays)
}

// Several relays at once over one database: every row published once, and
// per key in enqueue order.
func testOrderAcrossRelays[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	const keys, perKey, relays = 20, 50, 4
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ob := newOutbox(t, e, outbox.Config{})
	b := outboxtest.NewPublisher()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < relays; i++ {
		r, err := outbox.NewRelay(e.Driver, b, outbox.RelayConfig{BatchSize: 16, PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(runCtx) }()
	}
	// Producers: one per key group, each enqueueing its keys' messages in
	// order, a few per transaction, while the relays run.
	var pg sync.WaitGroup
	for g := 0; g < 4; g++ {
		pg.Add(1)
		go func(g int) {
			defer pg.Done()
			for n := 0; n < perKey; n++ {
				var batch []eos.Message
				for k := g; k < keys; k += 4 {
					batch = append(batch, eos.Message{ID: fmt.Sprintf("k%02d-%03d", k, n), Key: fmt.Sprintf("k%02d", k), Payload: []byte(strconv.Itoa(n))})
				}
				tx, err := e.Driver.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if err := ob.Enqueue(ctx, tx, "orders", batch...); err != nil {
					e.Driver.Rollback(ctx, tx)
					t.Error(err)
					return
				}
				if err := e.Driver.Commit(ctx, tx); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	pg.Wait()
	if err := b.Wait(ctx, keys*perKey); err != nil {
		t.Fatalf("only %d of %d published", len(b.IDs()), keys*perKey)
	}
	stop()
	wg.Wait()
	next := map[string]int{}
	for _, m := range b.Published() {
		n, err := strconv.Atoi(string(m.Payload))
		if err != nil || n != next[m.Key] {
			t.Fatalf("key %s: got message %d, want %d", m.Key, n, next[m.Key])
		}
		next[m.Key]++
	}
	if b.Duplicates() != 0 {
		t.Errorf("%d rows published twice without a crash", b.Duplicates())
	}
}

func TestBadInput(t *testing.T) {
	e := testdb.SQLite(t)
	ob := newOutbox(t, e, outbox.Config{Limits: eos.Limits{MaxPayload: 4}})
	ctx := context.Background()
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	for name, call := range map[string]func() error{
		"empty topic":  func() error { return ob.Enqueue(ctx, tx, "", eos.Message{}) },
		"topic space":  func() error { return ob.Enqueue(ctx, tx, "a b", eos.Message{}) },
		"wildcard":     func() error { return ob.Enqueue(ctx, tx, "orders.*", eos.Message{}) },
		"empty token":  func() error { return ob.Enqueue(ctx, tx, "orders..eu", eos.Message{}) },
		"big payload":  func() error { return ob.Enqueue(ctx, tx, "t", eos.Message{Payload: []byte("12345")}) },
		"bad header":   func() error { return ob.Enqueue(ctx, tx, "t", eos.Message{Headers: map[string]string{"a b": "x"}}) },
		"second of 2 ": func() error { return ob.Enqueue(ctx, tx, "t", eos.Message{}, eos.Message{ID: "\n"}) },
	} {
		var ve *eos.ValidationError
		if err := call(); !errors.As(err, &ve) || !errors.Is(err, eos.ErrInvalidMessage) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if n, err := e.QueryInt(ctx, tx, "SELECT count(*) FROM eos_outbox"); err != nil || n != 0 {
		t.Fatalf("invalid enqueues wrote %d rows (%v)", n, err)
	}
	if _, err := outbox.NewRelay(e.Driver, outboxtest.NewPublisher(), outbox.RelayConfig{BatchSize: -1}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Fatalf("bad relay config: %v", err)
	}
}

// Topics are published as they are, as NATS subjects for one: a topic that
// is not a literal name (an empty token, a wildcard) is refused by the
// broker every time, so Enqueue refuses it.
func TestTopicMustBeLiteral(t *testing.T) {
	for _, topic := range []string{"orders", "orders.eu", "a.b-c_d.e9", "payments.charge", strings.Repeat("a", outbox.MaxTopicLen)} {
		if err := outbox.CheckTopic(topic); err != nil {
			t.Errorf("CheckTopic(%q): %v", topic, err)
		}
	}
	for topic, reason := range map[string]string{
		"":     "empty",
		".":    "empty token at byte 0",
		".a":   "empty token at byte 0",
		"a.":   "empty token at byte 1",
		"a..b": "empty token at byte 1",
		"*":    "wildcard '*' at byte 0",
		">":    "wildcard '>' at byte 0",
		"a.*":  "wildcard '*' at byte 2",
		"a.>":  "wildcard '>' at byte 2",
		"a.b*": "wildcard '*' at byte 3",
		"a b":  "space or control character at byte 1",
		"a\tb": "space or control character at byte 1",
		strings.Repeat("a", outbox.MaxTopicLen+1): "longer than 255 bytes",
	} {
		err := outbox.CheckTopic(topic)
		var ve *eos.ValidationError
		if !errors.As(err, &ve) || ve.Field != eos.FieldTopic || ve.Reason != reason {
			t.Errorf("CheckTopic(%q) = %v, want a topic ValidationError %q", topic, err, reason)
		}
	}
}
