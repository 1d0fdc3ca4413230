package check

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/torture/intents"
)

// heldFacts are the facts of a drained run of three orders and two
// malformed inputs (one without a message id, which the broker stored
// twice) in which everything held.
func heldFacts() Facts {
	f := Facts{Stored: map[string]int{}, Store: StoreFacts{PaymentRows: map[string]int{}}}
	for i, id := range []string{"a", "b", "c"} {
		account, amount := "acct-"+id, int64(10*(i+1))
		f.Intents = append(f.Intents, intents.Intent{Kind: intents.Order, ID: id, Account: account, Amount: amount})
		f.Stored[id] = 1
		f.Store.Ledger = append(f.Store.Ledger, payments.LedgerRow{OrderID: id, Account: account, Amount: amount, CreatedUS: 1000, AppliedUS: 2000})
		f.Store.Balances = append(f.Store.Balances, payments.Balance{Account: account, Balance: 1000 - amount, Initial: 1000})
		f.Store.PaymentRows[id] = 1
		f.Charges = append(f.Charges, payments.ChargeRecord{ChargeID: "ch-" + id, OrderID: id, Account: account, Amount: amount,
			ChargedAt: time.UnixMicro(3000)})
	}
	f.Intents = append(f.Intents, intents.Intent{Kind: intents.Poison, ID: "bad", Payload: []byte("{"), Why: "not JSON"},
		intents.Intent{Kind: intents.Poison, Payload: []byte("no id"), Why: "no message id"})
	f.Stored["bad"], f.Stored[""] = 1, 2
	f.Broker = BrokerStats{OrdersStored: 6, OrdersDelivered: 6, PaymentsStored: 3, PaymentsDelivered: 3}
	f.Store.Inbox = map[string]InboxFacts{
		payments.OrdersConsumer: {Stats: inbox.Stats{Claims: 6, Attempts: 1, DeadLetters: 3}, DeadLetters: []inbox.DeadLetter{
			{Consumer: payments.OrdersConsumer, ID: "bad", Payload: []byte("{"), Attempts: 1, LastError: "not JSON"},
			{Consumer: payments.OrdersConsumer, ID: "invalid-1", Payload: []byte("no id"), Invalid: true, LastError: "no id"},
			{Consumer: payments.OrdersConsumer, ID: "invalid-2", Payload: []byte("no id"), Invalid: true, LastError: "no id"},
		}},
		payments.PaymentsConsumer: {Stats: inbox.Stats{Claims: 3}},
	}
	return f
}

