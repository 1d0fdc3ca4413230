package check

import (
	"bytes"
	"math"
	"slices"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/torture/intents"
)

// Verdict computes the report of a run from its facts alone, and OK
// (never for an incomplete run).
func Verdict(f Facts) Report {
	j := judge{f: f, r: Report{Incomplete: f.Incomplete}}
	j.intended()
	j.applied()
	j.paid()
	j.charged()
	j.money()
	j.deadLetters()
	j.redeliveries()
	j.verdict()
	return j.r
}

// judge holds what the steps of Verdict share.
type judge struct {
	f Facts
	r Report

	orders     map[string]intents.Intent // intended, by id
	resent     map[string]bool           // ids published again without knowing
	poison     []intents.Intent
	first      map[string]payments.LedgerRow // first ledger row per order
	ledgerSum  map[string]int64              // per account
	ledgerAll  int64
	unexpected map[string]bool
	charges    map[string]int   // provider charges per order
	chargeSum  map[string]int64 // per account
	unpaid     int64            // applied orders the payment worker never recorded
	// matchedDead counts the orders consumer's dead letters that are
	// malformed inputs.
	matchedDead int64
}

// intended reads the intent log: the attempted orders, the ones resent
// without knowing whether the broker held them, and the malformed inputs.
func (j *judge) intended() {
	j.orders, j.resent = map[string]intents.Intent{}, map[string]bool{}
	for _, it := range j.f.Intents {
		switch it.Kind {
		case intents.Order:
			j.orders[it.ID] = it
		case intents.Resend:
			j.resent[it.ID] = true
		case intents.Poison:
			j.poison = append(j.poison, it)
		}
	}
	r := &j.r
	r.Attempted, r.Poison = int64(len(j.orders)), int64(len(j.poison))
	for id := range j.orders {
		if j.resent[id] {
			r.Indeterminate++
		}
		if j.f.Stored[id] > 0 {
			r.Acknowledged++
		}
	}
}

// applied reads the ledger: one row per intended order, with its account
// and amount.
func (j *judge) applied() {
	r := &j.r
	j.first, j.ledgerSum, j.unexpected = map[string]payments.LedgerRow{}, map[string]int64{}, map[string]bool{}
	var lat []float64
	var minCreated, maxDone int64 = math.MaxInt64, 0
	for _, l := range j.f.Store.Ledger {
		j.ledgerSum[l.Account] += l.Amount
		j.ledgerAll += l.Amount
		if _, dup := j.first[l.OrderID]; dup {
			r.Duplicated++
			continue
		}
		j.first[l.OrderID] = l
		o, ok := j.orders[l.OrderID]
		switch {
		case !ok:
			j.unexpected[l.OrderID] = true
			continue
		case o.Account != l.Account || o.Amount != l.Amount:
			r.WrongAmounts++
		}
		r.Applied++
		lat = append(lat, float64(l.AppliedUS-l.CreatedUS)/1e3)
		minCreated, maxDone = min(minCreated, l.CreatedUS), max(maxDone, l.AppliedUS)
		if j.resent[l.OrderID] {
			r.Recovered++
		}
		if inFlightAtKill(j.f.KillTimes, l.CreatedUS, l.AppliedUS) {
			r.InFlightAtFault++
		}
	}
	r.MissedApplies = r.Attempted - r.Applied
	r.P50ms, r.P99ms = percentile(lat, 0.50), percentile(lat, 0.99)
	if r.Applied > 0 && maxDone > minCreated {
		r.EventsPerS = math.Round(float64(r.Applied)/(float64(maxDone-minCreated)/1e6)*10) / 10
	}
}

// paid reads the payment worker's rows (one per applied order) and, once
// the pipeline drained, counts the losses: an order the broker stored and
// no order worker applied, or one applied (its charge enqueued in the same
// transaction) and never recorded by the payment worker. Either way a
// consumer acked a message whose effects it never committed.
func (j *judge) paid() {
	r := &j.r
	for id, n := range j.f.Store.PaymentRows {
		r.Duplicated += int64(max(n-1, 0))
		if _, ok := j.orders[id]; !ok && n > 0 {
			j.unexpected[id] = true
		}
	}
	r.Unexpected = int64(len(j.unexpected))
	r.DuplicateEffectsPerMillion = perMillion(r.Duplicated, r.Applied)
	if j.f.Incomplete {
		return
	}
	for id := range j.orders {
		_, applied := j.first[id]
		switch {
		case j.f.Stored[id] > 0 && !applied:
			r.Lost++
		case applied && j.f.Store.PaymentRows[id] == 0:
			r.Lost++
			j.unpaid++
		}
	}
}

