package producer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
	"github.com/eoskit/eos/transport/natsjs"
)

// Publisher is the broker as the producer sees it.
type Publisher interface {
	// Publish publishes envs in order and returns how many the broker
	// acknowledged, from the first.
	Publish(ctx context.Context, envs []outbox.Envelope) (int, error)
	// PublishOne publishes env; duplicate reports that the broker dropped
	// it as a copy of a message it holds (its dedupe by id).
	PublishOne(ctx context.Context, env outbox.Envelope) (duplicate bool, err error)
	// PublishWithoutID publishes m on topic without any message id (a
	// malformed input eos's publishers refuse), bounded in time as they
	// bound their own publishes.
	PublishWithoutID(ctx context.Context, topic string, m eos.Message) error
}

// NATS is a Publisher on JetStream: pub for the orders, js for the
// malformed inputs pub refuses.
func NATS(pub *natsjs.Publisher, js jetstream.JetStream) Publisher { return natsPublisher{pub, js} }

type natsPublisher struct {
	*natsjs.Publisher
	js jetstream.JetStream
}

func (p natsPublisher) PublishOne(ctx context.Context, env outbox.Envelope) (bool, error) {
	res, err := p.PublishMessage(ctx, env.Topic, env.Message)
	return res.Duplicate, err
}

func (p natsPublisher) PublishWithoutID(ctx context.Context, topic string, m eos.Message) error {
	msg := &nats.Msg{Subject: topic, Data: m.Payload, Header: nats.Header{}}
	msg.Header.Set(natsjs.HeaderKey, m.Key)
	msg.Header.Set(natsjs.HeaderCreatedAt, time.Now().UTC().Format(time.RFC3339Nano))
	// Bounded as the Publisher bounds its own: a reply lost on a
	// connection gone silent (a blackhole) must not hold the producer
	// until the run's deadline.
	ctx, cancel := context.WithTimeout(ctx, natsjs.DefaultAckTimeout)
	defer cancel()
	_, err := p.js.PublishMsg(ctx, msg)
	return err
}

// Kafka is a Publisher on Kafka: pub for the orders, cl (pub's client) for
// the malformed inputs pub refuses. Kafka drops no copy by id: PublishOne
// never reports a duplicate, and every copy is stored.
func Kafka(pub *kafka.Publisher, cl *kgo.Client) Publisher { return kafkaPublisher{pub, cl} }

type kafkaPublisher struct {
	*kafka.Publisher
	cl *kgo.Client
}

func (p kafkaPublisher) PublishOne(ctx context.Context, env outbox.Envelope) (bool, error) {
	_, err := p.Publish(ctx, []outbox.Envelope{env})
	return false, err
}

func (p kafkaPublisher) PublishWithoutID(ctx context.Context, topic string, m eos.Message) error {
	r := &kgo.Record{Topic: topic, Key: []byte(m.Key), Value: m.Payload, Timestamp: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, kafka.DefaultProduceTimeout)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("kafka: produce to %s: %w", topic, err)
	}
	return nil
}