// without returns f without order id's ledger row, payment row and charge,
// and with its debit given back: an order that was never applied.
func (f Facts) without(id string) Facts {
	f.Store.Ledger = slices.DeleteFunc(slices.Clone(f.Store.Ledger), func(l payments.LedgerRow) bool { return l.OrderID == id })
	f.Charges = slices.DeleteFunc(slices.Clone(f.Charges), func(c payments.ChargeRecord) bool { return c.OrderID == id })
	f.Store.Balances = slices.Clone(f.Store.Balances)
	for i, b := range f.Store.Balances {
		if b.Account == "acct-"+id {
			f.Store.Balances[i].Balance = b.Initial
		}
	}
	f.Store.PaymentRows = clone(f.Store.PaymentRows)
	delete(f.Store.PaymentRows, id)
	f.Store.Inbox = cloneInbox(f.Store.Inbox)
	for c, in := range f.Store.Inbox {
		in.Claims--
		f.Store.Inbox[c] = in
	}
	return f
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneInbox(m map[string]InboxFacts) map[string]InboxFacts {
	out := make(map[string]InboxFacts, len(m))
	for k, v := range m {
		v.DeadLetters = slices.Clone(v.DeadLetters)
		out[k] = v
	}
	return out
}

// inboxFacts changes consumer's facts in a copy of f.
func (f Facts) inboxFacts(consumer string, change func(*InboxFacts)) Facts {
	f.Store.Inbox = cloneInbox(f.Store.Inbox)
	in := f.Store.Inbox[consumer]
	change(&in)
	f.Store.Inbox[consumer] = in
	return f
}

func TestVerdictHolds(t *testing.T) {
	r := Verdict(heldFacts())
	if !r.OK || len(r.Failures) > 0 || r.Attempted != 3 || r.Acknowledged != 3 || r.Applied != 3 || r.Charged != 3 || r.ChargedOnce != 3 ||
		!r.Conservation || r.Poison != 2 || r.DeadLettered != 2 || len(r.DeadLetters) != 3 {
		t.Fatalf("verdict on a run that held: %+v", r)
	}
	if r.P50ms != 1 || r.ChargeP99ms != 2 || r.DuplicatesSuppressed != 1 || r.Retries != 0 || r.Reprocessed != 0 {
		t.Errorf("p50 %v, charge p99 %v, suppressed %d, retries %d, reprocessed %d; want 1, 2, 1 (the id-less copy), 0, 0",
			r.P50ms, r.ChargeP99ms, r.DuplicatesSuppressed, r.Retries, r.Reprocessed)
	}
}

// TestVerdictCatchesPlantedViolations plants each kind of violation in the
// facts of a run that held and checks that the verdict counts it and fails
// with it, or, for what only a drained pipeline shows, that an incomplete
// run does not call it a failure.
func TestVerdictCatchesPlantedViolations(t *testing.T) {
	for _, c := range []struct {
		name       string
		plant      func(f Facts) Facts
		count      func(r Report) int64
		want       string // the failure
		incomplete string // the failure when the run did not drain; "" for none
	}{
		{"lost event", func(f Facts) Facts { return f.without("b") },
			func(r Report) int64 { return r.Lost }, "1 acknowledged orders lost (1 never applied", ""},
		{"payment lost", func(f Facts) Facts {
			f = f.without("b") // the PAYMENTS message acked, its effects never committed
			f.Store.Ledger = heldFacts().Store.Ledger
			f.Store.Balances = heldFacts().Store.Balances
			return f.inboxFacts(payments.OrdersConsumer, func(in *InboxFacts) { in.Claims++ })
		}, func(r Report) int64 { return r.Lost }, "1 acknowledged orders lost (0 never applied, 1 applied and never paid)", ""},
		{"never stored", func(f Facts) Facts { f = f.without("b"); f.Stored = clone(f.Stored); delete(f.Stored, "b"); return f },
			func(r Report) int64 { return r.Attempted - r.Acknowledged }, "1 orders intended but never stored", ""},
		{"duplicate effect", func(f Facts) Facts {
			f.Store.Ledger = append(slices.Clone(f.Store.Ledger), f.Store.Ledger[0])
			f.Store.Balances = slices.Clone(f.Store.Balances)
			f.Store.Balances[0].Balance -= f.Store.Ledger[0].Amount
			return f
		}, func(r Report) int64 { return r.Duplicated }, "1 duplicate effects", "1 duplicate effects"},
		// The provider replays the second request by its idempotency key:
		// one charge, two rows of the payment worker.
		{"duplicate payment hidden by the provider", func(f Facts) Facts {
			f.Store.PaymentRows = clone(f.Store.PaymentRows)
			f.Store.PaymentRows["a"] = 2
			return f
		}, func(r Report) int64 { return r.Duplicated }, "1 duplicate effects", "1 duplicate effects"},
		{"unexpected apply", func(f Facts) Facts {
			f.Store.Ledger = append(slices.Clone(f.Store.Ledger), payments.LedgerRow{OrderID: "x", Account: "acct-a", Amount: 5})
			f.Store.Balances = slices.Clone(f.Store.Balances)
			f.Store.Balances[0].Balance -= 5
			return f
		}, func(r Report) int64 { return r.Unexpected }, "1 orders applied that were never intended", "1 orders applied that were never intended"},
		{"unexpected payment", func(f Facts) Facts {
			f.Store.PaymentRows = clone(f.Store.PaymentRows)
			f.Store.PaymentRows["x"] = 1
			return f
		}, func(r Report) int64 { return r.Unexpected }, "1 orders applied that were never intended", "1 orders applied that were never intended"},
		{"double charge", func(f Facts) Facts { f.Charges = append(slices.Clone(f.Charges), f.Charges[1]); return f },
			func(r Report) int64 { return r.DuplicateCharges }, "1 orders not charged exactly once", "1 orders not charged exactly once"},
		{"charge of an order never intended", func(f Facts) Facts {
			f.Charges = append(slices.Clone(f.Charges), payments.ChargeRecord{OrderID: "x", Account: "acct-x", Amount: 1})
			return f
		}, func(r Report) int64 { return r.ChargeAnomalies }, "1 orders not charged exactly once", "1 orders not charged exactly once"},
		{"charge never made", func(f Facts) Facts { f.Charges = f.Charges[:2]; return f },
			func(r Report) int64 { return r.ChargeAnomalies }, "1 orders not charged exactly once", ""},
		{"wrong amount", func(f Facts) Facts {
			f.Store.Ledger = slices.Clone(f.Store.Ledger)
			f.Store.Ledger[0].Amount++
			f.Store.Balances = slices.Clone(f.Store.Balances)
			f.Store.Balances[0].Balance--
			return f
		}, func(r Report) int64 { return r.WrongAmounts }, "1 ledger rows or charges with another account or amount", "1 ledger rows or charges with another account"},
		{"wrong charge", func(f Facts) Facts { f.Charges = slices.Clone(f.Charges); f.Charges[2].Account = "acct-a"; return f },
			func(r Report) int64 { return r.WrongAmounts }, "1 ledger rows or charges with another account or amount", "1 ledger rows or charges"},
		{"money not conserved", func(f Facts) Facts {
			f.Store.Balances = slices.Clone(f.Store.Balances)
			f.Store.Balances[1].Balance--
			return f
		}, func(r Report) int64 { return map[bool]int64{false: 1}[r.Conservation] }, "conservation broken", "conservation broken"},
		{"money moved between accounts", func(f Facts) Facts {
			f.Store.Balances = slices.Clone(f.Store.Balances)
			f.Store.Balances[0].Balance++
			f.Store.Balances[1].Balance--
			return f
		}, func(r Report) int64 { return r.BalanceMismatches / 2 }, "2 accounts whose balance is not initial minus ledger", "2 accounts whose balance"},
		{"outbox row unsent", func(f Facts) Facts { f.Store.Unsent = 1; return f },
			func(r Report) int64 { return r.PartialCommits }, "1 outbox rows unsent", ""},
		{"poison not dead-lettered", func(f Facts) Facts {
			return f.inboxFacts(payments.OrdersConsumer, func(in *InboxFacts) { in.DeadLetters = in.DeadLetters[1:]; in.Claims-- })
		}, func(r Report) int64 { return r.Poison - r.DeadLettered }, "malformed input (not JSON) was not dead-lettered", ""},
		{"unexpected dead letter", func(f Facts) Facts {
			return f.inboxFacts(payments.PaymentsConsumer, func(in *InboxFacts) {
				in.DeadLetters = append(in.DeadLetters, inbox.DeadLetter{Consumer: payments.PaymentsConsumer, ID: "charge-a", LastError: "boom"})
			})
		}, func(r Report) int64 { return r.DeadLettered - r.Poison }, "1 unexpected dead letters (first: payments/charge-a: boom)", "1 unexpected dead letters"},
		{"quarantined", func(f Facts) Facts {
			return f.inboxFacts(payments.OrdersConsumer, func(in *InboxFacts) { in.Quarantined = 1 })
		}, func(r Report) int64 { return r.Quarantined }, "1 messages quarantined", "1 messages quarantined"},
		{"claim without effects", func(f Facts) Facts {
			return f.inboxFacts(payments.PaymentsConsumer, func(in *InboxFacts) { in.Claims++ })
		}, func(r Report) int64 { return 1 }, `4 dedupe records for consumer "payments", want 3`, `4 dedupe records for consumer "payments"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Verdict(c.plant(heldFacts()))
			if n := c.count(r); n != 1 {
				t.Errorf("counted %d, want 1: %+v", n, r)
			}
			if r.OK || !hasFailure(r.Failures, c.want) {
				t.Errorf("ok %v, failures %q; want one with %q", r.OK, r.Failures, c.want)
			}
			f := c.plant(heldFacts())
			f.Incomplete = true
			r = Verdict(f)
			switch {
			case r.OK || !r.Incomplete:
				t.Errorf("incomplete run: ok %v, incomplete %v; want not ok, incomplete", r.OK, r.Incomplete)
			case c.incomplete == "" && len(r.Failures) > 0:
				t.Errorf("incomplete run: failures %q, want none (in flight is not lost)", r.Failures)
			case c.incomplete != "" && !hasFailure(r.Failures, c.incomplete):
				t.Errorf("incomplete run: failures %q, want one with %q", r.Failures, c.incomplete)
			}
		})
	}
}

func hasFailure(failures []string, want string) bool {
	return slices.ContainsFunc(failures, func(f string) bool { return strings.Contains(f, want) })
}

// Redeliveries are told apart: retries after a handler failure (recorded
// attempts, less the last one of each dead letter), redeliveries after a
// kill (the rest), and copies the broker stored past its dedupe window.
func TestVerdictCountsRedeliveries(t *testing.T) {
	f := heldFacts()
	f.Intents = append(f.Intents, intents.Intent{Kind: intents.Copy, ID: "a"}, intents.Intent{Kind: intents.Resend, ID: "b"})
	f.Stored["a"] = 2
	f.Broker = BrokerStats{OrdersStored: 7, OrdersDelivered: 10, PaymentsStored: 3, PaymentsDelivered: 5}
	f = f.inboxFacts(payments.PaymentsConsumer, func(in *InboxFacts) { in.Attempts = 2 })
	f = f.inboxFacts(payments.OrdersConsumer, func(in *InboxFacts) { in.Claims = 6 })
	f.KillTimes = []time.Time{time.UnixMicro(1500)}
	r := Verdict(f)
	if !r.OK || r.DuplicatesSuppressed != 2 || r.Retries != 2 || r.Reprocessed != 3 || r.Indeterminate != 1 || r.Recovered != 1 || r.InFlightAtFault != 3 {
		t.Errorf("ok %v %q, suppressed %d, retries %d, reprocessed %d, indeterminate %d, recovered %d, in flight at fault %d;"+
			" want ok, 2, 2, 3, 1, 1, 3", r.OK, r.Failures, r.DuplicatesSuppressed, r.Retries, r.Reprocessed, r.Indeterminate, r.Recovered, r.InFlightAtFault)
	}
}

// Sum totals the runs: the total fails when a run does, and each failure
// names its run.
func TestSum(t *testing.T) {
	good := Run{Run: 1, Seed: 10, Report: Report{Attempted: 5, Acknowledged: 5, Applied: 5, Conservation: true, OK: true, P99ms: 7},
		Injected: Injected{Kills: 2}}
	bad := Run{Run: 2, Seed: 11, Report: Report{Attempted: 5, Acknowledged: 5, Applied: 4, Lost: 1, Conservation: true, P99ms: 9,
		Failures: []string{"1 acknowledged orders lost"}}, Injected: Injected{Kills: 1}, DedupeStoreErrors: 4}
	slow := Run{Run: 3, Report: Report{Conservation: true, Incomplete: true}}
	tot := Sum([]Run{good, bad, slow})
	if tot.OK || tot.Lost != 1 || tot.Applied != 9 || !tot.Conservation || tot.Kills != 3 || tot.DedupeStoreErrors != 4 || tot.P99ms != 9 ||
		tot.IncompleteRuns != 1 {
		t.Errorf("total %+v", tot)
	}
	if len(tot.Failures) != 1 || tot.Failures[0] != "run 2: 1 acknowledged orders lost" {
		t.Errorf("failures %q, want one naming run 2", tot.Failures)
	}
	if Sum([]Run{good}).OK != true || Sum(nil).OK {
		t.Error("one good run: not ok, or no runs: ok")
	}
}
