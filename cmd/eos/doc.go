// Command eos is the operator's command of the eos toolkit.
//
//	eos demo [flags]
//
// runs the payments scenario (examples/payments) end to end: an embedded
// NATS JetStream server and a SQLite database in ./eos-demo by default (or
// PostgreSQL and an external NATS server with --postgres and --nats), a
// producer that emits orders with retried publishes, copies past the
// broker's dedupe window and malformed messages, order workers (with the
// set-based order handler, or one order at a time with --handler message),
// a relay and a payment worker as child processes of the demo (SIGKILLed
// at random and restarted with --chaos), and a payment-provider simulator
// over HTTP.
// When every order is applied and charged, it stops the workers, checks
// the databases and prints a report (one JSON object with --json). The exit
// status is 0 when every invariant holds, 1 when one fails, 2 for bad flags
// or unreachable services.
//
// The workers are the same executable run with a hidden subcommand; they
// receive their configuration in an environment variable and exit when
// their standard input (a pipe from the demo) closes, so that none outlives
// the demo.
//
//	eos torture [flags]
//
// runs the same scenario --runs times under faults (--faults: kill,
// failpoints, broker-restart, duplicates, poison, proxy; all by default):
// worker processes SIGKILLed at random, failpoints armed by name in the
// workers (crash, error, delay; see failpoint.Parse), the embedded NATS
// server restarted mid-run, publishes retried and copied past the broker's
// dedupe window, malformed messages, and a TCP fault proxy (resets,
// latency, blackholes) between the workers and the producer on one side
// and PostgreSQL and NATS on the other. The producer appends every publish
// (and every resend of a publish left without a PubAck) to an intent log
// (JSON lines, fsync'd first); after each run an independent checker
// compares that log with the broker's stream, the databases and the
// provider's records, and reports per run and in total: attempted,
// acknowledged, applied, lost, duplicated, unexpected, indeterminate,
// recovered, in flight at a fault, quarantined, dead-lettered,
// conservation of money, charges per order, and the SLIs. The exit status
// is 1 when a run loses, duplicates or breaks conservation.
//
//	eos serve [--dir DIR | --postgres URL --run ID] [--nats URL] [--addr HOST:PORT] [--token-file FILE]
//
// serves the status of a demo's pipeline, watched from outside (package
// serve over torture/observe): a status page, status.json, /metrics,
// /healthz and /readyz. eos demo --serve ADDR serves the same during a
// run (--serve-linger keeps it up after the report). Beyond loopback both
// need a bearer token (--token-file or EOS_SERVE_TOKEN).
//
//	eos migrate up|down|status (--sqlite PATH | --postgres URL)
//	eos migrate sql --engine sqlite|postgres
//
// applies, reverts or lists eos's schema migrations as the drivers'
// Migrator does (one transaction per call), or prints their SQL rendered
// for a schema and table prefix, for teams that migrate with a tool of
// their own.
//
//	eos reconcile [flags]
//
// compares a JetStream stream (headers only) with what a consumer applied
// (its inbox claims) through package reconcile, and reports missed
// applies, unexpected applies, duplicate effects (a --duplicates query
// over the consumer's effects; the demo's ledger by default for its orders
// consumer) and partial commits (outbox rows unsent past
// --partial-after). It reads a finished demo's --dir by default, or
// --postgres (and --schema) and --nats. The exit status is 0 when nothing is
// found, 1 on any finding, 2 for bad flags, unreachable services or a
// failed read.
//
//	eos provider --store sqlite:///path.db|postgres://…|redis://… [--addr HOST:PORT]
//
// serves a payment-provider simulator built on the Idempotency-Key
// middleware (package httpidem, the simulator in torture/provider): POST
// /v1/charges with a key runs once, its retries are replayed, the key
// with another body is refused (422); GET /v1/charges lists the charges.
// Over SQLite and PostgreSQL each charge commits with its key.
//
//	eos version
//
// prints the module version this executable was built from, its VCS
// revision when stamped, and the Go version.
//
// This package parses flags and prints; the machinery is importable and
// unit-tested under torture/: scenario (one run), producer, intents (the
// producer's log), supervisor (the worker processes), worker, faults (the
// fault schedules), check (the checker) and faultproxy.
//
// Other subcommands (relay, bench) will join them.
package main
