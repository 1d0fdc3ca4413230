package inbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// The payments workload set-based, four ways, with the same SQL for the
// effects (testdb.Payments.ApplyBatch: one ledger insert, one aggregated
// balance update per batch):
//
//   - setbased: the hand-written ceiling, no eos code: one transaction per
//     batch inserting the ids into a table of seen ids where absent
//     (RETURNING the new ones), then the effects of the new ones;
//   - eos-batch: inbox.NewBatch with a batch handler running those
//     statements on Batch.Messages;
//   - eos: inbox.New with the per-message handler (two statements per
//     message);
//   - atleastonce: the statements in a plain transaction, no claim.
//
// So setbased, eos-batch and atleastonce differ only in the claim.
var paymentsModes = []string{"setbased", "eos-batch", "eos", "atleastonce"}

const paymentsBalance = int64(1) << 40

// paymentsAccounts is the number of accounts the messages debit in turn:
// in a run of up to that many messages per mode, no account is updated
// twice by one mode. With 1000 accounts every batch of 1000 would update
// each again, and on a PostgreSQL server whose vacuum is held back
// (autovacuum off, or another session's long transaction holding the
// horizon, as on a shared test server) each update would walk a chain of
// dead versions growing over the run: a cost added alike to every mode
// that flattens their ratios.
const paymentsAccounts = 100_000

// BenchmarkPayments runs each mode on a database of its own and reports
// its events/s. Modes of one shape run back to back, but each on its own
// database and minutes apart: quote BenchmarkPaymentsPaired's ratios.
// Each run checks that every event was applied exactly once.
func BenchmarkPayments(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{100, 1000} {
			for _, mode := range paymentsModes {
				b.Run(fmt.Sprintf("driver=%s/mode=%s/batch=%d", drv, mode, batch), func(b *testing.B) {
					switch drv {
					case "sqlite":
						benchPayments(b, testdb.SQLite(b), mode, batch)
					case "postgres":
						benchPayments(b, engines.Postgres(b), mode, batch)
					}
				})
			}
		}
	}
}

// paymentsTurn returns mode's contender on pay's database: Batch applies
// its messages in one transaction (the inbox's, for eos and eos-batch).
func paymentsTurn[TTx any](b *testing.B, pay testdb.Payments[TTx], mode string, batch int) testdb.Turn {
	switch mode {
	case "setbased":
		return testdb.Turn{Name: mode, Batch: pay.SetBasedBatch}
	case "atleastonce":
		return testdb.Turn{Name: mode, Batch: pay.PlainBatch}
	}
	var p *inbox.Processor[TTx]
	var err error
	cfg := inbox.Config{Consumer: "bench-" + mode, MaxBatch: batch}
	if mode == "eos" {
		p, err = inbox.New(pay.E.Driver, pay.Handler, cfg)
	} else {
		p, err = inbox.NewBatch(pay.E.Driver, func(ctx context.Context, tx TTx, bt *inbox.Batch) error {
			return pay.ApplyBatch(ctx, tx, bt.Messages)
		}, cfg)
	}
	if err != nil {
		b.Fatal(err)
	}
	return testdb.InboxTurn(mode, p, nil)
}

func setupPayments[TTx any](b *testing.B, e *testdb.Engine[TTx]) testdb.Payments[TTx] {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(b, paymentsAccounts, paymentsBalance)
	pay.SetupBatch(b)
	return pay
}

func benchPayments[TTx any](b *testing.B, e *testdb.Engine[TTx], mode string, batch int) {
	pay := setupPayments(b, e)
	elapsed := testdb.RunTurns(b, batch, paymentsAccounts, []testdb.Turn{paymentsTurn(b, pay, mode, batch)})
	pay.CheckLedger(b, b.N, paymentsAccounts, paymentsBalance)
	b.ReportMetric(float64(b.N)/elapsed[0].Seconds(), "events/s")
}

// BenchmarkPaymentsPaired runs the four modes batch by batch in turns
// (rotating their order) on one database, so that all see the same disk
// and cache state, and reports each mode's events/s and eos-batch's rate
// over each other mode's: eos-batch/setbased is what the claim costs
// against a hand-written one. These are the figures to quote. The run
// checks that every event was applied exactly once.
func BenchmarkPaymentsPaired(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{100, 1000} {
			b.Run(fmt.Sprintf("driver=%s/batch=%d", drv, batch), func(b *testing.B) {
				switch drv {
				case "sqlite":
					benchPaymentsPaired(b, testdb.SQLite(b), batch)
				case "postgres":
					benchPaymentsPaired(b, engines.Postgres(b), batch)
				}
			})
		}
	}
}

