package observe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/torture/worker"
)

// DuplicatesQuery returns the query that finds orders the demo's ledger
// applied more than once (reconcile.Config.Duplicates), its tables in
// schema when that is not empty.
func DuplicatesQuery(schema string) string {
	prefix := ""
	if schema != "" {
		prefix = schema + "."
	}
	return "SELECT order_id, count(*) FROM " + prefix + "ledger GROUP BY order_id HAVING count(*) > 1"
}

// ReconcileConfig tunes the Observer's reconciliations of the pipeline.
type ReconcileConfig struct {
	// Settle: source messages younger than this are pending, not missed
	// (the consumers' lag on a live pipeline). 0 on a drained one.
	Settle time.Duration
	// PartialAfter: an outbox row unsent for longer is a partial commit.
	// 0 leaves the outbox unchecked.
	PartialAfter time.Duration
	// Hooks are told about each run too, after the Observer's metrics.
	Hooks []reconcile.Hook
}

// Reconcilers returns one reconciliation pass per consumer of the
// pipeline, each feeding o.Metrics (eos_missed_apply_total and the rest,
// shown on the page and /metrics): the orders consumer against what it
// reads (the ORDERS stream, or the orders topic), with the ledger's
// duplicates and the outbox's partial commits, and the payments consumer
// against what it reads.
func (o *Observer) Reconcilers(cfg ReconcileConfig) ([]reconcile.RunFunc, error) {
	hooks := append([]reconcile.Hook{o.Metrics.ReconcileHook()}, cfg.Hooks...)
	orders, err := reconcile.New(o.pipeline.Store.Driver, o.pipeline.Broker.Source(worker.OrdersDurable),
		reconcile.Config{Consumer: payments.OrdersConsumer, Outbox: OutboxName, PartialAfter: cfg.PartialAfter, Settle: cfg.Settle,
			DB: o.pipeline.Store.Tables.DB, Duplicates: DuplicatesQuery(o.pipeline.Store.Tables.Schema), Hooks: hooks, Logger: o.log})
	if err != nil {
		return nil, err
	}
	charges, err := reconcile.New(o.pipeline.Store.Driver, o.pipeline.Broker.Source(worker.PaymentsDurable),
		reconcile.Config{Consumer: payments.PaymentsConsumer, Settle: cfg.Settle, Hooks: hooks, Logger: o.log})
	if err != nil {
		return nil, err
	}
	return []reconcile.RunFunc{orders.Run, charges.Run}, nil
}

// Reconcile runs each of the Observer's reconciliations once and returns
// their reports, in the order of Reconcilers; a run that failed has a nil
// report and its error is joined in.
func (o *Observer) Reconcile(ctx context.Context, cfg ReconcileConfig) ([]*reconcile.Report, error) {
	runs, err := o.Reconcilers(cfg)
	if err != nil {
		return nil, err
	}
	reps := make([]*reconcile.Report, len(runs))
	var errs []error
	for i, run := range runs {
		if reps[i], err = run(ctx); err != nil {
			reps[i] = nil
			errs = append(errs, fmt.Errorf("reconcile: %w", err))
		}
	}
	return reps, errors.Join(errs...)
}

// ScheduleReconcile runs each of the Observer's reconciliations every
// interval (reconcile.Runner) until ctx ends; it returns once they are
// started.
func (o *Observer) ScheduleReconcile(ctx context.Context, cfg ReconcileConfig, every time.Duration) error {
	runs, err := o.Reconcilers(cfg)
	if err != nil {
		return err
	}
	for _, run := range runs {
		r, err := reconcile.NewRunner(run, reconcile.RunnerConfig{Interval: every})
		if err != nil {
			return err
		}
		go func() { _ = r.Run(ctx) }() // it returns ctx's error only
	}
	return nil
}
