package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/service"
	"github.com/eoskit/eos/transport/kafka"
)

// Transports a run's workers talk to (Config.Transport).
const (
	TransportNATS  = "nats"
	TransportKafka = "kafka"
)

// KafkaConfig is the Kafka cluster of a run whose transport is
// TransportKafka.
type KafkaConfig struct {
	// Brokers are the seed brokers (host:port).
	Brokers []string `json:"brokers"`
	// Dial maps a broker's address, as the cluster advertises it, to the
	// address dialled instead: the fault proxy in front of it (eos
	// torture's proxy fault). Kafka clients connect to the addresses the
	// cluster's metadata names, not to their seeds, so only a dialer sees
	// every connection.
	Dial map[string]string `json:"dial,omitempty"`
	// SessionTimeout is the consumer groups' session timeout: how long a
	// killed member keeps its partitions before the group hands them on.
	// 0: the client's default.
	SessionTimeout time.Duration `json:"session_timeout,omitempty"`
}

// Options returns the client options of k: the seeds, the dialer and the
// group timings.
func (k KafkaConfig) Options() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if len(k.Dial) > 0 {
		var d net.Dialer
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			if to, ok := k.Dial[host]; ok {
				host = to
			}
			return d.DialContext(ctx, network, host)
		}))
	}
	if k.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(k.SessionTimeout), kgo.HeartbeatInterval(k.SessionTimeout/5),
			kgo.RebalanceTimeout(2*k.SessionTimeout))
	}
	return opts
}

// Group is the consumer group of durable (OrdersDurable, PaymentsDurable)
// on a Kafka run: named after the run's topics, so that runs sharing a
// cluster do not meet.
func (t Topology) Group(durable string) string { return t.Base + "." + durable }

// broker is what a worker consumes from and publishes to.
type broker struct {
	orders, payments service.SourceFunc
	publisher        func(onDup func(topic, id string)) (outbox.Publisher, error)
	close            func()
}

// openKafka returns cfg's Kafka side: subscribers in the run's groups
// (their AckWait the durable consumers' on NATS: a delivery the inbox gave
// up comes back as quickly) and a publisher over a client of the
// worker's own, which connects only once it produces.
func openKafka(cfg Config, log *slog.Logger, test eos.TestConfig) (*broker, error) {
	k, t := cfg.Kafka, cfg.Topology
	cl, err := kgo.NewClient(append(k.Options(), kgo.ClientID("eos-demo-"+cfg.Name))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	sub := func(durable, topic string, opts ...kgo.Opt) service.SourceFunc {
		return func(ctx context.Context) (inbox.Source, error) {
			return kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: k.Brokers, Group: t.Group(durable), Topics: []string{topic},
				Options: append(k.Options(), append(opts, kgo.ClientID("eos-demo-"+cfg.Name))...), AckWait: AckWait, Logger: log, Test: test})
		}
	}
	// The order workers join their group as dynamic members: each kill
	// of one rebalances the group (its partitions move on once its
	// session times out, and again when it rejoins). The payment worker
	// is the one member of its group, where a rebalance moves nothing: it
	// is a static member (KIP-345), so that its restart takes its
	// partitions back at once instead of waiting out the dead process's
	// session.
	return &broker{
		orders:   sub(OrdersDurable, t.OrdersSubject()),
		payments: sub(PaymentsDurable, t.PaymentsSubject(), kgo.InstanceID(cfg.Name)),
		// Kafka drops no copy by id: there are no broker duplicates to
		// count.
		publisher: func(func(string, string)) (outbox.Publisher, error) {
			return kafka.NewPublisher(cl, kafka.PublisherConfig{Test: test})
		},
		close: cl.Close,
	}, nil
}
