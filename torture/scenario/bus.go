package scenario

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/producer"
	"github.com/eoskit/eos/torture/worker"
)

// bus is the run's broker as the harness uses it: NATS JetStream
// (natsBus) or Kafka (kafkaBus), external or embedded in this process.
// The rest of the harness does not know which.
type bus interface {
	// open connects to the external broker or starts the embedded one in
	// dir, and provisions the run's streams or topics and consumers; the
	// returned topology names them.
	open(ctx context.Context, dir, runID string) (worker.Topology, error)
	// front puts fault proxies in front of the broker: the workers' and
	// the producer's connections go through them from then on.
	front(p *faults.Proxies) error
	// configure points a worker's configuration at the broker (through
	// the proxies when fronted).
	configure(c *worker.Config)
	// publisher returns what the producer publishes with; it counts the
	// copies the broker dropped by id in dups.
	publisher(dups *atomic.Int64) (producer.Publisher, error)
	// positions reads every consumer's position, for the idle detector.
	positions(ctx context.Context) ([]consumerState, error)
	// storedIDs counts the ORDERS stream's (or orders topic's) messages by
	// id, "" for those without one.
	storedIDs(ctx context.Context) (map[string]int, error)
	// stats reads the broker's counts at the end of the run.
	stats(ctx context.Context) (check.BrokerStats, error)
	// restarter is the embedded broker, to restart (the broker restart
	// fault); nil for an external one.
	restarter() restarter
	// observed is the broker for an observer (eos demo --serve).
	observed() observe.Broker
	// label names the broker in reports: nats-embedded, nats,
	// kafka-embedded or kafka.
	label() string
	// close releases what open made; the streams or topics of an
	// external broker are deleted unless keep.
	close(ctx context.Context, keep bool)
}

// restarter is an embedded broker the broker restart fault restarts.
type restarter interface {
	Run(ctx context.Context, rnd *rand.Rand, s faults.Schedule) error
	Restarts() int
}
