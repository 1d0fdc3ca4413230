// Package worker is one worker process of the payments scenario, as eos
// demo and eos torture run it: an order worker (the "orders" inbox, which
// debits, writes the ledger and enqueues the charge, set-based or message
// by message: Config.Handler), the relay (the
// outbox to the PAYMENTS stream) or the payment worker (the "payments"
// inbox, which charges at the provider).
//
// The harness (torture/scenario) runs the same executable with a hidden
// command; the worker's [Config] travels in an environment variable
// ([Config.Env], [FromEnv]), out of sight of ps. A worker reports the
// inbox's store failures to the harness as events on the supervisor's
// pipe (torture/supervisor), not in its log.
//
// With Config.MetricsDir set, a worker keeps eos's metrics (package
// metrics) on a registry of its own, fed by its inboxes, its relay and,
// in the relay worker, the outbox's depth; it serves them on loopback for
// the harness and announces where on the same pipe (EventMetrics), and
// leaves their final values in MetricsFile when it stops gracefully.
package worker
