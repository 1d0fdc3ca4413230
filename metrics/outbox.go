package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
)

// OutboxStatsFunc reads an outbox's stats: an outbox.Outbox's Stats
// method, whatever its transaction type.
type OutboxStatsFunc func(ctx context.Context) (outbox.Stats, error)

// WatchOutbox registers, on m's registerer, the gauges of one outbox's
// depth, labelled outbox=name: eos_outbox_unsent, eos_outbox_parked and
// eos_outbox_oldest_unsent_seconds (the age of the oldest unsent row by
// Config.Test.Now, 0 when none), with eos_outbox_stats_errors_total. They
// are read at scrape time, through stats (pass an outbox.Outbox's Stats),
// each read bounded by Config.OutboxStatsTimeout; a read that fails or
// times out counts an error and leaves the gauges out of that scrape, so
// no stale depth is shown and the rest of the scrape goes on.
//
// Each scrape reads the stats once per watched outbox, counting its unsent
// rows: the cost grows with the backlog, and on SQLite the read holds the
// write lock (Stats begins an ordinary transaction). Watch an outbox in
// one process, not in every process sharing it. A second
// WatchOutbox with the same name on one registry returns a
// *RegisterError; an empty name or a nil stats, a *eos.ConfigError.
func (m *Metrics) WatchOutbox(name string, stats OutboxStatsFunc) error {
	if name == "" {
		return &eos.ConfigError{Field: "metrics.WatchOutbox name", Reason: "empty"}
	}
	if stats == nil {
		return &eos.ConfigError{Field: "metrics.WatchOutbox stats", Reason: "nil"}
	}
	return watch(m, "eos_outbox_unsent{outbox="+name+"}", prometheus.Labels{"outbox": name}, stats,
		"eos_outbox_stats_errors_total", "Reads of the outbox's stats for a scrape that failed or timed out; the gauges were left out.",
		gaugeOf[outbox.Stats]{"eos_outbox_unsent", "Outbox rows not sent yet, parked rows and the rows waiting behind them included.",
			func(st outbox.Stats) float64 { return float64(st.Unsent) }},
		gaugeOf[outbox.Stats]{"eos_outbox_oldest_unsent_seconds", "Age of the outbox's oldest unsent row (since its enqueue); 0 when none.",
			func(st outbox.Stats) float64 {
				if st.OldestUnsent.IsZero() {
					return 0
				}
				return max(0, m.cfg.Test.Now().Sub(st.OldestUnsent).Seconds())
			}},
		gaugeOf[outbox.Stats]{"eos_outbox_parked", "Outbox rows the relay parked as unpublishable, waiting to be requeued or discarded.",
			func(st outbox.Stats) float64 { return float64(st.Parked) }})
}