// charged reads the provider's records: one charge, of the order's
// account and amount, and one payment row per order.
func (j *judge) charged() {
	r := &j.r
	j.charges, j.chargeSum = map[string]int{}, map[string]int64{}
	var lat []float64
	for _, c := range j.f.Charges {
		j.chargeSum[c.Account] += c.Amount
		if j.charges[c.OrderID]++; j.charges[c.OrderID] > 1 {
			r.DuplicateCharges++
			continue
		}
		o, ok := j.orders[c.OrderID]
		if !ok {
			r.ChargeAnomalies++ // charged, never intended
			continue
		}
		if o.Account != c.Account || o.Amount != c.Amount {
			r.WrongAmounts++
		}
		if l, ok := j.first[c.OrderID]; ok {
			lat = append(lat, float64(c.ChargedAt.UnixMicro()-l.CreatedUS)/1e3)
		}
	}
	for id := range j.orders {
		switch n, rows := j.charges[id], j.f.Store.PaymentRows[id]; {
		case n == 1 && rows == 1:
			r.ChargedOnce++
		case n > 1 || rows > 1 || !j.f.Incomplete:
			r.ChargeAnomalies++ // twice, or not once when the pipeline drained
		}
		if j.charges[id] > 0 {
			r.Charged++
		}
	}
	r.ChargeP50ms, r.ChargeP99ms = percentile(lat, 0.50), percentile(lat, 0.99)
}

// money checks the balances: in total and per account, the initial
// balance minus the ledger's debits (the debit and the ledger row commit
// together) and, once drained, minus the provider's charges (which follow).
func (j *judge) money() {
	r := &j.r
	var balances, initial int64
	for _, b := range j.f.Store.Balances {
		balances += b.Balance
		initial += b.Initial
		spent := b.Initial - b.Balance
		if spent != j.ledgerSum[b.Account] || (!j.f.Incomplete && spent != j.chargeSum[b.Account]) {
			r.BalanceMismatches++
		}
	}
	r.Conservation = balances == initial-j.ledgerAll
	if !r.Conservation {
		r.fail("conservation broken: balances %d, initial %d, ledger %d", balances, initial, j.ledgerAll)
	}
}

// deadLetters matches the dead letters with the malformed inputs: each
// input dead-lettered by the orders consumer (one without an id as
// invalid, once per copy the broker stored, each under its own id), and
// nothing else.
func (j *judge) deadLetters() {
	r := &j.r
	matched := map[DeadLetterInfo]bool{}
	orders := j.f.Store.Inbox[payments.OrdersConsumer].DeadLetters
	for _, p := range j.poison {
		found := false
		for _, d := range orders {
			if (p.ID == "" && d.Invalid && bytes.Equal(d.Payload, p.Payload)) || (p.ID != "" && !d.Invalid && d.ID == p.ID) {
				matched[info(d.Consumer, d.ID, d.LastError)], found = true, true
			}
		}
		if found {
			r.DeadLettered++
		} else if !j.f.Incomplete {
			r.fail("malformed input (%s) was not dead-lettered", p.Why)
		}
	}
	j.matchedDead = int64(len(matched))
	var unexpected []DeadLetterInfo
	for _, consumer := range consumers(j.f.Store.Inbox) {
		for _, d := range j.f.Store.Inbox[consumer].DeadLetters {
			di := info(d.Consumer, d.ID, d.LastError)
			r.DeadLetters = append(r.DeadLetters, di)
			if !matched[di] {
				unexpected = append(unexpected, di)
			}
		}
	}
	r.DeadLettered += int64(len(unexpected))
	if len(unexpected) > 0 {
		d := unexpected[0]
		r.fail("%d unexpected dead letters (first: %s/%s: %s)", len(unexpected), d.Consumer, d.ID, d.Error)
	}
}

