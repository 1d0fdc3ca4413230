package natsjs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
)

// SubscriberConfig configures a Subscriber. The zero value is valid.
type SubscriberConfig struct {
	// DoubleAck waits for the server to confirm each ack. Off by default: a
	// lost ack means a redelivery, which the inbox suppresses, and a double
	// ack costs about five times as much.
	DoubleAck bool
	// Buffer is how many messages the client pulls ahead. Default 1024.
	Buffer int
	// Failpoints, if set, are evaluated at FailAckLost. Nil in production.
	Failpoints *failpoint.Set
}

// FailAckLost is evaluated before a Delivery sends its ack. An error makes
// the ack go missing as if the network had dropped it: nothing is sent, a
// plain ack still reports success (as a real lost one would), a double ack
// reports the error; the broker redelivers the message after its AckWait.
const FailAckLost = "natsjs.ack_lost"

// Subscriber reads a durable pull consumer. It implements inbox.Source.
// One Subscriber serves one Processor.Run at a time.
type Subscriber struct {
	cfg  SubscriberConfig
	iter jetstream.MessagesContext
}

var _ inbox.Source = (*Subscriber)(nil)

// NewSubscriber starts pulling from consumer cons (see EnsureConsumer).
// Close stops it.
func NewSubscriber(cons jetstream.Consumer, cfg SubscriberConfig) (*Subscriber, error) {
	if cons == nil {
		return nil, &eos.ConfigError{Field: "natsjs.NewSubscriber consumer", Reason: "nil"}
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = 1024
	}
	if cfg.Buffer < 1 {
		return nil, &eos.ConfigError{Field: "natsjs.SubscriberConfig.Buffer", Reason: "must be positive"}
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(cfg.Buffer))
	if err != nil {
		return nil, fmt.Errorf("natsjs: subscribe: %w", err)
	}
	return &Subscriber{cfg: cfg, iter: iter}, nil
}

// Close stops pulling. Messages pulled but not yet handed out are
// redelivered after the consumer's AckWait.
func (s *Subscriber) Close() { s.iter.Stop() }

// Fetch implements inbox.Source: it waits for one message as long as ctx
// allows, then takes more for at most maxWait (none when maxWait is zero).
// An error after the first message ends the batch; the next Fetch reports it.
func (s *Subscriber) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	m, err := s.iter.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	out := []inbox.Delivery{s.delivery(m)}
	deadline := time.Now().Add(maxWait)
	for len(out) < max {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := s.iter.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				break
			}
			return out, nil // hand over what we have; the next Fetch reports the error
		}
		out = append(out, s.delivery(m))
	}
	return out, nil
}

func (s *Subscriber) delivery(m jetstream.Msg) *Delivery {
	return &Delivery{m: m, msg: fromNATS(m.Headers(), m.Data()), double: s.cfg.DoubleAck, fps: s.cfg.Failpoints}
}

// Delivery is one JetStream message handed to the inbox.
type Delivery struct {
	m      jetstream.Msg
	msg    eos.Message
	double bool
	fps    *failpoint.Set
}

var _ inbox.Delivery = (*Delivery)(nil)

func (d *Delivery) Message() eos.Message { return d.msg }

// Ack acknowledges the message (a double ack if configured).
func (d *Delivery) Ack(ctx context.Context) error {
	if err := d.fps.Eval(FailAckLost); err != nil {
		if d.double {
			return fmt.Errorf("natsjs: ack: %w", err)
		}
		return nil
	}
	if d.double {
		return d.m.DoubleAck(ctx)
	}
	return d.m.Ack()
}

// Nack asks JetStream to redeliver the message after delay.
func (d *Delivery) Nack(_ context.Context, delay time.Duration) error {
	return d.m.NakWithDelay(delay)
}

// NumDelivered is how many times JetStream has delivered this message,
// this time included (0 if unknown). Above 1 it is a redelivery.
func (d *Delivery) NumDelivered() uint64 {
	md, err := d.m.Metadata()
	if err != nil {
		return 0
	}
	return md.NumDelivered
}
