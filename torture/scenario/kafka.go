package scenario

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/producer"
	"github.com/eoskit/eos/torture/worker"
	"github.com/eoskit/eos/transport/kafka"
)

// Files and settings of a run on Kafka.
const (
	kafkaDir = "kafka" // the embedded cluster's data
	// kafkaBrokers is the size of the embedded cluster: more than one, so
	// that a group's coordinator and its partitions' leaders differ.
	kafkaBrokers = 3
	// Partitions of the run's topics: the order workers share the
	// orders topic's, the payment worker has the payments topic's.
	ordersPartitions   = 8
	paymentsPartitions = 4
	// Group session timeouts: how long a killed member holds its
	// partitions. The embedded cluster accepts a short one; a real one
	// refuses one under its group.min.session.timeout.ms (6s by default).
	embeddedSessionTimeout = 2 * time.Second
	externalSessionTimeout = 6 * time.Second
)

// kafkaBus is a run's Kafka: the cluster of brokers, or an embedded kfake
// cluster in the run's directory.
type kafkaBus struct {
	brokers []string // external cluster's seeds; empty: embedded
	topo    worker.Topology

	embedded *faults.KafkaBroker
	cfg      worker.KafkaConfig // what the workers and the producer dial
	cl       *kgo.Client        // the harness's own, straight to the brokers
	adm      *kadm.Client
	prodCl   *kgo.Client
	topicsUp bool
}

func (b *kafkaBus) open(ctx context.Context, dir, runID string) (_ worker.Topology, err error) {
	b.cfg = worker.KafkaConfig{Brokers: b.brokers, SessionTimeout: externalSessionTimeout}
	if len(b.brokers) == 0 {
		if b.embedded, err = faults.StartKafka(filepath.Join(dir, kafkaDir), kafkaBrokers); err != nil {
			return b.topo, err
		}
		b.cfg.Brokers, b.cfg.SessionTimeout = b.embedded.Addrs(), embeddedSessionTimeout
		b.topo = EmbeddedTopology
	} else {
		b.topo = RunTopology(runID)
	}
	if b.cl, err = kgo.NewClient(kgo.SeedBrokers(b.cfg.Brokers...), kgo.ClientID("eos-demo")); err != nil {
		return b.topo, fmt.Errorf("kafka client: %w", err)
	}
	b.adm = kadm.NewClient(b.cl)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b.topicsUp = true
	for _, tc := range []kafka.TopicConfig{
		{Name: b.topo.OrdersSubject(), Partitions: ordersPartitions},
		{Name: b.topo.PaymentsSubject(), Partitions: paymentsPartitions},
	} {
		if _, err := kafka.EnsureTopic(pctx, b.cl, tc); err != nil {
			return b.topo, fmt.Errorf("kafka at %v: %w", b.cfg.Brokers, err)
		}
	}
	return b.topo, nil
}

// front puts a proxy in front of each broker: the clients dial it in
// place of the address the cluster's metadata names.
func (b *kafkaBus) front(p *faults.Proxies) error {
	b.cfg.Dial = map[string]string{}
	for _, addr := range b.cfg.Brokers {
		via, err := p.Front("kafka", "kafka://"+addr, "9092")
		if err != nil {
			return err
		}
		u, err := url.Parse(via)
		if err != nil {
			return err
		}
		b.cfg.Dial[addr] = u.Host
	}
	return nil
}

func (b *kafkaBus) configure(c *worker.Config) {
	c.Transport, c.Kafka = worker.TransportKafka, b.cfg
}

// publisher publishes through a client of the producer's own, through the
// proxies when fronted. Kafka drops no copy by id: dups stays 0.
func (b *kafkaBus) publisher(*atomic.Int64) (producer.Publisher, error) {
	cl, err := kgo.NewClient(append(b.cfg.Options(), kgo.ClientID("eos-demo-producer"))...)
	if err != nil {
		return nil, fmt.Errorf("producer: kafka client: %w", err)
	}
	b.prodCl = cl
	pub, err := kafka.NewPublisher(cl, kafka.PublisherConfig{})
	if err != nil {
		return nil, err
	}
	return producer.Kafka(pub, cl), nil
}

// positions reads each group's lag: Kafka knows the committed offsets,
// which the Subscribers advance only past acknowledged records, so the
// lag counts what is in flight too (ackPending stays 0).
func (b *kafkaBus) positions(ctx context.Context) ([]consumerState, error) {
	var out []consumerState
	for _, g := range b.groups() {
		st, err := kafka.GroupStats(b.cl, g.group, g.topic)(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, consumerState{pending: uint64(st.Pending)})
	}
	return out, nil
}

type groupTopic struct{ group, topic string }

func (b *kafkaBus) groups() []groupTopic {
	return []groupTopic{
		{b.topo.Group(worker.OrdersDurable), b.topo.OrdersSubject()},
		{b.topo.Group(worker.PaymentsDurable), b.topo.PaymentsSubject()},
	}
}

func (b *kafkaBus) storedIDs(ctx context.Context) (map[string]int, error) {
	return check.SourceIDs(ctx, b.source(b.topo.OrdersSubject()))
}

// stats counts the topics' records. Kafka keeps no count of deliveries:
// the delivered counts stay 0, and the report's reprocessed count with
// them.
func (b *kafkaBus) stats(ctx context.Context) (check.BrokerStats, error) {
	var s check.BrokerStats
	for _, t := range []struct {
		topic string
		n     *uint64
	}{{b.topo.OrdersSubject(), &s.OrdersStored}, {b.topo.PaymentsSubject(), &s.PaymentsStored}} {
		ids, err := check.SourceIDs(ctx, b.source(t.topic))
		if err != nil {
			return s, err
		}
		for _, n := range ids {
			*t.n += uint64(n)
		}
	}
	return s, nil
}

func (b *kafkaBus) source(topic string) reconcile.Source {
	return reconcile.KafkaSource{Client: b.cl, Topic: topic}
}

func (b *kafkaBus) restarter() restarter {
	if b.embedded == nil {
		return nil
	}
	return b.embedded
}

func (b *kafkaBus) observed() observe.Broker { return observe.Kafka(b.cl, b.topo) }

func (b *kafkaBus) label() string {
	if b.embedded == nil {
		return "kafka"
	}
	return "kafka-embedded"
}

func (b *kafkaBus) close(ctx context.Context, keep bool) {
	if b.adm != nil && b.embedded == nil && b.topicsUp && !keep {
		b.adm.DeleteTopics(ctx, b.topo.OrdersSubject(), b.topo.PaymentsSubject())
		var groups []string
		for _, g := range b.groups() {
			groups = append(groups, g.group)
		}
		b.adm.DeleteGroups(ctx, groups...)
	}
	if b.prodCl != nil {
		b.prodCl.Close()
	}
	if b.cl != nil {
		b.cl.Close()
	}
	if b.embedded != nil {
		b.embedded.Shutdown()
	}
}
