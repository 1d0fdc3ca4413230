package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// gaugeOf is one gauge a scrapeCollector exports: its name, help and how
// its value is read off the stats T.
type gaugeOf[T any] struct {
	name, help string
	value      func(T) float64
}

// scrapeCollector reads some stats T at each scrape, within
// Config.OutboxStatsTimeout, and exports gauges of them, all with the same
// constant labels. A read that fails or times out counts errors and
// leaves the gauges out of that scrape, so no stale value is shown and the
// rest of the scrape goes on. WatchOutbox, WatchInboxStore and
// WatchConsumer are made of it.
type scrapeCollector[T any] struct {
	m      *Metrics
	read   func(context.Context) (T, error)
	descs  []*prometheus.Desc
	gauges []gaugeOf[T]
	errors prometheus.Counter
}

// watch registers a scrapeCollector of read on m's registerer; what names
// the collector in a *RegisterError.
func watch[T any](m *Metrics, what string, labels prometheus.Labels, read func(context.Context) (T, error),
	errName, errHelp string, gauges ...gaugeOf[T]) error {
	c := &scrapeCollector[T]{m: m, read: read, gauges: gauges,
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: errName, Help: errHelp, ConstLabels: labels})}
	for _, g := range gauges {
		c.descs = append(c.descs, prometheus.NewDesc(g.name, g.help, nil, labels))
	}
	if err := m.reg.Register(c); err != nil {
		return &RegisterError{Metric: what, Err: err}
	}
	return nil
}

// Describe implements prometheus.Collector.
func (c *scrapeCollector[T]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *scrapeCollector[T]) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.m.cfg.OutboxStatsTimeout)
	st, err := c.read(ctx)
	cancel()
	if err != nil {
		c.errors.Inc()
		ch <- c.errors
		return
	}
	for i, g := range c.gauges {
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, g.value(st))
	}
	ch <- c.errors
}