func benchPaymentsPaired[TTx any](b *testing.B, e *testdb.Engine[TTx], batch int) {
	pay := setupPayments(b, e)
	turns := make([]testdb.Turn, len(paymentsModes))
	for i, mode := range paymentsModes {
		turns[i] = paymentsTurn(b, pay, mode, batch)
	}
	elapsed := testdb.RunTurns(b, batch, paymentsAccounts, turns)
	pay.CheckLedger(b, len(turns)*b.N, paymentsAccounts, paymentsBalance)
	reportAgainst(b, turns, elapsed, "eos-batch")
}

// reportAgainst reports each turn's events/s and the rate of turn name
// over each other turn's.
func reportAgainst(b *testing.B, turns []testdb.Turn, elapsed []time.Duration, name string) {
	var ref time.Duration
	for k, t := range turns {
		b.ReportMetric(float64(b.N)/elapsed[k].Seconds(), t.Name+"-events/s")
		if t.Name == name {
			ref = elapsed[k]
		}
	}
	for k, t := range turns {
		if t.Name != name {
			b.ReportMetric(elapsed[k].Seconds()/ref.Seconds(), name+"/"+t.Name)
		}
	}
}

// BenchmarkIsolationBatch measures what failing messages cost the batch
// handler: at 0, 1 and 10 failing messages in 100, the handler returns an
// error (after its statements) whenever a failing message is among those
// it was called with, and the inbox bisects the batch under savepoints to
// apply the others. The three rates take turns on one database (each its
// own consumer); the ratios are each failure rate's events/s over the
// rate without failures.
func BenchmarkIsolationBatch(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{256, 1000} {
			b.Run(fmt.Sprintf("driver=%s/batch=%d", drv, batch), func(b *testing.B) {
				switch drv {
				case "sqlite":
					benchIsolationBatch(b, testdb.SQLite(b), batch)
				case "postgres":
					benchIsolationBatch(b, engines.Postgres(b), batch)
				}
			})
		}
	}
}

func benchIsolationBatch[TTx any](b *testing.B, e *testdb.Engine[TTx], batch int) {
	pay := setupPayments(b, e)
	applied := 0
	var turns []testdb.Turn
	for _, pct := range []int{0, 1, 10} {
		failing := map[string]bool{}
		bh := func(ctx context.Context, tx TTx, bt *inbox.Batch) error {
			if err := pay.ApplyBatch(ctx, tx, bt.Messages); err != nil {
				return err
			}
			for _, m := range bt.Messages {
				if failing[m.ID] {
					return fmt.Errorf("payments: %s refused", m.ID)
				}
			}
			return nil
		}
		p, err := inbox.NewBatch(e.Driver, bh, inbox.Config{
			Consumer: fmt.Sprintf("bench-%dpct", pct), MaxBatch: batch, MaxAttempts: 1000,
		})
		if err != nil {
			b.Fatal(err)
		}
		seen := 0 // messages of this turn so far: message i fails when i%100 < pct
		turns = append(turns, testdb.Turn{Name: fmt.Sprintf("%dpct", pct), Batch: func(ctx context.Context, ms []eos.Message) error {
			want := len(ms)
			for _, m := range ms {
				if seen%100 < pct {
					failing[m.ID] = true
					want--
				}
				seen++
			}
			res, err := p.Process(ctx, inboxtest.NewDeliveries(ms...).Inbox())
			if err != nil {
				return err
			}
			if n, r := res.Count(inbox.Applied), res.Count(inbox.Retry); n != want || r != len(ms)-want {
				return fmt.Errorf("applied %d and to retry %d of %d, want %d applied", n, r, len(ms), want)
			}
			applied += want
			return nil
		}})
	}
	elapsed := testdb.RunTurns(b, batch, paymentsAccounts, turns)
	pay.CheckLedger(b, applied, paymentsAccounts, paymentsBalance)
	for k, t := range turns {
		b.ReportMetric(float64(b.N)/elapsed[k].Seconds(), t.Name+"-events/s")
		if k > 0 {
			b.ReportMetric(elapsed[0].Seconds()/elapsed[k].Seconds(), t.Name+"/"+turns[0].Name)
		}
	}
}
