package check

import (
	"fmt"
	"math"
	"reflect"
	"slices"
)

// Report is the checker's verdict on one run: every count comes from the
// Facts.
type Report struct {
	// Attempted: distinct orders the intent log announced; Acknowledged:
	// of those, the ones the broker stored; Applied: of those, the ones
	// with a ledger row; MissedApplies: attempted and not applied.
	Attempted     int64 `json:"attempted"`
	Acknowledged  int64 `json:"acknowledged"`
	Applied       int64 `json:"applied"`
	MissedApplies int64 `json:"missed_applies"`
	// Lost: acknowledged and never applied, or applied and never recorded
	// by the payment worker (counted once the pipeline drained).
	Lost int64 `json:"lost"`
	// Duplicated: ledger and payment rows beyond the first per order.
	Duplicated int64 `json:"duplicated"`
	// Unexpected: orders applied (ledger or payment rows) that were never
	// intended.
	Unexpected int64 `json:"unexpected"`
	// WrongAmounts: ledger rows and provider charges whose account or
	// amount is not the order's.
	WrongAmounts int64 `json:"wrong_amounts"`
	// Indeterminate: orders with a publish that ended without a PubAck
	// (error, timeout, broker restart), so the producer could not know
	// whether the broker held them and sent them again. Recovered: of
	// those, the ones applied.
	Indeterminate int64 `json:"indeterminate"`
	Recovered     int64 `json:"recovered"`
	// InFlightAtFault: orders created before and applied after a kill or
	// a failpoint crash of a worker (an upper bound on the orders a worker
	// fault interrupted: the checker cannot see which batch a dead worker
	// held).
	InFlightAtFault int64 `json:"in_flight_at_fault"`

	// Charged: attempted orders the provider charged at least once;
	// ChargedOnce: charged exactly once and recorded once by the payment
	// worker; ChargeAnomalies: orders charged or recorded twice, charged
	// though never intended, or, once drained, not charged once;
	// DuplicateCharges: provider charges beyond the first per order.
	Charged          int64 `json:"charged"`
	ChargedOnce      int64 `json:"charged_once"`
	ChargeAnomalies  int64 `json:"charge_anomalies"`
	DuplicateCharges int64 `json:"duplicate_charges"`

	// Conservation: the sum of balances is the initial sum minus the
	// ledger's. BalanceMismatches: accounts whose balance is not their
	// initial one minus their ledger rows (and, once drained, minus their
	// charges).
	Conservation      bool  `json:"conservation"`
	BalanceMismatches int64 `json:"balance_mismatches"`

	// eos's own state. PartialCommits: outbox rows unsent at the end.
	// Poison: malformed inputs intended; DeadLettered: dead-lettered
	// inputs, an input stored twice by the broker (an id-less resend)
	// counted once.
	PartialCommits int64            `json:"partial_commits"`
	Quarantined    int64            `json:"quarantined"`
	Poison         int64            `json:"poison"`
	DeadLettered   int64            `json:"dead_lettered"`
	DeadLetters    []DeadLetterInfo `json:"dead_letters,omitempty"`

	// DuplicatesSuppressed: copies the broker stored beyond the first,
	// which the inboxes turned into no-ops. Retries: redeliveries asked
	// for after a handler failure. Reprocessed: other redeliveries, after
	// a worker died holding messages.
	DuplicatesSuppressed int64 `json:"duplicates_suppressed"`
	Retries              int64 `json:"retries"`
	Reprocessed          int64 `json:"reprocessed"`

	// SLIs. Latency from an order's creation to its ledger commit
	// (P50/P99) and to the provider's charge (ChargeP50/ChargeP99), in
	// milliseconds; EventsPerS: orders applied per second, from the first
	// order's creation to the last ledger commit.
	DuplicateEffectsPerMillion float64 `json:"duplicate_effects_per_million"`
	P50ms                      float64 `json:"p50_ms"`
	P99ms                      float64 `json:"p99_ms"`
	ChargeP50ms                float64 `json:"charge_p50_ms"`
	ChargeP99ms                float64 `json:"charge_p99_ms"`
	EventsPerS                 float64 `json:"events_per_s"`

	// Incomplete: the run stopped before the pipeline drained (see
	// Facts.Incomplete); the caller says why in IncompleteReason, and OK
	// is false.
	Incomplete       bool   `json:"incomplete,omitempty"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`
	OK               bool   `json:"ok"`
	// Failures says, in words, which invariant failed.
	Failures []string `json:"failures,omitempty"`
}

