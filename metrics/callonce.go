package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/callonce"
)

// CallOnceHook returns the hook that feeds m from a callonce.Caller: add
// it to callonce.Config.Hooks. name names the calls (the external API, the
// consumer making them: "charges") in the series; give it a name of its
// own, not the name of the inbox consumer that stages the calls, or a
// redelivery counts twice in eos_duplicates_suppressed_total (once when
// the call is replayed, once when the inbox suppresses it).
//
// Each Do's end counts in eos_callonce_calls_total{name, outcome}
// (callonce.Ending: called, failed, resumed, replayed, unknown,
// in_progress, mismatch, lease_lost, too_large, invalid, canceled,
// store_error); a replay also in eos_duplicates_suppressed_total
// {consumer=name} (a call not made again), and each failure of the store,
// whether or not it ended a Do (a renewal that failed and was retried
// counts), in eos_dedupe_store_errors_total{consumer=name}: the SLIs and
// their alerts cover the outbound edge with no rule of their own. It does
// not block.
func (m *Metrics) CallOnceHook(name string) callonce.Hook {
	return callonceHook{m: m, name: name}
}

type callonceHook struct {
	m    *Metrics
	name string
}

var (
	_ callonce.EndHook        = callonceHook{}
	_ callonce.StoreErrorHook = callonceHook{}
)

// OnEnd implements callonce.EndHook.
func (h callonceHook) OnEnd(_ context.Context, e callonce.End) {
	h.m.callonce.WithLabelValues(h.name, string(e.Ending)).Inc()
	if e.Ending == callonce.EndReplayed {
		h.m.duplicates.WithLabelValues(h.name).Inc()
	}
}

// OnStoreError implements callonce.StoreErrorHook.
func (h callonceHook) OnStoreError(context.Context, string, error) {
	h.m.storeErrors.WithLabelValues(h.name).Inc()
}

// newCallOnceCollectors makes the callers' collector.
func newCallOnceCollectors(m *Metrics) {
	m.callonce = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eos_callonce_calls_total",
		Help: "Ends of callonce's Do (one per call a message asks for), by outcome: called (a Succeeded answer recorded), " +
			"failed (a definitive refusal recorded), resumed (an answer recorded for a key an earlier owner left unfinished: " +
			"calls may have been repeated), replayed (recorded before: no call), unknown (no definitive answer: retried later " +
			"with the same key), in_progress, mismatch, lease_lost, too_large, invalid, canceled, store_error."},
		[]string{"name", "outcome"})
}
