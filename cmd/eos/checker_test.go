package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/examples/payments"
)

// heldFacts are the facts of a run of three orders and one malformed input
// in which everything held.
func heldFacts() runFacts {
	f := runFacts{Stored: map[string]int{}, PaymentRows: map[string]int{}, Initial: 3000, Balances: 3000}
	for i, id := range []string{"a", "b", "c"} {
		account, amount := "acct-"+id, int64(10*(i+1))
		f.Intents = append(f.Intents, intent{Kind: intentOrder, ID: id, Account: account, Amount: amount})
		f.Stored[id] = 1
		f.Ledger = append(f.Ledger, ledgerEntry{OrderID: id, Account: account, Amount: amount, CreatedUS: 1000, DoneUS: 2000})
		f.Balances -= amount
		f.PaymentRows[id] = 1
		f.Charges = append(f.Charges, payments.ChargeRecord{ChargeID: "ch-" + id, OrderID: id, Account: account, Amount: amount})
	}
	f.Intents = append(f.Intents, intent{Kind: intentPoison, ID: "bad", Why: "not JSON"})
	f.Stored["bad"] = 1
	f.DeadLettered = 1
	return f
}

// without returns f without order id's ledger row, payment row and charge,
// and with its debit given back: an order that was never applied.
func (f runFacts) without(id string) runFacts {
	f.Ledger = slices.DeleteFunc(slices.Clone(f.Ledger), func(l ledgerEntry) bool {
		if l.OrderID == id {
			f.Balances += l.Amount
		}
		return l.OrderID == id
	})
	f.Charges = slices.DeleteFunc(slices.Clone(f.Charges), func(c payments.ChargeRecord) bool { return c.OrderID == id })
	rows := map[string]int{}
	for k, v := range f.PaymentRows {
		if k != id {
			rows[k] = v
		}
	}
	f.PaymentRows = rows
	return f
}

func TestVerdictHolds(t *testing.T) {
	r := verdict(heldFacts())
	if !r.OK || len(r.Failures) > 0 || r.Attempted != 3 || r.Acknowledged != 3 || r.Applied != 3 || r.ChargedOnce != 3 || !r.Conservation ||
		r.Poison != 1 || r.DeadLettered != 1 {
		t.Fatalf("verdict on a run that held: %+v", r)
	}
}

// TestVerdictCatchesPlantedViolations plants each kind of violation in the
// facts of a run that held and checks that the verdict counts it and fails
// with it, or, for what only a drained pipeline shows, that an incomplete
// run does not call it a failure.
func TestVerdictCatchesPlantedViolations(t *testing.T) {
	for _, c := range []struct {
		name       string
		plant      func(f runFacts) runFacts
		count      func(r *tortureRun) int64
		want       string // the failure; "" for none
		incomplete string // the failure when the run did not drain
	}{
		{"loss", func(f runFacts) runFacts { return f.without("b") },
			func(r *tortureRun) int64 { return r.Lost }, "1 acknowledged orders lost", ""},
		{"payment lost", func(f runFacts) runFacts {
			delete(f.PaymentRows, "b") // the PAYMENTS message acked, its effects never committed
			f.Charges = slices.DeleteFunc(slices.Clone(f.Charges), func(c payments.ChargeRecord) bool { return c.OrderID == "b" })
			return f
		},
			func(r *tortureRun) int64 { return r.Lost }, "1 acknowledged orders lost (0 never applied, 1 applied and never paid)", ""},
		{"never stored", func(f runFacts) runFacts { f = f.without("b"); f.Stored["b"] = 0; return f },
			func(r *tortureRun) int64 { return r.Attempted - r.Acknowledged }, "1 orders intended but never stored", ""},
		{"duplicate ledger row", func(f runFacts) runFacts {
			f.Ledger = append(slices.Clone(f.Ledger), f.Ledger[0])
			f.Balances -= f.Ledger[0].Amount
			return f
		}, func(r *tortureRun) int64 { return r.Duplicated }, "1 duplicate effects", "1 duplicate effects"},
		// The provider replays the second request by its idempotency key:
		// one charge, two rows of the payment worker.
		{"duplicate payment hidden by the provider", func(f runFacts) runFacts { f.PaymentRows["a"] = 2; return f },
			func(r *tortureRun) int64 { return r.Duplicated }, "1 duplicate effects", "1 duplicate effects"},
		{"charged once needs one payment row", func(f runFacts) runFacts { f.PaymentRows["a"] = 2; return f },
			func(r *tortureRun) int64 { return r.ChargeAnomalies }, "1 orders not charged exactly once", "1 orders not charged exactly once"},
		{"unexpected apply", func(f runFacts) runFacts {
			f.Ledger = append(slices.Clone(f.Ledger), ledgerEntry{OrderID: "x", Account: "acct-a", Amount: 5})
			f.Balances -= 5
			return f
		}, func(r *tortureRun) int64 { return r.Unexpected }, "1 orders applied that were never intended", "1 orders applied that were never intended"},
		{"unexpected payment", func(f runFacts) runFacts { f.PaymentRows["x"] = 1; return f },
			func(r *tortureRun) int64 { return r.Unexpected }, "1 orders applied that were never intended", "1 orders applied that were never intended"},
		{"double charge", func(f runFacts) runFacts { f.Charges = append(slices.Clone(f.Charges), f.Charges[1]); return f },
			func(r *tortureRun) int64 { return r.ChargeAnomalies }, "1 orders not charged exactly once", "1 orders not charged exactly once"},
		{"charge never made", func(f runFacts) runFacts { f.Charges = f.Charges[:2]; return f },
			func(r *tortureRun) int64 { return r.ChargeAnomalies }, "1 orders not charged exactly once", ""},
		{"wrong amount", func(f runFacts) runFacts {
			f.Ledger = slices.Clone(f.Ledger)
			f.Ledger[0].Amount++
			f.Balances--
			return f
		}, func(r *tortureRun) int64 { return 1 }, "1 ledger rows with another account or amount", "1 ledger rows with another account or amount"},
		{"money not conserved", func(f runFacts) runFacts { f.Balances--; return f },
			func(r *tortureRun) int64 { return map[bool]int64{false: 1}[r.Conservation] }, "conservation broken", "conservation broken"},
		{"outbox row unsent", func(f runFacts) runFacts { f.Unsent = 1; return f },
			func(r *tortureRun) int64 { return r.PartialCommits }, "1 outbox rows unsent", ""},
		{"poison not dead-lettered", func(f runFacts) runFacts { f.DeadLettered = 0; return f },
			func(r *tortureRun) int64 { return r.Poison - r.DeadLettered }, "0 dead letters for 1 malformed inputs", ""},
		{"quarantined", func(f runFacts) runFacts { f.Quarantined = 1; return f },
			func(r *tortureRun) int64 { return r.Quarantined }, "1 messages quarantined", "1 messages quarantined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := verdict(c.plant(heldFacts()))
			if n := c.count(r); n != 1 {
				t.Errorf("counted %d, want 1: %+v", n, r)
			}
			if r.OK || !hasFailure(r, c.want) {
				t.Errorf("ok %v, failures %q; want one with %q", r.OK, r.Failures, c.want)
			}
			f := c.plant(heldFacts())
			f.Incomplete = true
			r = verdict(f)
			switch {
			case c.incomplete == "" && len(r.Failures) > 0:
				t.Errorf("incomplete run: failures %q, want none (in flight is not lost)", r.Failures)
			case c.incomplete != "" && !hasFailure(r, c.incomplete):
				t.Errorf("incomplete run: failures %q, want one with %q", r.Failures, c.incomplete)
			}
		})
	}
}