// DeadLetterInfo is one dead letter, for the report.
type DeadLetterInfo struct {
	Consumer string `json:"consumer"`
	ID       string `json:"id"`
	Error    string `json:"error"`
}

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Injected counts what a run did to itself: the faults injected and the
// producer's misbehaviour. The harness fills it.
type Injected struct {
	Kills            int   `json:"kills"`             // SIGKILLs of workers by the supervisor
	FailpointCrashes int   `json:"failpoint_crashes"` // SIGKILLs at failpoints
	WorkerRestarts   int   `json:"worker_restarts"`
	BrokerRestarts   int   `json:"broker_restarts"`
	Republished      int64 `json:"republished"`       // copies past the dedupe window
	BrokerDuplicates int64 `json:"broker_duplicates"` // retries the broker dropped
	ProviderReplays  int64 `json:"provider_replays"`  // charges answered from the idempotency record
	ProxyFaults      int   `json:"proxy_faults"`      // resets + latency + blackholes
	ProxyResets      int   `json:"proxy_resets"`      // every connection through a proxy closed
	ProxyLatency     int   `json:"proxy_latency"`     // latency added for a while
	ProxyBlackholes  int   `json:"proxy_blackholes"`  // outages: nothing forwarded for a while
}

// Run is one checked run: the checker's report, what the run injected, and
// what the workers reported.
type Run struct {
	Run  int    `json:"run,omitempty"`
	Seed uint64 `json:"seed"`
	Report
	Injected
	// DedupeStoreErrors: the inboxes' store failures, each a stall that
	// acknowledged nothing, as the workers' inbox ErrorHooks reported
	// them (errors injected at driver.begin count too).
	DedupeStoreErrors int64   `json:"dedupe_store_errors"`
	ElapsedS          float64 `json:"elapsed_s"`
}

// Total sums runs; P50/P99 are the worst run's.
type Total struct {
	Run
	// IncompleteRuns timed out before their pipeline drained.
	IncompleteRuns int `json:"incomplete_runs,omitempty"`
}

// Sum totals runs. The total holds when every run does (and there is one).
func Sum(runs []Run) Total {
	var t Total
	t.Conservation, t.OK = true, len(runs) > 0
	for _, r := range runs {
		t.add(r)
		if r.Incomplete {
			t.IncompleteRuns++
		}
		for _, f := range r.Failures {
			t.Failures = append(t.Failures, fmt.Sprintf("run %d: %s", r.Run, f))
		}
	}
	t.DuplicateEffectsPerMillion = perMillion(t.Duplicated, t.Applied)
	t.ElapsedS = math.Round(t.ElapsedS*10) / 10
	return t
}

// add adds r's counts to t's: every integer of the Report and of
// Injected is a count; the latencies are the worst run's.
func (t *Total) add(r Run) {
	sumInts(reflect.ValueOf(&t.Report).Elem(), reflect.ValueOf(r.Report))
	sumInts(reflect.ValueOf(&t.Injected).Elem(), reflect.ValueOf(r.Injected))
	a, b := &t.Report, r.Report
	a.P50ms, a.P99ms = max(a.P50ms, b.P50ms), max(a.P99ms, b.P99ms)
	a.ChargeP50ms, a.ChargeP99ms = max(a.ChargeP50ms, b.ChargeP50ms), max(a.ChargeP99ms, b.ChargeP99ms)
	a.Conservation = a.Conservation && b.Conservation
	a.OK = a.OK && b.OK
	t.DedupeStoreErrors += r.DedupeStoreErrors
	t.ElapsedS += r.ElapsedS
}

// sumInts adds each integer field of src to dst's (structs of one type).
func sumInts(dst, src reflect.Value) {
	for i := range src.NumField() {
		if k := src.Field(i).Kind(); k == reflect.Int || k == reflect.Int64 {
			dst.Field(i).SetInt(dst.Field(i).Int() + src.Field(i).Int())
		}
	}
}

// perMillion is n per million of of, rounded to 0.1.
func perMillion(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(of)*1e6*10) / 10
}

// percentile returns the q-quantile of v (nearest rank), rounded to 0.1;
// it sorts v.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return math.Round(v[min(max(i, 0), len(v)-1)]*10) / 10
}
