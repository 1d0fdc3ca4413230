package main

import (
	"fmt"
	"math"
	"time"

	"github.com/eoskit/eos/examples/payments"
)

// runFacts is everything the torture checker reads after a run: the
// producer's intent log, the ORDERS stream, the scenario's and eos's rows
// and the provider's records. verdict computes the run's counts from them
// alone, so that it can be tested on made-up facts.
type runFacts struct {
	Intents []intent
	// Stored counts the ORDERS stream's messages by message id.
	Stored map[string]int
	// Ledger is every ledger row, in insertion order.
	Ledger []ledgerEntry
	// PaymentRows counts the payment worker's own rows per order: the
	// provider's idempotency turns a second charge request into a replay,
	// so only these rows show that the payment worker applied an order
	// twice.
	PaymentRows map[string]int
	// Charges are the provider's records.
	Charges []payments.ChargeRecord
	// Balances and Initial are the sums over the accounts.
	Balances, Initial int64
	// Unsent outbox rows, quarantined messages, dead letters.
	Unsent, Quarantined, DeadLettered int64
	// KillTimes are the times of the workers' kills and crashes, sorted.
	KillTimes []time.Time
	// Incomplete says the run timed out before the pipeline drained
	// (finished, or idle: nothing pending at any consumer and nothing
	// moving). Only in a drained pipeline is an order not applied lost, an
	// unsent outbox row a partial commit, or a charge missing; an
	// incomplete run is checked for what must hold at every moment
	// (nothing twice, nothing unexpected, money conserved).
	Incomplete bool
}

// ledgerEntry is one ledger row.
type ledgerEntry struct {
	OrderID, Account  string
	Amount            int64
	CreatedUS, DoneUS int64
}

// verdict computes the checker's counts and failures from f, and OK (never
// for an incomplete run). The caller adds what it counts elsewhere (faults
// injected, store errors, the demo check's failures).
func verdict(f runFacts) *tortureRun {
	r := &tortureRun{}
	type want struct {
		account string
		amount  int64
	}
	orders := map[string]want{}
	resent := map[string]bool{}
	for _, it := range f.Intents {
		switch it.Kind {
		case intentOrder:
			orders[it.ID] = want{it.Account, it.Amount}
		case intentPoison:
			r.Poison++
		case intentResend:
			resent[it.ID] = true
		}
	}
	r.Attempted = int64(len(orders))
	for id := range resent {
		if _, ok := orders[id]; ok {
			r.Indeterminate++
		}
	}
	for id := range orders {
		if f.Stored[id] > 0 {
			r.Acknowledged++
		}
	}

	// What was applied.
	type applied struct {
		n                 int
		createdUS, doneUS int64
		account           string
		amount            int64
	}
	ledger := map[string]*applied{}
	var ledgerSum int64
	for _, l := range f.Ledger {
		ledgerSum += l.Amount
		if a := ledger[l.OrderID]; a != nil {
			a.n++
			continue
		}
		ledger[l.OrderID] = &applied{n: 1, createdUS: l.CreatedUS, doneUS: l.DoneUS, account: l.Account, amount: l.Amount}
	}
	var lat []float64
	wrong := 0
	unexpected := map[string]bool{}
	for id, l := range ledger {
		r.Duplicated += int64(l.n - 1)
		w, ok := orders[id]
		if !ok {
			unexpected[id] = true
			continue
		}
		if w.account != l.account || w.amount != l.amount {
			wrong++
		}
		r.Applied++
		lat = append(lat, float64(l.doneUS-l.createdUS)/1e3)
		if resent[id] {
			r.Recovered++
		}
		if inFlightAtKill(f.KillTimes, l.createdUS, l.doneUS) {
			r.InFlightAtFault++
		}
	}
	// Lost, once drained: stored by the broker and never applied, or
	// applied (its charge enqueued in the same transaction) and never
	// recorded by the payment worker: one of the two consumers acked a
	// message whose effects it never committed.
	var unpaid int64
	if !f.Incomplete {
		for id := range orders {
			switch {
			case f.Stored[id] > 0 && ledger[id] == nil:
				r.Lost++
			case ledger[id] != nil && f.PaymentRows[id] == 0:
				r.Lost++
				unpaid++
			}
		}
	}
	r.MissedApplies = r.Attempted - r.Applied
	for id, n := range f.PaymentRows {
		r.Duplicated += int64(max(n-1, 0))
		if _, ok := orders[id]; !ok && n > 0 {
			unexpected[id] = true
		}
	}
	r.Unexpected = int64(len(unexpected))
	r.Conservation = f.Balances == f.Initial-ledgerSum
	r.PartialCommits, r.Quarantined, r.DeadLettered = f.Unsent, f.Quarantined, f.DeadLettered

	// Charged once: one charge at the provider and one row of the payment
	// worker per order.
	perOrder := map[string]int{}
	for _, c := range f.Charges {
		perOrder[c.OrderID]++
	}
	for id := range orders {
		switch charges, rows := perOrder[id], f.PaymentRows[id]; {
		case charges == 1 && rows == 1:
			r.ChargedOnce++
		case charges > 1 || rows > 1 || !f.Incomplete:
			r.ChargeAnomalies++ // twice, or never once the pipeline drained
		}
	}
	for id := range perOrder {
		if _, ok := orders[id]; !ok {
			r.ChargeAnomalies++
		}
	}
	if r.Applied > 0 {
		r.DuplicateEffectsPerMillion = math.Round(float64(r.Duplicated)/float64(r.Applied)*1e6*10) / 10
	}
	r.P50ms, r.P99ms = payments.Percentile(lat, 0.50), payments.Percentile(lat, 0.99)

	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	// What must hold at every moment.
	if r.Duplicated > 0 {
		fail("%d duplicate effects", r.Duplicated)
	}
	if r.Unexpected > 0 {
		fail("%d orders applied that were never intended", r.Unexpected)
	}
	if wrong > 0 {
		fail("%d ledger rows with another account or amount than intended", wrong)
	}
	if !r.Conservation {
		fail("conservation broken: balances %d, initial %d, ledger %d", f.Balances, f.Initial, ledgerSum)
	}
	if r.ChargeAnomalies > 0 {
		fail("%d orders not charged exactly once (provider charges and payment rows)", r.ChargeAnomalies)
	}
	if r.Quarantined > 0 {
		fail("%d messages quarantined", r.Quarantined)
	}
	if f.Incomplete { // not a verdict: OK stays false
		return r
	}
	// What holds once the pipeline drained.
	if r.Acknowledged != r.Attempted {
		fail("%d orders intended but never stored by the broker", r.Attempted-r.Acknowledged)
	}
	if r.Lost > 0 {
		fail("%d acknowledged orders lost (%d never applied, %d applied and never paid)", r.Lost, r.Lost-unpaid, unpaid)
	}
	if r.PartialCommits > 0 {
		fail("%d outbox rows unsent at the end", r.PartialCommits)
	}
	if r.DeadLettered != r.Poison {
		fail("%d dead letters for %d malformed inputs", r.DeadLettered, r.Poison)
	}
	r.OK = len(r.Failures) == 0
	return r
}
