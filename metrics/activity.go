package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
)

// ActivityFunc reads what an inbox processor is doing: an
// inbox.Processor's Activity method, whatever its transaction type.
type ActivityFunc func() inbox.Activity

// WatchInbox registers, on m's registerer, the series of what one inbox
// processor is doing, labelled consumer=consumer, read through activity
// (pass an inbox.Processor's Activity) at each scrape:
// eos_inbox_in_flight_messages (deliveries held and not settled),
// eos_inbox_stalled (1 while a batch is retried after a store failure,
// nothing of it acknowledged) and eos_inbox_stalls_total. Reading them
// touches no store, so every process running an inbox can watch it.
//
// A second WatchInbox with the same consumer on one registry returns a
// *RegisterError; an empty consumer or a nil activity, a *eos.ConfigError.
func (m *Metrics) WatchInbox(consumer string, activity ActivityFunc) error {
	if consumer == "" {
		return &eos.ConfigError{Field: "metrics.WatchInbox consumer", Reason: "empty"}
	}
	if activity == nil {
		return &eos.ConfigError{Field: "metrics.WatchInbox activity", Reason: "nil"}
	}
	label := prometheus.Labels{"consumer": consumer}
	c := &activityCollector{
		activity: activity,
		inFlight: prometheus.NewDesc("eos_inbox_in_flight_messages",
			"Deliveries the inbox holds and has not settled yet: the batch in process (a stalled one included) and the one fetched ahead.",
			nil, label),
		stalled: prometheus.NewDesc("eos_inbox_stalled",
			"1 while the inbox retries a batch after a store failure (nothing of it acknowledged meanwhile), else 0.", nil, label),
		stalls: prometheus.NewDesc("eos_inbox_stalls_total",
			"Store failures that stalled the inbox, each counted once however many retries it took.", nil, label),
	}
	if err := m.reg.Register(c); err != nil {
		return &RegisterError{Metric: "eos_inbox_in_flight_messages{consumer=" + consumer + "}", Err: err}
	}
	return nil
}

// activityCollector reads one processor's Activity at each scrape.
type activityCollector struct {
	activity                  ActivityFunc
	inFlight, stalled, stalls *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *activityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inFlight
	ch <- c.stalled
	ch <- c.stalls
}

// Collect implements prometheus.Collector.
func (c *activityCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.activity()
	stalled := 0.0
	if a.Stalled > 0 {
		stalled = 1
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(a.InFlight))
	ch <- prometheus.MustNewConstMetric(c.stalled, prometheus.GaugeValue, stalled)
	ch <- prometheus.MustNewConstMetric(c.stalls, prometheus.CounterValue, float64(a.Stalls))
}
