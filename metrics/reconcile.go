package metrics

import (
	"hash/maphash"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/reconcile"
)

// DefaultReconcileMemory is the default of Config.ReconcileMemory.
const DefaultReconcileMemory = 100_000

// reconcileMetrics are the collectors fed by reconciliation runs.
type reconcileMetrics struct {
	missed      *prometheus.CounterVec // consumer
	duplicates  *prometheus.CounterVec // consumer
	unexpected  *prometheus.CounterVec // consumer
	partial     *prometheus.CounterVec // outbox
	runs        *prometheus.CounterVec // consumer, result
	lastSuccess *prometheus.GaugeVec   // consumer
	reported    *reported
}

func newReconcileMetrics(memory int) (*reconcileMetrics, []struct {
	name string
	c    prometheus.Collector
}) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	r := &reconcileMetrics{
		missed: counter("eos_missed_apply_total",
			"Messages reconciliation found in the source and never applied by the consumer; each counted once.", "consumer"),
		duplicates: counter("eos_duplicate_effects_total",
			"Ids reconciliation found applied more than once in the consumer's effects (Duplicates query); each counted once.", "consumer"),
		unexpected: counter("eos_unexpected_applies_total",
			"Claims reconciliation found for ids the source does not hold; each counted once.", "consumer"),
		partial: counter("eos_partial_commits_total",
			"Outbox rows reconciliation found committed but still unsent past its threshold; each counted once.", "outbox"),
		runs: counter("eos_reconcile_runs_total",
			"Reconciliation runs, by result: ok (nothing found), findings, error.", "consumer", "result"),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eos_reconcile_last_success_timestamp_seconds",
			Help: "When the consumer's last reconciliation run completed (with or without findings), Unix seconds."}, []string{"consumer"}),
		reported: newReported(memory),
	}
	return r, []struct {
		name string
		c    prometheus.Collector
	}{
		{"eos_missed_apply_total", r.missed},
		{"eos_duplicate_effects_total", r.duplicates},
		{"eos_unexpected_applies_total", r.unexpected},
		{"eos_partial_commits_total", r.partial},
		{"eos_reconcile_runs_total", r.runs},
		{"eos_reconcile_last_success_timestamp_seconds", r.lastSuccess},
	}
}

// ReconcileHook returns the hook that feeds m from reconciliation runs:
// add it to reconcile.Config.Hooks. It implements reconcile.FindingHook and
// reconcile.DoneHook.
//
// A scheduled reconciliation finds an outstanding problem again at every
// run; the finding counters count each (kind, consumer or outbox, id) once.
// m remembers the last Config.ReconcileMemory findings it counted; past
// that bound the oldest are forgotten, and one of them found again is
// counted again: the counters may overcount after that many distinct
// findings, never undercount.
func (m *Metrics) ReconcileHook() reconcile.Hook { return reconcileHook{m} }

type reconcileHook struct{ m *Metrics }

var (
	_ reconcile.FindingHook = reconcileHook{}
	_ reconcile.DoneHook    = reconcileHook{}
)

// ReconcileFinding implements reconcile.FindingHook.
func (h reconcileHook) ReconcileFinding(f reconcile.Finding) {
	r := h.m.reconcile
	label := f.Consumer
	if f.Kind == reconcile.Partial {
		label = f.Outbox
	}
	if !r.reported.first(string(f.Kind), label, f.ID) {
		return
	}
	switch f.Kind {
	case reconcile.Missed:
		r.missed.WithLabelValues(label).Inc()
	case reconcile.Duplicate:
		r.duplicates.WithLabelValues(label).Inc()
	case reconcile.Unexpected:
		r.unexpected.WithLabelValues(label).Inc()
	case reconcile.Partial:
		r.partial.WithLabelValues(label).Inc()
	}
}

// ReconcileDone implements reconcile.DoneHook. A completed run makes the
// consumer's finding series exist (at zero when nothing was found), so
// that an alert on them has a series to read.
func (h reconcileHook) ReconcileDone(rep *reconcile.Report, err error) {
	r := h.m.reconcile
	result := "ok"
	switch {
	case err != nil:
		r.runs.WithLabelValues(rep.Consumer, "error").Inc()
		return
	case !rep.OK():
		result = "findings"
	}
	r.runs.WithLabelValues(rep.Consumer, result).Inc()
	r.missed.WithLabelValues(rep.Consumer)
	r.unexpected.WithLabelValues(rep.Consumer)
	if rep.DuplicatesChecked {
		r.duplicates.WithLabelValues(rep.Consumer)
	}
	if rep.PartialChecked {
		r.partial.WithLabelValues(rep.Outbox)
	}
	r.lastSuccess.WithLabelValues(rep.Consumer).Set(float64(rep.FinishedAt.UnixNano()) / 1e9)
}

// reported is a bounded memory of the findings counted: a set of hashes
// and a ring of the same hashes in the order they were added, the oldest
// overwritten first.
type reported struct {
	mu   sync.Mutex
	seed maphash.Seed
	set  map[uint64]struct{}
	ring []uint64
	size int // the bound
	pos  int // the oldest entry, once the ring is full
}

func newReported(size int) *reported {
	return &reported{seed: maphash.MakeSeed(), set: make(map[uint64]struct{}, min(size, 1024)), ring: make([]uint64, 0, min(size, 1024)), size: size}
}

// first reports whether the finding is new to the memory, and remembers it.
func (r *reported) first(kind, label, id string) bool {
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(kind)
	h.WriteByte(0)
	h.WriteString(label)
	h.WriteByte(0)
	h.WriteString(id)
	k := h.Sum64()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[k]; ok {
		return false
	}
	if len(r.ring) < r.size {
		r.ring = append(r.ring, k)
	} else {
		delete(r.set, r.ring[r.pos])
		r.ring[r.pos] = k
		r.pos = (r.pos + 1) % r.size
	}
	r.set[k] = struct{}{}
	return true
}
