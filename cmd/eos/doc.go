// Command eos is the operator's command of the eos toolkit.
//
//	eos demo [flags]
//
// runs the payments scenario (examples/payments) end to end: an embedded
// NATS JetStream server and a SQLite database in ./eos-demo by default (or
// PostgreSQL and an external NATS server with --postgres and --nats), a
// producer that emits orders with retried publishes, copies past the
// broker's dedupe window and malformed messages, order workers, a relay
// and a payment worker as child processes of the demo (SIGKILLed at random
// and restarted with --chaos), and a payment-provider simulator over HTTP.
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
// Other subcommands (relay, bench, torture) will join demo.
package main
