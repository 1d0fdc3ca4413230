package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/compact"
)

// CompactHook returns the hook that feeds m from a compactor: add it to
// compact.Config.Hooks. It implements compact.PassHook and does not block.
func (m *Metrics) CompactHook() compact.Hook { return compactHook{m} }

type compactHook struct{ m *Metrics }

var _ compact.PassHook = compactHook{}

// Values of eos_compact_deleted_rows_total's kind label.
var compactKinds = []string{"inbox", "failures", "outbox", "quarantine", "dead_letters", "dedupe"}

// OnPass implements compact.PassHook.
func (h compactHook) OnPass(_ context.Context, p compact.Pass) {
	d := p.Deleted
	for i, n := range []int64{d.Inbox, d.Failures, d.Outbox, d.Quarantine, d.DeadLetters, d.Dedupe} {
		if n > 0 {
			h.m.compactDeleted.WithLabelValues(compactKinds[i]).Add(float64(n))
		}
	}
	if p.Err != nil {
		h.m.compactErrors.Inc()
		return
	}
	h.m.compactLast.Set(float64(p.Ended.UnixNano()) / 1e9)
}

// newCompactCollectors makes the compactor's collectors.
func newCompactCollectors(m *Metrics) {
	m.compactDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eos_compact_deleted_rows_total",
		Help: "Rows the compactor deleted, by kind: inbox (dedupe records), failures (attempt counters), outbox (sent rows), " +
			"quarantine, dead_letters, dedupe (package dedupe's records past their expiry)."}, []string{"kind"})
	m.compactErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "eos_compact_errors_total",
		Help: "Compaction passes that failed on the store; the next pass retries."})
	m.compactLast = prometheus.NewGauge(prometheus.GaugeOpts{Name: "eos_compact_last_success_timestamp_seconds",
		Help: "When the last compaction pass that did not fail ended (Unix seconds); 0 before the first."})
}
