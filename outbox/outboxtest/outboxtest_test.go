package outboxtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

// fatalT records the failure instead of ending the test.
type fatalT struct {
	testing.TB
	failed string
}

func (f *fatalT) Helper() {}
func (f *fatalT) Fatalf(format string, args ...any) {
	if f.failed == "" {
		f.failed = fmt.Sprintf(format, args...)
	}
}

func TestRequireEnqueuedTx(t *testing.T) {
	engines.Each(t, testRequireEnqueuedTx, testRequireEnqueuedTx)
}

func testRequireEnqueuedTx[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A committed row waits unsent: it counts too.
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, "orders", eos.Message{ID: "o-0"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}

	tx, err = e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	outboxtest.RequireNotEnqueuedTx(ctx, t, e.Driver, tx, "payments")
	if err := ob.Enqueue(ctx, tx, "payments", eos.Message{ID: "p-1", Key: "a", Payload: []byte("1")}, eos.Message{ID: "p-2", Key: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, "orders", eos.Message{ID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	got := outboxtest.RequireEnqueuedTx(ctx, t, e.Driver, tx, "payments")
	if len(got) != 2 || got[0].ID != "p-1" || got[0].Key != "a" || string(got[0].Payload) != "1" || got[1].ID != "p-2" {
		t.Fatalf("enqueued on payments: %+v", got)
	}
	if got := outboxtest.RequireEnqueuedTx(ctx, t, e.Driver, tx, "orders"); len(got) != 2 || got[0].ID != "o-0" || got[1].ID != "o-1" {
		t.Fatalf("enqueued on orders: %+v", got)
	}

	// Each fails when it should, naming the topic.
	ft := &fatalT{TB: t}
	outboxtest.RequireEnqueuedTx(ctx, ft, e.Driver, tx, "refunds")
	if !strings.Contains(ft.failed, `no message enqueued on topic "refunds"`) {
		t.Errorf("RequireEnqueuedTx on an empty topic: %q", ft.failed)
	}
	ft = &fatalT{TB: t}
	outboxtest.RequireNotEnqueuedTx(ctx, ft, e.Driver, tx, "payments")
	if !strings.Contains(ft.failed, `2 message(s) enqueued on topic "payments"`) || !strings.Contains(ft.failed, `"p-1"`) {
		t.Errorf("RequireNotEnqueuedTx on a topic with messages: %q", ft.failed)
	}
}

// The relay forwards to the Publisher, which drops what it stored before,
// fails when told, and lets the relay retry.
func TestPublisher(t *testing.T) {
	ctx := context.Background()
	e := testdb.SQLite(t)
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pub := outboxtest.NewPublisher()
	relay, err := outbox.NewRelay(e.Driver, pub, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(ids ...string) {
		t.Helper()
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Driver.Rollback(ctx, tx)
		for _, id := range ids {
			if err := ob.Enqueue(ctx, tx, "t", eos.Message{ID: id, Key: "k"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("a", "b", "c")
	pub.FailNext(1, errors.New("connection reset"))
	if n, err := relay.Forward(ctx); n != 1 || err == nil {
		t.Fatalf("forward with a failure after one: %d %v", n, err)
	}
	if n, err := relay.Forward(ctx); n != 2 || err != nil {
		t.Fatalf("retry: %d %v", n, err)
	}
	enqueue("b") // a copy: the relay publishes it, the dedupe drops it
	if n, err := relay.Forward(ctx); n != 1 || err != nil {
		t.Fatalf("copy: %d %v", n, err)
	}
	if got := fmt.Sprint(pub.IDs()); got != "[a b c]" || pub.Duplicates() != 1 || pub.Handed("b") != 2 || pub.Handed("c") != 1 {
		t.Fatalf("stored %s, %d duplicates, b handed %d times, c %d", got, pub.Duplicates(), pub.Handed("b"), pub.Handed("c"))
	}
	pub.Down(errors.New("connection refused"))
	enqueue("d")
	if n, err := relay.Forward(ctx); n != 0 || err == nil {
		t.Fatalf("forward while down: %d %v", n, err)
	}
	pub.Down(nil)
	if n, err := relay.Forward(ctx); n != 1 || err != nil {
		t.Fatalf("forward after down: %d %v", n, err)
	}
	pub.ForgetDedupe()
	enqueue("a")
	if _, err := relay.Forward(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Wait(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if got := pub.Published(); len(got) != 5 || got[4].ID != "a" || got[4].Topic != "t" || got[4].Key != "k" {
		t.Fatalf("after the dedupe window: %+v", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := pub.Wait(cctx, 6); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait for more than was stored: %v", err)
	}
}
