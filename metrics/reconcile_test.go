package metrics_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/reconcile"
)

// TestReconcile feeds the metrics from real reconciliation runs on
// SQLite: a producer table of three ids of which the consumer applied one,
// an unexpected claim, an effect applied twice and an old unsent outbox
// row. Runs repeated find the same things and count nothing more; with a
// memory of one finding, forgotten findings count again; a failed run
// counts as an error and leaves the last success alone.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	e := testdb.SQLite(t)
	db := e.Driver.(*sqlite.Driver).DB()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	e.Script(t, "CREATE TABLE sent (id TEXT NOT NULL)", "INSERT INTO sent VALUES ('m1'), ('m2'), ('m3')",
		"CREATE TABLE effects (id TEXT NOT NULL)", "INSERT INTO effects VALUES ('m1'), ('m1')")
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ex := e.Driver.Executor(tx)
	fp := make([]byte, eos.FingerprintSize)
	if _, err := ex.InboxClaim(ctx, "orders", now.Add(-time.Minute), []driver.Claim{{ID: "m1", Fingerprint: fp}, {ID: "x", Fingerprint: fp}}); err != nil {
		t.Fatal(err)
	}
	if err := ex.OutboxInsert(ctx, []driver.OutboxRow{{ID: "o1", Topic: "t", CreatedAt: now, EnqueuedAt: now.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	clock := eos.TestConfig{Now: func() time.Time { return now }}
	newRun := func(m *metrics.Metrics, query string) func() {
		r, err := reconcile.New(e.Driver, reconcile.SQLSource{DB: db, Query: query}, reconcile.Config{Consumer: "orders",
			Outbox: "main", PartialAfter: time.Minute, DB: db, Duplicates: "SELECT id, count(*) FROM effects GROUP BY id",
			Hooks: []reconcile.Hook{m.ReconcileHook()}, Test: clock})
		if err != nil {
			t.Fatal(err)
		}
		return func() { r.Run(ctx) }
	}
	const good = "SELECT id FROM sent WHERE id > $1 ORDER BY id LIMIT $2"
	expect := func(reg *prometheus.Registry, want string) {
		t.Helper()
		names := []string{"eos_missed_apply_total", "eos_duplicate_effects_total", "eos_unexpected_applies_total",
			"eos_partial_commits_total", "eos_reconcile_runs_total", "eos_reconcile_last_success_timestamp_seconds"}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
			t.Fatal(err)
		}
	}
	const help = `# HELP eos_duplicate_effects_total Ids reconciliation found applied more than once in the consumer's effects (Duplicates query); each counted once.
# TYPE eos_duplicate_effects_total counter
eos_duplicate_effects_total{consumer="orders"} 1
# HELP eos_missed_apply_total Messages reconciliation found in the source and never applied by the consumer; each counted once.
# TYPE eos_missed_apply_total counter
eos_missed_apply_total{consumer="orders"} %MISSED%
# HELP eos_partial_commits_total Outbox rows reconciliation found committed but still unsent past its threshold; each counted once.
# TYPE eos_partial_commits_total counter
eos_partial_commits_total{outbox="main"} 1
# HELP eos_reconcile_last_success_timestamp_seconds When the consumer's last reconciliation run completed (with or without findings), Unix seconds.
# TYPE eos_reconcile_last_success_timestamp_seconds gauge
eos_reconcile_last_success_timestamp_seconds{consumer="orders"} 1.772600767e+09
# HELP eos_reconcile_runs_total Reconciliation runs, by result: ok (nothing found), findings, error.
# TYPE eos_reconcile_runs_total counter
%RUNS%
# HELP eos_unexpected_applies_total Claims reconciliation found for ids the source does not hold; each counted once.
# TYPE eos_unexpected_applies_total counter
eos_unexpected_applies_total{consumer="orders"} 1
`
	fill := func(missed, runs string) string {
		return strings.NewReplacer("%MISSED%", missed, "%RUNS%", runs).Replace(help)
	}

	m, reg := newMetrics(t)
	run := newRun(m, good)
	run()
	run()
	expect(reg, fill("2", `eos_reconcile_runs_total{consumer="orders",result="findings"} 2`))
	newRun(m, "SELECT nothing FROM nowhere")()
	expect(reg, fill("2", `eos_reconcile_runs_total{consumer="orders",result="error"} 1
eos_reconcile_runs_total{consumer="orders",result="findings"} 2`))

	// A memory of one finding: the second run has forgotten all but the
	// last of the five, and counts the four others again.
	reg = prometheus.NewRegistry()
	m, err = metrics.New(reg, metrics.Config{ReconcileMemory: 1, Test: clock})
	if err != nil {
		t.Fatal(err)
	}
	run = newRun(m, good)
	run()
	run()
	if got := testutil.ToFloat64(prometheusCounter(t, reg, "eos_missed_apply_total")); got != 4 {
		t.Errorf("missed with a memory of one: %v, want 4 (2 per run)", got)
	}
	if _, err := metrics.New(prometheus.NewRegistry(), metrics.Config{ReconcileMemory: -1}); err == nil {
		t.Error("negative ReconcileMemory accepted")
	}
}

// prometheusCounter returns the one series of a counter family as a
// collector testutil.ToFloat64 reads.
func prometheusCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(mf.GetMetric()[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("no single series of %s", name)
	return nil
}