func info(consumer, id, err string) DeadLetterInfo {
	return DeadLetterInfo{Consumer: consumer, ID: id, Error: err}
}

// consumers returns the consumers of in, sorted.
func consumers(in map[string]InboxFacts) []string {
	out := make([]string, 0, len(in))
	for c := range in {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// redeliveries counts, from the broker's counters and the inboxes' rows,
// the copies the inboxes suppressed, the retries after handler failures
// and the redeliveries after kills, and checks the dedupe records: one
// claim per distinct message, dead letters included (their ids stay
// claimed); fewer while in flight, more never.
func (j *judge) redeliveries() {
	r := &j.r
	var attempts, deadAttempts int64
	for _, in := range j.f.Store.Inbox {
		attempts += in.Attempts
		r.Quarantined += in.Quarantined
		for _, d := range in.DeadLetters {
			if !d.Invalid && d.Attempts > 0 {
				deadAttempts++ // its last failure was dead-lettered, not retried
			}
		}
	}
	r.Retries = attempts - deadAttempts
	b := j.f.Broker
	r.DuplicatesSuppressed = sub(b.OrdersStored, uint64(r.Attempted+r.Poison)) + sub(b.PaymentsStored, uint64(r.Attempted))
	r.Reprocessed = max(sub(b.OrdersDelivered, b.OrdersStored)+sub(b.PaymentsDelivered, b.PaymentsStored)-r.Retries, 0)

	for _, c := range []struct {
		consumer string
		want     int64
		what     string
	}{
		{payments.OrdersConsumer, r.Attempted + j.matchedDead, "orders and malformed inputs"},
		{payments.PaymentsConsumer, r.Attempted, "one per charge"},
	} {
		if got := j.f.Store.Inbox[c.consumer].Claims; got > c.want || (got != c.want && !j.f.Incomplete) {
			r.fail("%d dedupe records for consumer %q, want %d (%s)", got, c.consumer, c.want, c.what)
		}
	}
}

func sub(a, b uint64) int64 {
	if a < b {
		return 0
	}
	return int64(a - b)
}

// verdict adds the failures of the counts and sets OK.
func (j *judge) verdict() {
	r := &j.r
	r.PartialCommits = j.f.Store.Unsent
	drained := !j.f.Incomplete
	for _, c := range []struct {
		n      int64
		always bool // must hold at every moment; else once drained
		format string
	}{
		{r.Duplicated, true, "%d duplicate effects (ledger or payment rows beyond the first per order)"},
		{r.Unexpected, true, "%d orders applied that were never intended"},
		{r.WrongAmounts, true, "%d ledger rows or charges with another account or amount than intended"},
		{r.BalanceMismatches, true, "%d accounts whose balance is not initial minus ledger (and, once drained, minus charges)"},
		{r.ChargeAnomalies, true, "%d orders not charged exactly once (provider charges and payment rows)"},
		{r.Quarantined, true, "%d messages quarantined (same id, different payload)"},
		{r.Attempted - r.Acknowledged, false, "%d orders intended but never stored by the broker"},
		{r.PartialCommits, false, "%d outbox rows unsent at the end"},
	} {
		if c.n > 0 && (c.always || drained) {
			r.fail(c.format, c.n)
		}
	}
	if r.Lost > 0 && drained {
		r.fail("%d acknowledged orders lost (%d never applied, %d applied and never paid)", r.Lost, r.Lost-j.unpaid, j.unpaid)
	}
	r.OK = len(r.Failures) == 0 && drained
}

// inFlightAtKill reports whether a kill in times (sorted) fell between
// created and done (microseconds).
func inFlightAtKill(times []time.Time, createdUS, doneUS int64) bool {
	i, _ := slices.BinarySearchFunc(times, createdUS, func(t time.Time, us int64) int {
		switch u := t.UnixMicro(); {
		case u < us:
			return -1
		case u > us:
			return 1
		}
		return 0
	})
	return i < len(times) && times[i].UnixMicro() <= doneUS
}
