// Package scenario runs the payments scenario end to end, once, and checks
// it: the machinery behind eos demo and each run of eos torture.
//
// [New] prepares a run: its directory (0700, files 0600), the database
// (SQLite in the directory, or a fresh schema on PostgreSQL), the broker
// (an embedded NATS server or Kafka cluster, or fresh streams or topics on
// an external one, behind one internal interface), the
// payment-provider simulator, the intent log, and, with the proxy fault,
// fault proxies in front of the services for the workers. [Scenario.Run]
// starts the worker processes (torture/supervisor, torture/worker), the
// producer (torture/producer) and the fault schedules (torture/faults),
// waits until every order is applied and charged or the pipeline is idle
// without being complete, stops the workers and checks the run
// (torture/check).
package scenario
