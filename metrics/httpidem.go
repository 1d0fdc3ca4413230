package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/httpidem"
)

// HTTPIdemHook returns the hook that feeds m from an httpidem middleware:
// add it to httpidem.Config.Hooks. name names the middleware (the API, the
// route group) in the series, as a consumer's name does for an inbox: the
// HTTP edge is one more place where duplicates are caught and where the
// dedupe store can fail. Each outcome counts in
// eos_httpidem_requests_total{name, outcome}; a replay also in
// eos_duplicates_suppressed_total{consumer=name} (a retry that did not run
// the handler again) and a store error in
// eos_dedupe_store_errors_total{consumer=name}, so that the SLIs and their
// alerts cover the edge with no rule of their own. It does not block.
func (m *Metrics) HTTPIdemHook(name string) httpidem.Hook {
	return httpidemHook{m: m, name: name}
}

type httpidemHook struct {
	m    *Metrics
	name string
}

var _ httpidem.OutcomeHook = httpidemHook{}

// OnOutcome implements httpidem.OutcomeHook.
func (h httpidemHook) OnOutcome(_ context.Context, o httpidem.Outcome, _ error) {
	h.m.httpidem.WithLabelValues(h.name, string(o)).Inc()
	switch o {
	case httpidem.OutcomeReplayed:
		h.m.duplicates.WithLabelValues(h.name).Inc()
	case httpidem.OutcomeStoreError:
		h.m.storeErrors.WithLabelValues(h.name).Inc()
	}
}

// newHTTPIdemCollectors makes the middleware's collector.
func newHTTPIdemCollectors(m *Metrics) {
	m.httpidem = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eos_httpidem_requests_total",
		Help: "Requests the Idempotency-Key middleware applied to, by outcome: stored (the handler ran, its response stored), " +
			"released (ran, not stored: the key is free for a retry), replayed, in_progress (409), mismatch (422), " +
			"refused (no or bad key, body too large), store_error, fenced (the lease was taken over while the handler ran)."},
		[]string{"name", "outcome"})
}
