package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
)

// ConsumerStats is a broker consumer's lag, as WatchConsumer exports it.
type ConsumerStats = inbox.SourceStats

// ConsumerStatsFunc reads a broker consumer's lag: natsjs.ConsumerStats
// makes one for a JetStream consumer.
type ConsumerStatsFunc func(ctx context.Context) (ConsumerStats, error)

// WatchConsumer registers, on m's registerer, the gauges of one broker
// consumer's lag, labelled consumer and transport:
// eos_consumer_pending_messages (held by the broker, not delivered yet)
// and eos_consumer_ack_pending_messages (delivered, not acknowledged:
// in flight or waiting for redelivery), with
// eos_consumer_stats_errors_total. Like WatchOutbox, they are read at
// scrape time through stats, within Config.OutboxStatsTimeout; a read that
// fails counts an error and leaves the gauges out of that scrape.
//
// The lag is the broker's, so one process watching each consumer is
// enough, whatever the number of processes consuming. A second
// WatchConsumer with the same consumer and transport on one registry
// returns a *RegisterError; an empty consumer or transport or a nil stats,
// a *eos.ConfigError.
func (m *Metrics) WatchConsumer(consumer, transport string, stats ConsumerStatsFunc) error {
	switch {
	case consumer == "":
		return &eos.ConfigError{Field: "metrics.WatchConsumer consumer", Reason: "empty"}
	case transport == "":
		return &eos.ConfigError{Field: "metrics.WatchConsumer transport", Reason: "empty"}
	case stats == nil:
		return &eos.ConfigError{Field: "metrics.WatchConsumer stats", Reason: "nil"}
	}
	return watch(m, "eos_consumer_pending_messages{consumer="+consumer+",transport="+transport+"}",
		prometheus.Labels{"consumer": consumer, "transport": transport}, stats,
		"eos_consumer_stats_errors_total", "Reads of a broker consumer's lag for a scrape that failed or timed out; the gauges were left out.",
		gaugeOf[ConsumerStats]{"eos_consumer_pending_messages", "Messages the broker holds for the consumer and has not delivered yet: its lag.",
			func(st ConsumerStats) float64 { return float64(st.Pending) }},
		gaugeOf[ConsumerStats]{"eos_consumer_ack_pending_messages",
			"Messages delivered to the consumer and not acknowledged yet: in flight, or waiting for redelivery.",
			func(st ConsumerStats) float64 { return float64(st.AckPending) }})
}
