package scenario

import (
	"context"
	"io"
	"time"
)

// Options describe one run.
type Options struct {
	// Dir holds the run's files: SQLite, NATS, the provider's records, the
	// workers' log, the intent log. It is created (0700) or, if an earlier
	// run made it, emptied of that run's files; any other non-empty
	// directory is refused.
	Dir      string
	Orders   int
	Workers  int // order worker processes
	Accounts int
	// Seed fixes the workload, the duplicates and every fault's schedule
	// and draws; 0 picks one (the result shows it).
	Seed uint64
	// Transport is the broker: worker.TransportNATS (empty too) or
	// worker.TransportKafka.
	Transport string
	// Postgres, NATSURL and Kafka (seed brokers) name external services
	// (a fresh schema and fresh streams or topics per run, removed
	// afterwards unless Keep); empty: SQLite, and an embedded NATS server
	// or Kafka cluster in Dir.
	Postgres, NATSURL string
	Kafka             []string
	Keep              bool
	// Rate is the orders the producer publishes per second; 0: as fast as
	// the broker takes them.
	Rate int
	// Timeout bounds the run; past it the run is incomplete. Required.
	Timeout time.Duration
	// Handler is the order workers' handler: worker.HandlerBatch or
	// worker.HandlerMessage; empty: worker.HandlerBatch.
	Handler string

	// Faults. Chaos SIGKILLs workers at random and makes the provider fail
	// some requests (on Kafka, each kill of an order worker rebalances
	// their group); Failpoints is a spec armed in every worker (empty:
	// none); BrokerRestart restarts the embedded broker now and then;
	// Proxy puts fault proxies between the workers (and the producer) and
	// the services; NoDuplicates stops the producer's retries and copies,
	// NoPoison its malformed inputs.
	Chaos         bool
	Failpoints    string
	BrokerRestart bool
	Proxy         bool
	NoDuplicates  bool
	NoPoison      bool

	// NoWorkerMetrics turns the workers' metrics off (Scenario.Gatherer
	// then has only the harness's own): to measure what they cost.
	NoWorkerMetrics bool
	// Verbose: workers log at info level, to Stderr as well as Dir's
	// workers.log (otherwise warnings, to the file only).
	Verbose bool
	Stderr  io.Writer
	// OnProgress, if set, is called with each observation of the pipeline
	// (about twice a second).
	OnProgress func(Progress)

	// OnStart, set by tests only, runs in its own goroutine once the
	// workers and the producer have started (e.g. to steal a message); it
	// must return once ctx ends: the run waits for it before the check.
	OnStart func(ctx context.Context, s *Scenario)
}

// Progress is what a progress display shows.
type Progress struct {
	Orders, Published, Applied, Charged, DeadLettered int64
	Kills                                             int
}

// Setup names what a run ran on.
type Setup struct {
	Store   string `json:"store"`  // sqlite or postgres
	Broker  string `json:"broker"` // nats-embedded, nats, kafka-embedded or kafka
	Workers int    `json:"workers"`
	Handler string `json:"handler"` // the order workers' handler: batch or message
	Chaos   bool   `json:"chaos"`
	// Rate is the producer's orders per second; 0: unthrottled, and then
	// the p50/p99 measure how long orders waited in the backlog.
	Rate int `json:"rate"`
	// RunID names the run's PostgreSQL schema (RunSchema) and, on an
	// external broker, its streams or topics (RunTopology): what eos serve
	// --run takes to watch the run.
	RunID string `json:"run_id"`
	// StatusURL is where the run's status page was served (eos demo
	// --serve); empty otherwise. The caller sets it.
	StatusURL string `json:"status_url,omitempty"`
}
