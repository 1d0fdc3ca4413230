// Package observe watches the payments pipeline of eos demo from outside
// its processes, for eos serve and eos demo --serve: it reads the outbox's
// backlog and the broker consumers' lag ([Broker]: NATS or Kafka) at each
// scrape, lists dead letters
// and quarantined messages through the inbox's admin API, checks that the
// store and the broker answer, and serves all of it with package serve.
// The counters that only the workers see (applied, duplicates, latency)
// come in through Config.Extra, a Gatherer of the workers' metrics.
package observe
