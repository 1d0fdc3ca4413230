package reconcile_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/reconcile"
)

// TestRunner runs a real reconciliation on a schedule driven by the test's
// timer: a run at once, one more per tick, each report to the hooks, until
// the context ends.
func TestRunner(t *testing.T) {
	e := testdb.SQLite(t)
	s := store[*sql.Tx]{d: e.Driver, db: sqliteDB(e)}
	now := t0.Add(time.Hour)
	setup(t, s, now)
	clock := eos.TestConfig{Now: func() time.Time { return now }}
	rec := &recorder{}
	r, err := reconcile.New(s.d, reconcile.SQLSource{DB: s.db, Query: "SELECT id, at FROM sent WHERE id > $1 ORDER BY id LIMIT $2"},
		reconcile.Config{Consumer: "c", Hooks: []reconcile.Hook{rec}, Test: clock})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan *reconcile.Report)
	tick := make(chan time.Time)
	waits := make(chan time.Duration, 10)
	runner, err := reconcile.NewRunner(func(ctx context.Context) (*reconcile.Report, error) {
		rep, err := r.Run(ctx)
		reports <- rep
		return rep, err
	}, reconcile.RunnerConfig{Interval: time.Minute, Test: reconcile.RunnerTest{TestConfig: clock,
		After: func(d time.Duration) <-chan time.Time { waits <- d; return tick }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	if rep, err := runner.Last(); rep != nil || err != nil {
		t.Fatalf("Last before a run: %v, %v", rep, err)
	}
	go func() { done <- runner.Run(ctx) }()
	for i := range 3 {
		if rep := <-reports; rep.Missed.Count != 1 || rep.Missed.Sample[0] != "s4" {
			t.Fatalf("run %d: %+v", i, rep)
		}
		if d := <-waits; d != time.Minute {
			t.Fatalf("run %d: waits %v, want the interval", i, d)
		}
		if i < 2 {
			tick <- now
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if rep, err := runner.Last(); err != nil || rep == nil || rep.Missed.Count != 1 {
		t.Fatalf("Last: %+v, %v", rep, err)
	}
	if rec.done != 3 || len(rec.findings) != 6 { // missed s4 and unexpected x9, each run
		t.Fatalf("hooks: %d runs, %d findings", rec.done, len(rec.findings))
	}
	if _, err := reconcile.NewRunner(nil, reconcile.RunnerConfig{}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("nil run: %v", err)
	}
	if _, err := reconcile.NewRunner(r.Run, reconcile.RunnerConfig{Interval: -1}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("negative interval: %v", err)
	}
}
