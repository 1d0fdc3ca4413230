package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
)

// Metrics holds eos's collectors, registered on one registerer. Make it
// with New; feed it through InboxHook, RelayHook, ReconcileHook,
// CompactHook, HTTPIdemHook and CallOnceHook. Safe for concurrent use.
type Metrics struct {
	cfg Config
	reg prometheus.Registerer // for the collectors added later (WatchOutbox)

	messages     *prometheus.CounterVec // consumer, outcome
	duplicates   *prometheus.CounterVec // consumer
	quarantined  *prometheus.CounterVec // consumer
	deadLettered *prometheus.CounterVec // consumer
	storeErrors  *prometheus.CounterVec // consumer
	settleErrors *prometheus.CounterVec // consumer
	reprocessed  *prometheus.CounterVec // consumer
	endToEnd     *prometheus.HistogramVec
	batchSize    *prometheus.HistogramVec
	batchSeconds *prometheus.HistogramVec
	phaseSeconds *prometheus.HistogramVec // consumer, phase

	published     *prometheus.CounterVec // topic
	relayDelay    *prometheus.HistogramVec
	publishErrors *prometheus.CounterVec // topic
	relayStore    prometheus.Counter
	parked        *prometheus.CounterVec // topic
	brokerDups    *prometheus.CounterVec // topic

	compactDeleted *prometheus.CounterVec // kind
	compactErrors  prometheus.Counter
	compactLast    prometheus.Gauge

	httpidem *prometheus.CounterVec // name, outcome
	callonce *prometheus.CounterVec // name, outcome

	reconcile *reconcileMetrics

	consumers sync.Map // consumer name → *consumerSeries
	topics    sync.Map // topic → *topicSeries
}

// New makes the collectors of eos's metrics and registers them on reg. A
// registerer that refuses one (a name registered already) makes New
// unregister those it had registered and return a *RegisterError; an
// invalid cfg gives a *eos.ConfigError.
func New(reg prometheus.Registerer, cfg Config) (*Metrics, error) {
	if reg == nil {
		return nil, &eos.ConfigError{Field: "metrics.New registerer", Reason: "nil (eos never uses the global registry: pass prometheus.NewRegistry() or your own)"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	m := &Metrics{cfg: cfg, reg: reg}
	consumer := []string{"consumer"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	m.messages = counter("eos_inbox_messages_total",
		"Deliveries the inbox settled, by outcome (applied, duplicate, quarantined, retry, dead_lettered).", "consumer", "outcome")
	m.duplicates = counter("eos_duplicates_suppressed_total",
		"Deliveries of an already applied message (same id, same fingerprint), acked without applying them again.", consumer...)
	m.quarantined = counter("eos_quarantined_total",
		"Deliveries reusing an applied message's id with a different fingerprint, stored in quarantine and not applied.", consumer...)
	m.deadLettered = counter("eos_dead_lettered_total",
		"Messages moved to the dead-letter table: failed too often, failed permanently, or invalid.", consumer...)
	m.storeErrors = counter("eos_dedupe_store_errors_total",
		"Failures of the store on the inbox's own path (claim, record, quarantine, admin calls); processing stalls meanwhile.", consumer...)
	m.settleErrors = counter("eos_inbox_settle_errors_total",
		"Acks and nacks the transport refused after the commit; the redeliveries will be suppressed.", consumer...)
	m.reprocessed = counter("eos_reprocessed_total",
		"Redeliveries the inbox settled (deliveries after the first of a message, whatever their outcome), "+
			"as the transport counts them; transports that do not count deliveries add nothing.", consumer...)
	m.endToEnd = histogram("eos_end_to_end_seconds",
		"From a message's creation (its CreatedAt) to the commit of the batch that applied it; messages without CreatedAt are not observed.",
		cfg.LatencyBuckets, consumer...)
	m.batchSize = histogram("eos_inbox_batch_size", "Deliveries per committed inbox batch.", cfg.BatchSizeBuckets, consumer...)
	m.batchSeconds = histogram("eos_inbox_batch_seconds",
		"From the start of an inbox batch to its commit, every round included.", cfg.BatchSecondsBuckets, consumer...)
	m.phaseSeconds = histogram("eos_inbox_phase_seconds",
		"Time of an inbox batch in each phase, every round included: claim (begin, claim, duplicate and quarantine checks), "+
			"handle (the handlers) and commit (failures, dead letters, the commit).",
		cfg.BatchSecondsBuckets, append(consumer, "phase")...)
	m.published = counter("eos_relay_published_total", "Outbox rows the relay published and marked sent.", "topic")
	m.relayDelay = histogram("eos_relay_delay_seconds",
		"From an outbox row's enqueue to its being marked sent by the relay.", cfg.LatencyBuckets, "topic")
	m.publishErrors = counter("eos_relay_publish_errors_total",
		"Publish calls of the relay that failed, by the topic of the row they failed on (empty when the publisher's "+
			"report named no row); the rows are retried.", "topic")
	m.relayStore = prometheus.NewCounter(prometheus.CounterOpts{Name: "eos_relay_store_errors_total",
		Help: "Failures of the store on the relay's path (claim, mark sent)."})
	m.parked = counter("eos_relay_parked_total",
		"Outbox rows the relay parked as unpublishable; each blocks its key until requeued or discarded.", "topic")
	m.brokerDups = counter("eos_relay_broker_duplicates_total",
		"Publishes the broker acknowledged as duplicates of a message it already held (its dedupe dropped the copy): "+
			"a re-publish after a relay crash, or a retry after a lost ack.", "topic")
	newCompactCollectors(m)
	newHTTPIdemCollectors(m)
	newCallOnceCollectors(m)

	cs := []struct {
		name string
		c    prometheus.Collector
	}{
		{"eos_inbox_messages_total", m.messages},
		{"eos_duplicates_suppressed_total", m.duplicates},
		{"eos_quarantined_total", m.quarantined},
		{"eos_dead_lettered_total", m.deadLettered},
		{"eos_dedupe_store_errors_total", m.storeErrors},
		{"eos_inbox_settle_errors_total", m.settleErrors},
		{"eos_reprocessed_total", m.reprocessed},
		{"eos_end_to_end_seconds", m.endToEnd},
		{"eos_inbox_batch_size", m.batchSize},
		{"eos_inbox_batch_seconds", m.batchSeconds},
		{"eos_inbox_phase_seconds", m.phaseSeconds},
		{"eos_relay_published_total", m.published},
		{"eos_relay_delay_seconds", m.relayDelay},
		{"eos_relay_publish_errors_total", m.publishErrors},
		{"eos_relay_store_errors_total", m.relayStore},
		{"eos_relay_parked_total", m.parked},
		{"eos_relay_broker_duplicates_total", m.brokerDups},
		{"eos_compact_deleted_rows_total", m.compactDeleted},
		{"eos_compact_errors_total", m.compactErrors},
		{"eos_compact_last_success_timestamp_seconds", m.compactLast},
		{"eos_httpidem_requests_total", m.httpidem},
		{"eos_callonce_calls_total", m.callonce},
	}
	var rcs []struct {
		name string
		c    prometheus.Collector
	}
	m.reconcile, rcs = newReconcileMetrics(cfg.ReconcileMemory)
	cs = append(cs, rcs...)
	for i, c := range cs {
		if err := reg.Register(c.c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done.c)
			}
			return nil, &RegisterError{Metric: c.name, Err: err}
		}
	}
	return m, nil
}