func hasFailure(r *tortureRun, want string) bool {
	return slices.ContainsFunc(r.Failures, func(f string) bool { return strings.Contains(f, want) })
}

func TestIdleDetector(t *testing.T) {
	quiet := pipelineState{applied: 5, paid: 5, charged: 5, consumers: []consumerState{{delivered: 7, ackFloor: 7}, {delivered: 5, ackFloor: 5}}}
	busy := quiet
	busy.consumers = []consumerState{{delivered: 7, ackFloor: 6, ackPending: 1}, {delivered: 5, ackFloor: 5}}
	unsent := quiet
	unsent.unsent = 1
	moved := quiet
	moved.consumers = []consumerState{{delivered: 8, ackFloor: 8}, {delivered: 5, ackFloor: 5}}
	for _, c := range []struct {
		name string
		seq  []pipelineState
		want []bool
	}{
		{"quiet and still", []pipelineState{quiet, quiet, quiet, quiet}, []bool{false, false, true, true}},
		{"a message out", []pipelineState{quiet, busy, quiet, quiet}, []bool{false, false, false, false}},
		{"outbox not empty", []pipelineState{unsent, unsent, unsent, unsent}, []bool{false, false, false, false}},
		{"moving", []pipelineState{quiet, moved, quiet, moved}, []bool{false, false, false, false}},
		{"moved then still", []pipelineState{quiet, moved, moved, moved}, []bool{false, false, false, true}},
	} {
		var d idleDetector
		for i, s := range c.seq {
			if got := d.observe(s); got != c.want[i] {
				t.Errorf("%s: observation %d: idle %v, want %v", c.name, i, got, c.want[i])
			}
		}
	}
	var d idleDetector
	d.observe(quiet)
	d.observe(quiet)
	d.reset()
	if d.observe(quiet) {
		t.Error("idle right after reset")
	}
}

// TestTortureReportsLossWhenIdle steals an order from the consumer the
// order workers share (fetched and acknowledged, never applied): the run
// must end as soon as the pipeline is idle and report the loss, not wait
// for its timeout and call the run incomplete.
func TestTortureReportsLossWhenIdle(t *testing.T) {
	o, err := parseTortureFlags([]string{"--events", "300", "--faults", "none", "--workers", "2", "--seed", "5",
		"--timeout", "90s", "--dir", filepath.Join(t.TempDir(), "torture")})
	if err != nil {
		t.Fatal(err)
	}
	do := o.runOptions(0)
	do.quiet = true
	stolen := make(chan string, 1)
	do.onStart = func(ctx context.Context, d *demo) {
		cons, err := d.js.Consumer(ctx, d.topo.OrdersStream, ordersDurable)
		if err != nil {
			t.Error(err)
			return
		}
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					t.Error(err)
				}
				stolen <- m.Headers().Get(jetstream.MsgIDHeader)
				return
			}
		}
	}
	start := time.Now()
	r, _, err := checkedRun(context.Background(), do, 0, &testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run took %s: %+v", time.Since(start).Round(time.Millisecond), r)
	select {
	case id := <-stolen:
		t.Logf("stolen: %s", id)
	default:
		t.Fatal("nothing was stolen")
	}
	if r.Incomplete || r.OK || r.Lost != 1 || r.Applied != 299 {
		t.Errorf("incomplete %v (%s), ok %v, lost %d, applied %d; want a complete run with 1 lost and 299 applied",
			r.Incomplete, r.IncompleteReason, r.OK, r.Lost, r.Applied)
	}
	if !hasFailure(r, "1 acknowledged orders lost") {
		t.Errorf("failures %q, want the loss", r.Failures)
	}
}

// testWriter sends what the run writes to stderr to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
