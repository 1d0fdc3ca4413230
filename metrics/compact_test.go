package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

func TestCompact(t *testing.T) { engines.Each(t, testCompact, testCompact) }

// A real compactor deletes expired claims and meets a store outage: the
// rows are counted by kind, the failed pass as an error, and the last
// success keeps the time of the pass that worked.
func testCompact[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := start
	clock := eos.TestConfig{Now: func() time.Time { return now }}
	p, err := inbox.New(e.Driver, func(context.Context, TTx, eos.Message) error { return nil }, inbox.Config{Consumer: "c", Test: clock})
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]eos.Message, 30)
	for i := range ms {
		ms[i] = eos.Message{ID: fmt.Sprintf("m%02d", i), Payload: []byte("x")}
	}
	inboxtest.Process(ctx, t, p, ms...)
	now = now.Add(8 * 24 * time.Hour)
	store := &testdb.Flaky[TTx]{Driver: e.Driver}
	c, err := compact.New(driver.Driver[TTx](store), compact.Config{RedeliveryHorizon: time.Hour, Test: clock, Hooks: []compact.Hook{m.CompactHook()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	store.Down.Store(true)
	now = now.Add(time.Minute)
	if _, err := c.Compact(ctx); err == nil {
		t.Fatal("a pass over a store that is down did not fail")
	}
	expect := fmt.Sprintf(`
# HELP eos_compact_deleted_rows_total Rows the compactor deleted, by kind: inbox (dedupe records), failures (attempt counters), outbox (sent rows), quarantine, dead_letters, dedupe (package dedupe's records past their expiry).
# TYPE eos_compact_deleted_rows_total counter
eos_compact_deleted_rows_total{kind="inbox"} 30
# HELP eos_compact_errors_total Compaction passes that failed on the store; the next pass retries.
# TYPE eos_compact_errors_total counter
eos_compact_errors_total 1
# HELP eos_compact_last_success_timestamp_seconds When the last compaction pass that did not fail ended (Unix seconds); 0 before the first.
# TYPE eos_compact_last_success_timestamp_seconds gauge
eos_compact_last_success_timestamp_seconds %d
`, start.Add(8*24*time.Hour).Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect), "eos_compact_deleted_rows_total",
		"eos_compact_errors_total", "eos_compact_last_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}
