package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

func TestRelay(t *testing.T) {
	engines.Each(t, testRelay, testRelay)
}

// testRelay forwards rows of two topics through a real relay to the
// in-memory publisher: one publish fails and is retried, one row is
// unpublishable and parked.
func testRelay[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(topic string, ids ...string) {
		t.Helper()
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Driver.Rollback(ctx, tx)
		for _, id := range ids {
			if err := ob.Enqueue(ctx, tx, topic, eos.Message{ID: id, Key: id, Payload: []byte(id)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("orders", "o1", "o2", "o3")
	enqueue("refunds", "r1", "r2")
	pub := outboxtest.NewPublisher()
	r, err := outbox.NewRelay(e.Driver, pub, outbox.RelayConfig{Hooks: []outbox.Hook{m.RelayHook()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pub.FailNext(1, errors.New("broker: timeout"))
	if _, err := r.Forward(ctx); err == nil {
		t.Fatal("Forward with a failing publish returned no error")
	}
	pub.FailNext(0, fmt.Errorf("%w: no stream for the subject", outbox.ErrUnpublishable))
	for range 3 {
		if _, err := r.Forward(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(pub.IDs()); got != 4 {
		t.Fatalf("published %d rows, want 4 (5 less the parked one)", got)
	}
	expect := `
# HELP eos_relay_parked_total Outbox rows the relay parked as unpublishable; each blocks its key until requeued or discarded.
# TYPE eos_relay_parked_total counter
eos_relay_parked_total{topic="orders"} 1
# HELP eos_relay_publish_errors_total Publish calls of the relay that failed, by the topic of the row they failed on (empty when the publisher's report named no row); the rows are retried.
# TYPE eos_relay_publish_errors_total counter
eos_relay_publish_errors_total{topic="orders"} 1
# HELP eos_relay_published_total Outbox rows the relay published and marked sent.
# TYPE eos_relay_published_total counter
eos_relay_published_total{topic="orders"} 2
eos_relay_published_total{topic="refunds"} 2
# HELP eos_relay_store_errors_total Failures of the store on the relay's path (claim, mark sent).
# TYPE eos_relay_store_errors_total counter
eos_relay_store_errors_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect), "eos_relay_parked_total",
		"eos_relay_publish_errors_total", "eos_relay_published_total", "eos_relay_store_errors_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "eos_relay_delay_seconds"); n != 2 {
		t.Errorf("eos_relay_delay_seconds has %d series, want one a topic", n)
	}
}
