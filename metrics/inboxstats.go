package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
)

// InboxStatsFunc reads the rows an inbox keeps for one consumer: an
// inbox.Processor's Stats method, whatever its transaction type.
type InboxStatsFunc func(ctx context.Context) (inbox.Stats, error)

// WatchInboxStore registers, on m's registerer, gauges of the rows one
// consumer's inbox keeps, labelled consumer: eos_inbox_claims (dedupe
// records), eos_inbox_dead_letters and eos_inbox_quarantine (the rows
// there now, where eos_dead_lettered_total and eos_quarantined_total count
// arrivals since the process started), with eos_inbox_stats_errors_total.
// They are read at scrape time through stats (pass an inbox.Processor's
// Stats), within Config.OutboxStatsTimeout; a read that fails counts an
// error and leaves the gauges out of that scrape. Being the store's, they
// are the same from any process: watch a consumer in one of them, such
// as eos serve, which sees no batch of its own.
//
// Each read counts the consumer's claims: its cost grows with the claims
// kept (see compact for their retention). WatchInbox, in contrast, reads
// what one processor is doing, from memory. A second WatchInboxStore of
// the same consumer on one registry returns a *RegisterError; an empty
// consumer or a nil stats, a *eos.ConfigError.
func (m *Metrics) WatchInboxStore(consumer string, stats InboxStatsFunc) error {
	switch {
	case consumer == "":
		return &eos.ConfigError{Field: "metrics.WatchInboxStore consumer", Reason: "empty"}
	case stats == nil:
		return &eos.ConfigError{Field: "metrics.WatchInboxStore stats", Reason: "nil"}
	}
	return watch(m, "eos_inbox_claims{consumer="+consumer+"}", prometheus.Labels{"consumer": consumer}, stats,
		"eos_inbox_stats_errors_total", "Reads of an inbox's stored rows for a scrape that failed or timed out; the gauges were left out.",
		gaugeOf[inbox.Stats]{"eos_inbox_claims", "Dedupe records the inbox keeps for the consumer: ids claimed and not compacted.",
			func(st inbox.Stats) float64 { return float64(st.Claims) }},
		gaugeOf[inbox.Stats]{"eos_inbox_dead_letters", "Dead letters of the consumer in the store now, waiting to be requeued or discarded.",
			func(st inbox.Stats) float64 { return float64(st.DeadLetters) }},
		gaugeOf[inbox.Stats]{"eos_inbox_quarantine", "Quarantined deliveries of the consumer in the store now.",
			func(st inbox.Stats) float64 { return float64(st.Quarantined) }})
}
