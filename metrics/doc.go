// Package metrics exports what eos does as Prometheus metrics: the
// service-level indicators of exactly-once processing (duplicates
// suppressed, dedupe-store errors, redeliveries, end-to-end latency) and
// what an operator watches besides (outcomes, batch sizes and
// durations, quarantined and dead-lettered messages, the relay's published
// rows, delay and errors). Redeliveries are counted from what the
// transport reports (inbox.DeliveryCounter); a transport that does not
// count deliveries adds none.
//
// A [Metrics] registers its collectors on the [prometheus.Registerer] it is
// given, never on the global registry, and is fed through the hooks of the
// components it watches: add [Metrics.InboxHook] to an inbox.Config's Hooks
// and [Metrics.RelayHook] to an outbox.RelayConfig's Hooks
// ([Metrics.CompactHook]: a compact.Config's). One Metrics
// serves any number of inboxes and relays; series are labelled by consumer
// (inbox) or topic (relay), never by a message id. To tell services apart,
// wrap the registerer (prometheus.WrapRegistererWith) with a constant
// label of your own.
//
// The outbox's depth is read rather than hooked: [Metrics.WatchOutbox]
// registers gauges of an outbox's unsent and parked rows and of the age of
// its oldest unsent row (the SLI eos_outbox_oldest_unsent_seconds), read
// through its Stats at each scrape, within Config.OutboxStatsTimeout.
// [Metrics.WatchInbox] does the same for what an inbox processor is doing
// (in-flight deliveries, stalls), read from inbox.Processor.Activity without
// the store. [Metrics.BrokerDuplicate], given to a publisher as its
// duplicate callback (natsjs.PublisherConfig.OnDuplicate), counts the
// relay's publishes the broker's dedupe dropped. A broker consumer's lag
// ([Metrics.WatchConsumer]: messages not delivered yet, and delivered but
// not acknowledged) and the rows an inbox keeps ([Metrics.WatchInboxStore]:
// claims, dead letters, quarantine) are read at scrape time as well, from
// the broker and the store: any process can watch them, even one that
// consumes nothing.
//
// Reconciliation's findings (package reconcile: missed applies, duplicate
// effects that got through, unexpected applies, partial commits) and its
// runs are counted through [Metrics.ReconcileHook], added to a
// reconcile.Config's Hooks; each finding is counted once across runs.
//
// The duplicate and quarantine counters carry an exemplar naming a
// message of the batch that moved them (label message_id) and, when its
// headers hold a W3C traceparent, its trace (label trace_id), so that a
// spike on a dashboard links to a message to look up and a trace to open.
// Exemplars are exposed only in the OpenMetrics format (promhttp's
// HandlerOpts.EnableOpenMetrics).
//
// The metric names are part of eos's API; docs/ARCHITECTURE.md lists them
// with their types and labels.
package metrics
