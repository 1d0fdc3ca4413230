package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

var outboxNames = []string{"eos_outbox_unsent", "eos_outbox_oldest_unsent_seconds", "eos_outbox_parked",
	"eos_outbox_stats_errors_total"}

// outboxExpect is the exposition of one watched outbox named "orders".
func outboxExpect(unsent int, oldest float64, parked, errs int) string {
	return fmt.Sprintf(`
# HELP eos_outbox_oldest_unsent_seconds Age of the outbox's oldest unsent row (since its enqueue); 0 when none.
# TYPE eos_outbox_oldest_unsent_seconds gauge
eos_outbox_oldest_unsent_seconds{outbox="orders"} %g
# HELP eos_outbox_parked Outbox rows the relay parked as unpublishable, waiting to be requeued or discarded.
# TYPE eos_outbox_parked gauge
eos_outbox_parked{outbox="orders"} %d
# HELP eos_outbox_stats_errors_total Reads of the outbox's stats for a scrape that failed or timed out; the gauges were left out.
# TYPE eos_outbox_stats_errors_total counter
eos_outbox_stats_errors_total{outbox="orders"} %d
# HELP eos_outbox_unsent Outbox rows not sent yet, parked rows and the rows waiting behind them included.
# TYPE eos_outbox_unsent gauge
eos_outbox_unsent{outbox="orders"} %d
`, oldest, parked, errs, unsent)
}

// outboxErrorsOnly is the exposition of a watched outbox named "orders"
// whose read failed: the error counter, no gauge.
func outboxErrorsOnly(errs int) string {
	return fmt.Sprintf(`
# HELP eos_outbox_stats_errors_total Reads of the outbox's stats for a scrape that failed or timed out; the gauges were left out.
# TYPE eos_outbox_stats_errors_total counter
eos_outbox_stats_errors_total{outbox="orders"} %d
`, errs)
}

func TestWatchOutbox(t *testing.T) {
	engines.Each(t, testWatchOutbox, testWatchOutbox)
}

// testWatchOutbox watches a real outbox on a fixed clock: rows enqueued at
// two instants, one parked by the relay, then all sent or discarded.
func testWatchOutbox[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	obNow, mNow := t0, t0
	ob, err := outbox.New(e.Driver, outbox.Config{Test: eos.TestConfig{Now: func() time.Time { return obNow }}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{Test: eos.TestConfig{Now: func() time.Time { return mNow }}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox("orders", ob.Stats); err != nil {
		t.Fatal(err)
	}
	check := func(step string, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), outboxNames...); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	check("empty outbox", outboxExpect(0, 0, 0, 0))

	enqueue := func(ids ...string) {
		t.Helper()
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Driver.Rollback(ctx, tx)
		for _, id := range ids {
			if err := ob.Enqueue(ctx, tx, "orders", eos.Message{ID: id, Key: id, Payload: []byte(id)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("o1", "o2")
	obNow = t0.Add(30 * time.Second)
	enqueue("o3")
	mNow = t0.Add(90 * time.Second)
	check("three enqueued", outboxExpect(3, 90, 0, 0))

	pub := outboxtest.NewPublisher()
	r, err := outbox.NewRelay(e.Driver, pub, outbox.RelayConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pub.FailNext(0, fmt.Errorf("%w: no stream for the subject", outbox.ErrUnpublishable))
	if _, err := r.Forward(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(pub.IDs()); got != 2 {
		t.Fatalf("published %d rows, want 2 (3 less the parked one)", got)
	}
	// The parked row, o1, is the oldest unsent one.
	check("o1 parked", outboxExpect(1, 90, 1, 0))

	parked, err := ob.ParkedRows(ctx, 0, 10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("ParkedRows: %v, %v; want one row", parked, err)
	}
	if _, err := ob.RequeueParked(ctx, parked[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Forward(ctx); err != nil {
		t.Fatal(err)
	}
	check("all sent", outboxExpect(0, 0, 0, 0))
}

// TestWatchOutboxReadFails: a failed or timed-out read counts an error and
// shows no gauge, then a good read shows them again.
func TestWatchOutboxReadFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{OutboxStatsTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var fail error
	err = m.WatchOutbox("orders", func(ctx context.Context) (outbox.Stats, error) {
		if _, ok := ctx.Deadline(); !ok {
			return outbox.Stats{}, errors.New("read without a deadline")
		}
		if fail == context.DeadlineExceeded {
			<-ctx.Done() // a store that does not answer in time
			return outbox.Stats{}, ctx.Err()
		}
		return outbox.Stats{Unsent: 2, Parked: 1}, fail
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		fail error
		want string
	}{
		{nil, outboxExpect(2, 0, 1, 0)},
		{errors.New("store: connection refused"), outboxErrorsOnly(1)},
		{context.DeadlineExceeded, outboxErrorsOnly(2)},
		{nil, outboxExpect(2, 0, 1, 2)},
	} {
		fail = step.fail
		if err := testutil.GatherAndCompare(reg, strings.NewReader(step.want), outboxNames...); err != nil {
			t.Errorf("scrape %d (fail %v): %v", i, step.fail, err)
		}
	}
}

// TestWatchOutboxRefuses: a bad argument is a config error, the same name
// twice a register error, and two outboxes of different names coexist.
func TestWatchOutboxRefuses(t *testing.T) {
	m, reg := newMetrics(t)
	stats := func(context.Context) (outbox.Stats, error) { return outbox.Stats{Unsent: 1}, nil }
	if err := m.WatchOutbox("", stats); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("empty name: %v, want a config error", err)
	}
	if err := m.WatchOutbox("orders", nil); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("nil stats: %v, want a config error", err)
	}
	if err := m.WatchOutbox("orders", stats); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox("orders", stats); !errors.Is(err, metrics.ErrRegister) {
		t.Errorf("same name twice: %v, want ErrRegister", err)
	}
	if err := m.WatchOutbox("refunds", stats); err != nil {
		t.Errorf("second outbox: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "eos_outbox_unsent"); err != nil || n != 2 {
		t.Errorf("eos_outbox_unsent series: %d, %v; want 2", n, err)
	}
	if _, err := metrics.New(prometheus.NewRegistry(), metrics.Config{OutboxStatsTimeout: -time.Second}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("negative OutboxStatsTimeout: %v, want a config error", err)
	}
}

func TestOutboxStatsTimeoutDefault(t *testing.T) {
	c, err := metrics.Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.OutboxStatsTimeout != metrics.DefaultOutboxStatsTimeout || c.Test.Now == nil {
		t.Errorf("defaults not applied: timeout %v, clock set %t", c.OutboxStatsTimeout, c.Test.Now != nil)
	}
}

// TestWatchOutboxBusyStore: while a transaction holds SQLite (one
// connection, BEGIN IMMEDIATE), a scrape's read waits only until
// OutboxStatsTimeout, counts an error and shows no gauge; once the store
// is free, the gauges are back.
func TestWatchOutboxBusyStore(t *testing.T) {
	e := testdb.SQLite(t)
	ctx := context.Background()
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{OutboxStatsTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox("orders", ob.Stats); err != nil {
		t.Fatal(err)
	}
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, "orders", eos.Message{ID: "o1", Payload: []byte("o1")}); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(outboxErrorsOnly(1)), outboxNames...); err != nil {
		t.Errorf("store held: %v", err)
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "eos_outbox_unsent"); err != nil || n != 1 {
		t.Errorf("eos_outbox_unsent series with the store free: %d, %v; want 1", n, err)
	}
}
