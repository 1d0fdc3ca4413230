// Package faults names the faults eos torture injects and schedules them:
// SIGKILLs of worker processes at random ([Kill], through a supervisor),
// connection resets, latency and blackholes through TCP fault proxies in
// front of the services ([Proxies]), and restarts of the embedded NATS
// server ([Broker]) or Kafka cluster ([KafkaBroker]). Each schedule draws its times from a seeded source,
// so a run with the same seed draws the same schedule; which messages a
// fault hits depends on timing.
//
// Failpoints (crashes and errors at named points inside the workers) are
// armed in the workers from a spec ([DefaultFailpointSpec] of the
// transport); duplicates and
// poison are the producer's (torture/producer).
package faults
