package observe

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/torture/worker"
	"github.com/eoskit/eos/transport/kafka"
	"github.com/eoskit/eos/transport/natsjs"
)

// Broker is a run's broker as an Observer reads it. Its consumers are
// named by their durable, worker.OrdersDurable or worker.PaymentsDurable.
type Broker interface {
	// Transport is the transport label of the consumers' metrics.
	Transport() string
	// ConsumerStats returns the function that reads a consumer's lag.
	ConsumerStats(durable string) func(context.Context) (inbox.SourceStats, error)
	// Source is what a consumer reads, for a reconciliation.
	Source(durable string) reconcile.Source
	// Ping reports whether the broker answers.
	Ping(ctx context.Context) error
}

// NATS is the Broker of a run on JetStream: its streams and durable
// consumers, as t names them.
func NATS(js jetstream.JetStream, t worker.Topology) Broker { return natsBroker{js, t} }

type natsBroker struct {
	js jetstream.JetStream
	t  worker.Topology
}

func (b natsBroker) Transport() string { return natsjs.TransportName }

func (b natsBroker) stream(durable string) string {
	if durable == worker.PaymentsDurable {
		return b.t.PaymentsStream
	}
	return b.t.OrdersStream
}

func (b natsBroker) ConsumerStats(durable string) func(context.Context) (inbox.SourceStats, error) {
	return natsjs.DurableStats(b.js, b.stream(durable), durable)
}

func (b natsBroker) Source(durable string) reconcile.Source {
	return reconcile.JetStreamSource{JS: b.js, Stream: b.stream(durable)}
}

func (b natsBroker) Ping(ctx context.Context) error {
	_, err := b.js.AccountInfo(ctx)
	return err
}

// Kafka is the Broker of a run on Kafka: its topics and consumer groups,
// as t names them, read through cl (which consumes nothing itself).
func Kafka(cl *kgo.Client, t worker.Topology) Broker { return kafkaBroker{cl, t} }

type kafkaBroker struct {
	cl *kgo.Client
	t  worker.Topology
}

func (b kafkaBroker) Transport() string { return kafka.TransportName }

func (b kafkaBroker) topic(durable string) string {
	if durable == worker.PaymentsDurable {
		return b.t.PaymentsSubject()
	}
	return b.t.OrdersSubject()
}

func (b kafkaBroker) ConsumerStats(durable string) func(context.Context) (inbox.SourceStats, error) {
	return kafka.GroupStats(b.cl, b.t.Group(durable), b.topic(durable))
}

func (b kafkaBroker) Source(durable string) reconcile.Source {
	return reconcile.KafkaSource{Client: b.cl, Topic: b.topic(durable)}
}

func (b kafkaBroker) Ping(ctx context.Context) error { return b.cl.Ping(ctx) }
